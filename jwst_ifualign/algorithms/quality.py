"""Quality measures of a (combined) cube: how sharp its point source is."""

from __future__ import annotations

import warnings

import numpy as np
from astropy.modeling import fitting, models

__all__ = ["white_light", "point_source_fwhm"]


def white_light(data, *, dq=None, do_not_use=None):
    """Mean over wavelength of the valid voxels; shape (ny, nx), NaN where no plane is valid.

    Parameters
    ----------
    data : ndarray, shape (nwave, ny, nx)
        Surface brightness; NaN where no data.
    dq, do_not_use : ndarray of uint32 (same shape) and int, optional
        DQ bits and the bit that excludes a voxel (jwst's ``DO_NOT_USE``, passed in by the
        caller: this layer does not import the data models); both or neither.
    """
    valid = np.isfinite(data)
    if (dq is None) != (do_not_use is None):
        raise ValueError("give both dq and do_not_use, or neither")
    if dq is not None:
        valid &= (dq & do_not_use) == 0
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(valid, data, 0.0).sum(axis=0) / valid.sum(axis=0)


def point_source_fwhm(image, *, box=4):
    """FWHM (pixels) of the brightest compact source, from a 2-D Gaussian plus constant fit.

    Parameters
    ----------
    image : ndarray, shape (ny, nx)
        NaN where no data.
    box : int
        Half-size of the fitted box around the brightest pixel.

    Returns
    -------
    fwhm : float
        Geometric mean of the fitted FWHMs along the two axes, pixels.
    x, y : float
        Fitted centre (column, row).
    """
    img = np.asarray(image, float)
    y0, x0 = np.unravel_index(np.nanargmax(img), img.shape)
    ys = slice(max(0, y0 - box), min(img.shape[0], y0 + box + 1))
    xs = slice(max(0, x0 - box), min(img.shape[1], x0 + box + 1))
    sub = img[ys, xs]
    yy, xx = np.mgrid[ys, xs]
    ok = np.isfinite(sub)
    base = np.nanmedian(sub)
    init = models.Gaussian2D(
        amplitude=np.nanmax(sub) - base, x_mean=x0, y_mean=y0, x_stddev=1.0, y_stddev=1.0
    ) + models.Const2D(base)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = fitting.TRFLSQFitter()(init, xx[ok], yy[ok], sub[ok])
    g = fit[0]
    fwhm = 2.3548 * np.sqrt(abs(g.x_stddev.value * g.y_stddev.value))
    return float(fwhm), float(g.x_mean.value), float(g.y_mean.value)
