"""Types shared by the adapter modules: per-member results, the combined result (and the options,
:class:`~jwst_ifualign.adapter.parameters.AlignOptions`, re-exported).

Also the voxel validity rule used everywhere a model's arrays are read.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from stdatamodels.jwst.datamodels import dqflags

from ..algorithms.measure import MemberMeasurement
from ..algorithms.offset import Offset
from .parameters import AlignOptions

__all__ = [
    "AlignOptions",
    "MemberResult",
    "AlignResult",
    "PairFit",
    "FLAG_OK",
    "FLAG_REFERENCE",
    "FLAG_MAX_SHIFT",
    "FLAG_NOT_MEASURED",
    "FLAG_LOW_SNR",
    "FLAG_NO_DATA",
    "FLAG_NOT_CONNECTED",
    "DO_NOT_USE",
    "NON_SCIENCE",
    "valid_voxels",
]

DO_NOT_USE = dqflags.pixel["DO_NOT_USE"]
NON_SCIENCE = dqflags.pixel["NON_SCIENCE"]

#: Flags of a member in the offsets table. ``ok``: measured and applied. (Not an empty string:
#: astropy reads an empty ECSV string back as masked, so ``t[t["flag"] == ""]`` finds nothing.)
FLAG_OK = "ok"
FLAG_REFERENCE = "reference"
FLAG_MAX_SHIFT = "rejected_max_shift"
FLAG_NOT_MEASURED = "not_measured"
FLAG_LOW_SNR = "rejected_low_snr"
FLAG_NO_DATA = "no_data"
#: Overlaps neither the reference nor any member linked to it: keeps its WCS.
FLAG_NOT_CONNECTED = "not_connected"


@dataclass
class MemberResult:
    """What was measured and applied for one member.

    Attributes
    ----------
    name : str
        Member file name.
    measured : Offset
        Measured offset (package convention, reference pixels); NaN if not measured.
    applied : Offset
        Offset folded into the member's WCS for resampling (zero if rejected).
    flag : str
        "ok" (measured and applied), "reference", "rejected_max_shift", "rejected_low_snr",
        "not_measured", "no_data" or "not_connected".
    ra_offset, dec_offset, ra_offset_err, dec_offset_err : float
        Applied correction for cube_build's offset_file, arcsec (RA times cos Dec), relative to
        the reference member.
    ra_offset_abs, dec_offset_abs, ra_offset_abs_err, dec_offset_abs_err : float
        With a reference image or catalog: the correction onto that frame (the relative one plus
        the reference frame's absolute correction), arcsec; NaN otherwise.
    measurement : MemberMeasurement or None
        Details (formal error, chunk offsets), None for the reference or when not measured.
    outliers : int
        Un-flagged outlier voxels rejected from the member (kept out of the measurement and the
        combined cube).
    """

    name: str
    measured: Offset
    applied: Offset
    flag: str = FLAG_OK
    ra_offset: float = 0.0
    dec_offset: float = 0.0
    ra_offset_err: float = 0.0
    dec_offset_err: float = 0.0
    measurement: MemberMeasurement | None = None
    ra_offset_abs: float = np.nan
    dec_offset_abs: float = np.nan
    ra_offset_abs_err: float = np.nan
    dec_offset_abs_err: float = np.nan
    outliers: int = 0

    @property
    def accepted(self):
        """True if the member's own offset is used: measured and accepted, or the reference."""
        return self.flag in (FLAG_OK, FLAG_REFERENCE)


@dataclass
class AlignResult:
    """Combined cube arrays on the output grid and the per-member results.

    ``grid_origin`` is the reference pixel of output pixel (0, 0): (0, 0) for the reference's
    own grid, negative values for a grid extended by ``output_grid="union"``.
    ``reference_index`` is the reference member's index (0 to N - 1), resolved once from the
    ``reference`` option. ``absolute`` is the
    :class:`~jwst_ifualign.adapter.absolute.AbsoluteCorrection` of the reference frame when the
    offsets were tied to a reference image or catalog, else None.
    """

    data: np.ndarray
    err: np.ndarray
    dq: np.ndarray
    count: np.ndarray
    members: list
    wavelengths: np.ndarray
    measure_planes: tuple
    chunk_planes: list = field(default_factory=list)
    pair_fit: object = None
    grid_origin: tuple = (0, 0)
    reference_index: int = 0
    absolute: object = None


def valid_voxels(model, z0, z1, *, positive_err=False):
    """Usable voxels of planes [z0, z1): finite data, not DO_NOT_USE, a finite, non-negative ERR
    (positive with ``positive_err``, which inverse-variance weighting needs)."""
    err = model.err[z0:z1]
    valid = np.isfinite(model.data[z0:z1])
    with np.errstate(invalid="ignore"):
        valid &= (err > 0) if positive_err else (err >= 0)  # False for NaN
        valid &= err < np.inf
    valid &= (model.dq[z0:z1] & DO_NOT_USE) == 0
    return valid


@dataclass
class PairFit:
    """Global least-squares solution from all pairs of accepted members.

    Attributes
    ----------
    members : list of int
        Indices of the members in the fit (the reference included).
    offsets : list of Offset
        Fitted offsets of those members.
    residuals : list of tuple
        ``(i, j, rx, ry, rx_sigma, ry_sigma)`` per pair (member indices, px and sigma).
    chi2, dof : float, int
        Chi-square of the fit and its degrees of freedom.
    """

    members: list
    offsets: list
    residuals: list
    chi2: float
    dof: int
