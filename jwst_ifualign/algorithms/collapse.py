"""Wavelength-collapsed ("white-light") images of a cube, for measuring offsets.

A single wavelength plane is too noisy to register at low S/N; the mean over many planes is not.
Inputs are plain arrays: data and error of shape (nwave, ny, nx) and a boolean mask of the
voxels that may be used (finite, not flagged DO_NOT_USE).
"""

from __future__ import annotations

import numpy as np

__all__ = ["collapse", "chunk_bounds"]


def collapse(data, err, valid, *, min_fraction=0.5):
    """Mean image over the wavelength axis and its 1-sigma error.

    Parameters
    ----------
    data, err : ndarray, shape (nwave, ny, nx)
        Surface brightness and its 1-sigma error.
    valid : ndarray of bool, shape (nwave, ny, nx)
        Voxels that may be used.
    min_fraction : float
        A spaxel is valid in the image only when at least this fraction of its planes are valid,
        so that spaxels seen in only part of the range (footprint edges, NaN planes) do not
        carry a different spectral weighting into the registration.

    Returns
    -------
    image, image_err : ndarray of float64, shape (ny, nx)
        Mean over valid planes and its error ``sqrt(sum err**2) / n``; NaN where not valid.
    """
    nwave = data.shape[0]
    n = valid.sum(axis=0)
    d = np.where(valid, data, 0.0).sum(axis=0, dtype=np.float64)
    e2 = np.where(valid, err, 0.0).astype(np.float64) ** 2
    e2 = e2.sum(axis=0)
    ok = n >= max(1, min_fraction * nwave)
    with np.errstate(invalid="ignore", divide="ignore"):
        image = np.where(ok, d / n, np.nan)
        image_err = np.where(ok, np.sqrt(e2) / n, np.nan)
    return image, image_err


def chunk_bounds(start, stop, n_chunks):
    """Split the plane range ``[start, stop)`` into ``n_chunks`` contiguous near-equal chunks.

    Returns
    -------
    list of (int, int)
        ``(first, stop)`` plane indices of each chunk; fewer chunks when there are fewer planes.
    """
    n_chunks = max(1, min(int(n_chunks), stop - start))
    edges = np.linspace(start, stop, n_chunks + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]
