"""Un-flagged outlier voxels of a single-exposure cube: cosmic-ray and bad-pixel residuals.

spec2 cubes are built before outlier detection (calwebb_spec3 runs it, calwebb_spec2 does not),
so single voxels far above their surroundings remain, with clean DQ. A voxel ``d(z, y, x)`` is
rejected when all three hold:

1. it stands out along wavelength: ``s = d - max(d[z - 1], d[z + 1]) > threshold * err``
   (the larger of its two spectral neighbours; one at the ends of the cube);
2. it is a spike, not the top of a resolved emission line:
   ``s > SPECTRAL_FRACTION * (d - max(d[z - 2], d[z + 2]))``: a line spread over a few planes
   rises gradually (``s`` is a small part of the rise over two planes), a spike does not;
3. it is alone on the sky: each of its 4 spatial neighbours in the same plane has a spectral
   excess ``s_n`` below ``SPATIAL_FRACTION * s``: emission (a line of an extended source, of a
   sampled point source) fills neighbouring spaxels at that wavelength, a cosmic ray does not.

A line is kept when it is resolved in wavelength (2.) or on the sky (3.); only a voxel sharp in
both is taken for an outlier. (A line that is unresolved in wavelength AND on the sky, such as
a narrow line of a point source on NIRSpec's undersampled grid, would be clipped: raise
``threshold`` or turn the rejection off for such data.) NaN voxels never count as outliers and
NaN neighbours are ignored. Every test is a few vectorised passes over a block of planes; the
tests 2 and 3 only run on the candidates of test 1.

Inputs are plain arrays; this module knows nothing about datamodels.
"""

from __future__ import annotations

import numpy as np

__all__ = ["find_outliers", "DEFAULT_THRESHOLD", "SPECTRAL_FRACTION", "SPATIAL_FRACTION"]

#: Default threshold (units of ERR) of a voxel's excess over its larger spectral neighbour.
DEFAULT_THRESHOLD = 10.0

#: Test 2: a spike's excess over its nearest planes is at least this part of its excess over
#: the planes two away (a Gaussian line of sigma 1 plane: 0.45; sigma 2.3 planes: 0.29).
SPECTRAL_FRACTION = 0.7

#: Test 3: a spike's spatial neighbours have spectral excesses below this part of its own.
SPATIAL_FRACTION = 0.5


def _spectral_excess(d):
    """``d - max(d[z-1], d[z+1])`` with NaN neighbours ignored (one neighbour at the ends)."""
    s = np.empty_like(d)
    if d.shape[0] < 2:
        s[:] = np.nan
        return s
    np.fmax(d[:-2], d[2:], out=s[1:-1])
    np.subtract(d[1:-1], s[1:-1], out=s[1:-1])
    s[0] = d[0] - d[1]
    s[-1] = d[-1] - d[-2]
    return s


def find_outliers(data, err, *, threshold=DEFAULT_THRESHOLD, block=256):
    """Flat indices of the outlier voxels of a cube (module docstring).

    Parameters
    ----------
    data, err : ndarray, shape (nwave, ny, nx)
        Surface brightness and its 1-sigma error (any float dtype and byte order); NaN where
        there is no data. Voxels with a non-finite or non-positive error are never rejected.
    threshold : float
        Smallest excess over the larger spectral neighbour, in units of ``err``.
    block : int
        Planes processed at once (bounds memory: a few float32 copies of a block).

    Returns
    -------
    ndarray of int64
        Sorted indices into ``data.ravel()`` of the rejected voxels.
    """
    nwave, ny, nx = data.shape
    found = []
    for z0 in range(0, nwave, block):
        z1 = min(nwave, z0 + block)
        # Two planes of context on each side, for the tests at the block's edges.
        a0, a1 = max(0, z0 - 2), min(nwave, z1 + 2)
        d = np.asarray(data[a0:a1], dtype=np.float32)
        e = np.asarray(err[z0:z1], dtype=np.float32)
        s_full = _spectral_excess(d)
        s = s_full[z0 - a0 : z1 - a0]
        with np.errstate(invalid="ignore"):
            limit = np.multiply(e, np.float32(threshold))
            flat = np.flatnonzero(s > limit)
        if flat.size == 0:
            continue
        zc, yc, xc = np.unravel_index(flat, s.shape)
        positive = e[zc, yc, xc] > 0  # False for NaN (data, neighbours or error compare False)
        zc, yc, xc = zc[positive], yc[positive], xc[positive]
        zd = zc + (z0 - a0)  # plane index in d
        value = d[zd, yc, xc]
        excess = s[zc, yc, xc]
        far = np.full(zc.size, np.nan, np.float32)
        for dz in (-2, 2):
            k = zd + dz
            ok = (k >= 0) & (k < d.shape[0])
            far[ok] = np.fmax(far[ok], d[k[ok], yc[ok], xc[ok]])
        with np.errstate(invalid="ignore"):
            rise = value - far
            # No plane two away (both NaN): test 2 cannot tell, keep the spike test alone.
            spike = ~(rise * SPECTRAL_FRACTION > excess)
        neighbour = np.full(zc.size, -np.inf, np.float32)
        for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0)):
            y, x = yc + dy, xc + dx
            ok = (y >= 0) & (y < ny) & (x >= 0) & (x < nx)
            neighbour[ok] = np.fmax(neighbour[ok], s_full[zd[ok], y[ok], x[ok]])
        alone = ~(neighbour >= SPATIAL_FRACTION * excess)
        keep = spike & alone
        found.append(np.ravel_multi_index((zc[keep] + z0, yc[keep], xc[keep]), data.shape))
    if not found:
        return np.zeros(0, np.int64)
    return np.sort(np.concatenate(found)).astype(np.int64)
