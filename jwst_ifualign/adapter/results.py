"""Types shared by the adapter modules: options, per-member results, the combined result.

Also the voxel validity rule used everywhere a model's arrays are read.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from stdatamodels.jwst.datamodels import dqflags

from ..algorithms.measure import MemberMeasurement
from ..algorithms.offset import Offset

__all__ = [
    "AlignOptions",
    "MemberResult",
    "AlignResult",
    "PairFit",
    "FLAG_REFERENCE",
    "FLAG_MAX_SHIFT",
    "FLAG_NOT_MEASURED",
    "FLAG_LOW_SNR",
    "FLAG_NO_DATA",
    "DO_NOT_USE",
    "NON_SCIENCE",
    "valid_voxels",
]

DO_NOT_USE = dqflags.pixel["DO_NOT_USE"]
NON_SCIENCE = dqflags.pixel["NON_SCIENCE"]

#: Flags of a member in the offsets table.
FLAG_REFERENCE = "reference"
FLAG_MAX_SHIFT = "rejected_max_shift"
FLAG_NOT_MEASURED = "not_measured"
FLAG_LOW_SNR = "rejected_low_snr"
FLAG_NO_DATA = "no_data"



@dataclass(frozen=True)
class AlignOptions:
    """Options of :func:`align_members` (the Step's parameters; see its spec for help texts)."""

    method: str = "chi2"
    upsample_factor: int | None = None
    wavelength_range: tuple | None = None
    slice: int | None = None
    error_chunks: int = 5
    combine: str = "weighted_mean"
    reference: int = 0
    max_shift: float = 3.0
    min_snr: float = 5.0
    solution: str = "pairs"
    kernel: str = "bicubic"
    output_grid: str = "reference"
    chunk_size: int = 256
    parallel: bool = False
    outlier_threshold: float = 10.0


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
        "" (measured and applied), "reference", "rejected_max_shift", "rejected_low_snr",
        "not_measured" or "no_data".
    ra_offset, dec_offset, ra_offset_err, dec_offset_err : float
        Applied correction for cube_build's offset_file, arcsec (RA times cos Dec).
    measurement : MemberMeasurement or None
        Details (formal error, chunk offsets), None for the reference or when not measured.
    outliers : int
        Un-flagged outlier voxels rejected from the member (kept out of the measurement and the
        combined cube).
    """

    name: str
    measured: Offset
    applied: Offset
    flag: str = ""
    ra_offset: float = 0.0
    dec_offset: float = 0.0
    ra_offset_err: float = 0.0
    dec_offset_err: float = 0.0
    measurement: MemberMeasurement | None = None
    outliers: int = 0

    @property
    def accepted(self):
        """True if the member's own offset is used: measured and accepted, or the reference."""
        return self.flag in ("", FLAG_REFERENCE)


@dataclass
class AlignResult:
    """Combined cube arrays on the output grid and the per-member results.

    ``grid_origin`` is the reference pixel of output pixel (0, 0): (0, 0) for the reference's
    own grid, negative values for a grid extended by ``output_grid="union"``.
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
