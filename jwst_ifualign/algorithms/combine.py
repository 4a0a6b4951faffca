"""Combine aligned cubes that share one grid into one cube.

Cubes are surface brightness, so they are averaged, never summed. Every voxel covered by at least
one member is kept (the union of the footprints), with the members that cover it.
"""

from __future__ import annotations

import warnings

import numpy as np

__all__ = ["COMBINE_METHODS", "combine_cubes", "WeightedMean"]

#: Names accepted by :func:`combine_cubes`.
COMBINE_METHODS = ("weighted_mean", "mean", "median")

# Efficiency of the median relative to the mean for Gaussian noise: err(median) ~ 1.2533 err(mean)
_MEDIAN_ERR_FACTOR = np.sqrt(np.pi / 2.0)


def combine_cubes(data, err, valid, *, method="weighted_mean"):
    """Combine a stack of aligned cubes voxel by voxel.

    Parameters
    ----------
    data, err : ndarray, shape (nmember, nwave, ny, nx)
        Aligned surface brightness and 1-sigma errors of each member.
    valid : ndarray of bool, shape (nmember, nwave, ny, nx)
        Voxels that may contribute. For ``weighted_mean``, voxels whose error is not finite and
        positive cannot be weighted and are not used.
    method : {"weighted_mean", "mean", "median"}
        ``weighted_mean``: inverse-variance weighted mean, error ``1 / sqrt(sum(1/err**2))``;
        ``mean``: error ``sqrt(sum(err**2)) / n``; ``median``: error ``sqrt(pi/2)`` times that of
        the mean.

    Returns
    -------
    data_out, err_out : ndarray of float32, shape (nwave, ny, nx)
        NaN where no member contributes.
    count : ndarray of int, shape (nwave, ny, nx)
        Number of members contributing to each voxel.
    """
    if method not in COMBINE_METHODS:
        raise ValueError(f"combine must be one of {', '.join(COMBINE_METHODS)}; got {method!r}")
    valid = np.asarray(valid, bool)
    if method == "weighted_mean":
        valid = valid & np.isfinite(err) & (err > 0)
    count = valid.sum(axis=0)
    covered = count > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        if method == "weighted_mean":
            w = np.where(valid, err, np.inf).astype(np.float32)
            np.multiply(w, w, out=w)
            np.divide(1.0, w, out=w)  # 1/err**2, zero where not valid
            wsum = w.sum(axis=0)
            w *= np.where(valid, data, 0.0)
            out = w.sum(axis=0) / wsum
            out_err = 1.0 / np.sqrt(wsum)
        else:
            e2 = (np.where(valid, err, 0.0).astype(np.float64) ** 2).sum(axis=0)
            out_err = np.sqrt(e2) / count
            if method == "mean":
                out = np.where(valid, data, 0.0).sum(axis=0, dtype=np.float64) / count
            else:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)  # uncovered voxels
                    out = np.nanmedian(np.where(valid, data, np.nan), axis=0)
                out_err = out_err * _MEDIAN_ERR_FACTOR
    out = np.where(covered, out, np.nan).astype(np.float32)
    out_err = np.where(covered, out_err, np.nan).astype(np.float32)
    return out, out_err, count


class WeightedMean:
    """Inverse-variance weighted mean built one member at a time, without a stack of members.

    Gives what :func:`combine_cubes` gives with ``method="weighted_mean"`` (to float32
    rounding) from members added one after the other, so memory holds the running sums, not
    every member.

    Parameters
    ----------
    shape : tuple of int
        ``(nwave, ny, nx)`` of the combined block.
    out : tuple of ndarray, optional
        ``(data, err, count)`` arrays of that shape (float32, float32, int16) that hold the
        running sums and then the result (:meth:`result` returns them), such as views of the
        whole output cube: no block-sized temporaries and no copy. Their contents are
        overwritten.
    """

    def __init__(self, shape, out=None):
        if out is None:
            self.dsum = np.zeros(shape, np.float32)
            self.wsum = np.zeros(shape, np.float32)
            self.count = np.zeros(shape, np.int16)
            return
        self.dsum, self.wsum, self.count = out
        for array, dtype in zip(out, (np.float32, np.float32, np.int16), strict=True):
            if array.shape != tuple(shape) or array.dtype != dtype:
                raise ValueError(f"out arrays must have shape {tuple(shape)} and dtypes float32, float32, int16")
            array[...] = 0

    def add(self, data, var, valid):
        """Add one member.

        Parameters
        ----------
        data : ndarray of float32, shape (nwave, ny, nx)
            Surface brightness, 0 where ``valid`` is False.
        var : ndarray of float32, shape (nwave, ny, nx)
            Variance (error squared), +inf where ``valid`` is False.
        valid : ndarray of bool, shape (nwave, ny, nx)
            Voxels the member covers; they must have a finite, positive variance.
        """
        with np.errstate(divide="ignore"):
            weight = np.divide(np.float32(1), var, dtype=np.float32)
        self.wsum += weight
        np.multiply(weight, data, out=weight)
        self.dsum += weight
        self.count += valid

    def result(self):
        """(data, err, count), computed in place of the running sums (call once): the weighted mean, ``1 / sqrt(sum(1/err**2))``, members per voxel.

        ``data`` and ``err`` are NaN where no member contributes.
        """
        uncovered = self.count == 0
        with np.errstate(invalid="ignore", divide="ignore"):
            out = np.divide(self.dsum, self.wsum, out=self.dsum)  # 0 / 0 = NaN where uncovered
            err = np.sqrt(self.wsum, out=self.wsum)
            np.divide(np.float32(1), err, out=err)
        out[uncovered] = np.nan
        err[uncovered] = np.nan
        return out, err, self.count
