"""Array operations of the absolute mode: a cube's image matched to a reference image, and
point-source positions.

Nothing here knows about datamodels or WCS; images are 2-D arrays of shape (ny, nx) with NaN
where there is no data. Pixel positions are ``(x, y)``: x is the column (numpy axis 1).
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np
from astropy.convolution import Gaussian2DKernel, convolve
from astropy.modeling import fitting, models
from astropy.utils.exceptions import AstropyUserWarning

__all__ = [
    "FWHM_PER_SIGMA",
    "SourcePosition",
    "weighted_white_light",
    "matching_sigma",
    "convolve_gaussian",
    "flux_scale",
    "fit_point_source",
]

#: FWHM of a Gaussian in units of its sigma.
FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))


class SourcePosition(NamedTuple):
    """Fitted position of a compact source, pixels: ``(x, y)`` and their 1-sigma errors."""

    x: float
    y: float
    x_err: float
    y_err: float


def weighted_white_light(data, err, valid, weights, *, min_fraction=0.5):
    """Throughput-weighted mean over wavelength of the valid voxels, and its 1-sigma error.

    Parameters
    ----------
    data, err : ndarray, shape (nwave, ny, nx)
        Surface brightness and its 1-sigma error (same units).
    valid : ndarray of bool, shape (nwave, ny, nx)
        Usable voxels.
    weights : ndarray, shape (nwave,)
        Non-negative weight of each plane (a filter's throughput at the plane's wavelength).
    min_fraction : float
        A spaxel whose valid planes carry less than this fraction of the total weight is NaN.

    Returns
    -------
    image, image_err : ndarray, shape (ny, nx)
        ``sum(w d) / sum(w)`` over valid planes and ``sqrt(sum(w**2 e**2)) / sum(w)``.
    """
    w = np.asarray(weights, float)[:, None, None] * valid
    wsum = w.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        image = np.where(valid, data, 0.0).astype(float)
        image = (w * image).sum(axis=0) / wsum
        e2 = (w**2 * np.where(valid, err, 0.0).astype(float) ** 2).sum(axis=0)
        image_err = np.sqrt(e2) / wsum
    enough = wsum >= min_fraction * float(np.sum(weights))
    return np.where(enough, image, np.nan), np.where(enough, image_err, np.nan)


def matching_sigma(fwhm_sharp, fwhm_broad):
    """Sigma (pixels) of the Gaussian that takes a PSF of ``fwhm_sharp`` to ``fwhm_broad``.

    Zero when the first is not sharper. Both FWHMs in pixels of the image to be convolved.
    """
    if not (np.isfinite(fwhm_sharp) and np.isfinite(fwhm_broad)) or fwhm_broad <= fwhm_sharp:
        return 0.0
    return float(np.sqrt(fwhm_broad**2 - fwhm_sharp**2) / FWHM_PER_SIGMA)


def convolve_gaussian(image, sigma):
    """Convolve ``image`` with a normalised circular Gaussian of ``sigma`` pixels.

    NaN pixels are left out of the convolution (astropy's normalised convolution) and stay NaN.
    """
    if sigma <= 0:
        return np.array(image, float)
    kernel = Gaussian2DKernel(sigma, x_size=2 * int(np.ceil(4 * sigma)) + 1)
    return convolve(
        image, kernel, boundary="extend", nan_treatment="interpolate", preserve_nan=True
    )


def flux_scale(reference, image):
    """``(a, b)`` of the least-squares fit ``reference ~ a * image + b`` over pixels valid in both.

    Calibrations differ between an image and a cube collapsed over the filter's band; the
    registration compares shapes, so the cube's image is scaled by ``a`` first.
    """
    ok = np.isfinite(reference) & np.isfinite(image)
    if ok.sum() < 3:
        return 1.0, 0.0
    design = np.stack([image[ok], np.ones(int(ok.sum()))], axis=1)
    (a, b), *_ = np.linalg.lstsq(design, reference[ok], rcond=None)
    if not a > 0:
        return 1.0, 0.0
    return float(a), float(b)


def fit_point_source(image, err, x0, y0, *, box=4, search=2):
    """Position of the compact source near ``(x0, y0)``: a 2-D Gaussian on a plane.

    The plane takes up the slope of extended emission around the source, which pulls a
    Gaussian-plus-constant fit toward it (11 mas on the simulated MIRI scene, whose blob sits
    0.7" from the source).

    Parameters
    ----------
    image, err : ndarray, shape (ny, nx)
        Image and its 1-sigma error; NaN where no data.
    x0, y0 : float
        Predicted position, pixels.
    box : int
        Half-size of the fitted box around the brightest pixel.
    search : int
        Half-size of the box around ``(x0, y0)`` searched for the brightest pixel.

    Returns
    -------
    SourcePosition
        Errors from the fit's covariance, scaled by its reduced chi-square when that is above
        one (a PSF that is not Gaussian).

    Raises
    ------
    ValueError
        If the box leaves the image's data or the fit does not converge near the source.
    """
    ny, nx = image.shape
    ix, iy = int(round(x0)), int(round(y0))
    sy = slice(max(iy - search, 0), min(iy + search + 1, ny))
    sx = slice(max(ix - search, 0), min(ix + search + 1, nx))
    patch = image[sy, sx]
    if patch.size == 0 or not np.isfinite(patch).any():
        raise ValueError(f"no data near ({x0:.1f}, {y0:.1f})")
    py, px = np.unravel_index(np.nanargmax(patch), patch.shape)
    cy, cx = sy.start + py, sx.start + px
    y0b, y1b, x0b, x1b = cy - box, cy + box + 1, cx - box, cx + box + 1
    if y0b < 0 or x0b < 0 or y1b > ny or x1b > nx:
        raise ValueError(f"the source at ({cx}, {cy}) is too close to the edge")
    cut = image[y0b:y1b, x0b:x1b]
    cut_err = err[y0b:y1b, x0b:x1b]
    ok = np.isfinite(cut) & np.isfinite(cut_err) & (cut_err > 0)
    if ok.sum() < 0.8 * cut.size:
        raise ValueError(f"the source at ({cx}, {cy}) has holes or edges in its box")
    yy, xx = np.mgrid[y0b:y1b, x0b:x1b]
    background = float(np.median(cut[ok]))
    start = models.Gaussian2D(
        amplitude=float(cut[ok].max() - background),
        x_mean=cx,
        y_mean=cy,
        x_stddev=1.0,
        y_stddev=1.0,
    ) + models.Planar2D(slope_x=0.0, slope_y=0.0, intercept=background)
    start.x_stddev_0.bounds = (0.2, 2.0 * box)
    start.y_stddev_0.bounds = (0.2, 2.0 * box)
    fitter = fitting.LevMarLSQFitter(calc_uncertainties=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyUserWarning)
        fit = fitter(start, xx[ok], yy[ok], cut[ok], weights=1.0 / cut_err[ok], maxiter=400)
    x, y = float(fit.x_mean_0.value), float(fit.y_mean_0.value)
    cov = fitter.fit_info.get("param_cov")
    if cov is None or not (abs(x - cx) <= box and abs(y - cy) <= box):
        raise ValueError(f"the point-source fit near ({cx}, {cy}) did not converge")
    names = list(fit.param_names)
    free = [n for n in names if not fit.fixed[n]]
    ex = float(np.sqrt(cov[free.index("x_mean_0"), free.index("x_mean_0")]))
    ey = float(np.sqrt(cov[free.index("y_mean_0"), free.index("y_mean_0")]))
    # calc_uncertainties scales the covariance by the reduced chi-square; never below the noise.
    resid = (cut[ok] - fit(xx[ok], yy[ok])) / cut_err[ok]
    dof = max(int(ok.sum()) - len(free), 1)
    red = float(np.sum(resid**2) / dof)
    if red < 1.0:
        ex, ey = ex / np.sqrt(red), ey / np.sqrt(red)
    return SourcePosition(x, y, ex, ey)
