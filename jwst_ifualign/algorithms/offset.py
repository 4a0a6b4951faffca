"""The one offset convention of jwst_ifualign."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["Offset"]


class Offset(NamedTuple):
    """Residual shift of an image (or cube) relative to a reference, in the reference's pixels.

    Convention (used by every method, table and file of this package): a feature at reference
    pixel ``(x, y)`` appears at ``(x + dx, y + dy)`` in the other image, ``x`` being the column
    (numpy axis 1, FITS axis 1) and ``y`` the row (numpy axis 0, FITS axis 2). The offset of the
    reference against itself is zero. To align the image, sample it at ``(x + dx, y + dy)``.

    Attributes
    ----------
    dx, dy : float
        Shift along x (columns) and y (rows), pixels.
    dx_err, dy_err : float
        1-sigma uncertainties, pixels; NaN when not known.
    """

    dx: float
    dy: float
    dx_err: float = np.nan
    dy_err: float = np.nan

    def __add__(self, other):  # noqa: D105 - composing two offsets
        if not isinstance(other, Offset):
            return NotImplemented
        return Offset(
            self.dx + other.dx,
            self.dy + other.dy,
            float(np.hypot(self.dx_err, other.dx_err)),
            float(np.hypot(self.dy_err, other.dy_err)),
        )

    def __neg__(self):  # noqa: D105
        return Offset(-self.dx, -self.dy, self.dx_err, self.dy_err)

    def __sub__(self, other):  # noqa: D105
        if not isinstance(other, Offset):
            return NotImplemented
        return self + (-other)
