"""Wavelength-collapsed ("white-light") images of a cube, for measuring offsets.

A single wavelength plane is too noisy to register at low S/N; the mean over many planes is not.
Inputs are plain arrays: data and error of shape (nwave, ny, nx) and a boolean mask of the
voxels that may be used (finite, not flagged DO_NOT_USE).
"""

from __future__ import annotations

import numpy as np

__all__ = ["collapse", "collapse_sums", "image_from_sums", "chunk_bounds"]


def collapse_sums(data, err, valid):
    """Per-spaxel sums over wavelength of valid data, squared errors, and valid planes.

    Parameters
    ----------
    data, err : ndarray, shape (nwave, ny, nx)
        Surface brightness and its 1-sigma error.
    valid : ndarray of bool, shape (nwave, ny, nx)
        Voxels that may be used.

    Returns
    -------
    dsum, e2sum : ndarray of float64, shape (ny, nx)
    n : ndarray of int, shape (ny, nx)
        Sums that can be added over consecutive blocks of planes.
    """
    # Masked copies in the data's own precision; sums in float64, so that they do not depend on
    # how the planes are split into blocks.
    zero = np.zeros((), np.result_type(data.dtype, np.float32))
    dsum = np.where(valid, data, zero).sum(axis=0, dtype=np.float64)
    e2 = np.where(valid, err, zero)
    np.multiply(e2, e2, out=e2)
    return dsum, e2.sum(axis=0, dtype=np.float64), valid.sum(axis=0)


def image_from_sums(dsum, e2sum, n, nplanes, *, min_fraction=0.5):
    """Mean image and its error from :func:`collapse_sums` over ``nplanes`` planes.

    A spaxel is valid in the image only when it has at least ``min_fraction`` as many valid
    planes as the best-covered spaxel, so that spaxels seen in only part of the range (footprint
    edges, NaN planes) do not carry a different spectral weighting into the registration.

    Returns
    -------
    image, image_err : ndarray of float64, shape (ny, nx)
        Mean over valid planes and its error ``sqrt(sum err**2) / n``; NaN where not valid.
    """
    # Relative to the best-covered spaxel, not to all planes: planes lost everywhere (flagged
    # or NaN in the whole cube) must not remove every spaxel.
    ok = n >= max(1, min_fraction * min(nplanes, int(np.max(n, initial=0))))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ok, dsum / n, np.nan), np.where(ok, np.sqrt(e2sum) / n, np.nan)


def collapse(data, err, valid, *, min_fraction=0.5):
    """Mean image over the wavelength axis and its 1-sigma error (see :func:`image_from_sums`).

    Parameters
    ----------
    data, err : ndarray, shape (nwave, ny, nx)
    valid : ndarray of bool, shape (nwave, ny, nx)
    min_fraction : float

    Returns
    -------
    image, image_err : ndarray of float64, shape (ny, nx)
    """
    return image_from_sums(*collapse_sums(data, err, valid), data.shape[0], min_fraction=min_fraction)


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
