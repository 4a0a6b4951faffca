"""Measure the shift between two images in the package's single convention.

Each backend wraps one library function and converts its output into
:class:`~jwst_ifualign.algorithms.offset.Offset` in exactly one place:

===================== =========================================================== ============
method                library call                                                uncertainty
===================== =========================================================== ============
``chi2``              chi2 surface of ``image_registration.chi2_shift`` (what its  chi2 Hessian
                      ``chi2_shifts.chi2n_map`` returns, computed with
                      ``scipy.fft``: :func:`chi2_map`) + quadratic fit of its minimum
``dft``               ``image_registration.register_images(ref, img, usfac)``,    chi2 Hessian+
                      at convergence averaged with a grid offset by half its step
``cross_correlation`` ``image_registration.cross_correlation_shifts(ref, img)``   chi2 Hessian+
``centroid``          flux-weighted centroid difference (``numpy``)               from ERR
===================== =========================================================== ============

+ these libraries give no uncertainty; when error images are given, the noise error comes from
the curvature of the chi2 surface of the same prepared images.

With ``smoothing`` (a Gaussian sigma in pixels), both prepared images are band-pass filtered
before the backend runs (not for ``centroid``): a Gaussian of ``smoothing`` pixels minus one
of ``BAND_PASS_RATIO`` times that (:func:`_filtered`). Filtering both images
alike keeps exact shifted copies shifted copies, and it removes the spatial frequencies where
the patterns of a single exposure live: column striping with a period of a few pixels and the
aliased part of an undersampled PSF (high), a background gradient that differs between
exposures (low). The noise error is then computed for the filtered estimator
(:func:`_linear_errors`), since the curvature of a chi2 surface of correlated pixels is not
its covariance.

How both images are prepared (:func:`measure_offset`):

1. Only pixels valid in both (finite data, finite positive error) can be used.
2. One smooth window multiplies both images, moved with the current estimate of the shift in
   the second image, so that the two windowed images are shifted copies of each other and the
   window's edges (footprint edges through extended emission) cannot pull the result toward
   zero. Each image has its median over the window subtracted.
3. Both are zero-padded to even sizes with a margin (no FFT wrap-around; and the fix for
   ``cross_correlation_shifts``' +0.5 px error on odd-length axes, see
   ``tests/test_registration.py::test_library_defect_odd_sizes_and_fix``).
4. The second image is moved back by the current estimate (Fourier shift), so each backend
   measures only a small residual, where peak fits are unbiased; the estimate is updated and
   steps 2-4 repeat until it changes by less than ``tolerance``.

Holes (a few missing pixels surrounded by data) are not cut out of the window of step 2: each
image's holes take the other image's windowed content at the current estimate, so they agree
with it and carry no information; the iteration converges to what the valid pixels give,
whichever image the holes are in (:func:`_windowed_pair`).

:func:`measure_offset_details` also returns a spatial error from the residual of the two aligned
images (a cluster-robust estimate over tiles and strips), which sees static patterns such as
striping that an error from wavelength chunks cannot.

This module knows nothing about datamodels or WCS: inputs are 2-D arrays of shape (ny, nx).
"""

from __future__ import annotations

import functools
import warnings
from typing import NamedTuple

import numpy as np
import scipy.fft
from scipy import ndimage

from .offset import Offset

__all__ = [
    "METHODS",
    "Registration",
    "RegistrationError",
    "chi2_map",
    "measure_offset",
    "measure_offset_details",
    "resolution",
]

#: Names accepted by :func:`measure_offset`.
METHODS = ("chi2", "dft", "cross_correlation", "centroid")

#: Upsampling of register_images when none is given (each call quantised to 0.01 px, ~10 ms on
#: 64x64; the result, two calls on grids offset by half a step, to 0.005 px).
DFT_UPSAMPLE_DEFAULT = 100

#: Radius (pixels) of the aperture around the brightest source for ``method="centroid"``.
CENTROID_RADIUS = 5.0

#: Fewest pixels valid in both images for a measurement to be attempted.
MIN_VALID_PIXELS = 9

#: Largest connected group of invalid pixels, away from the image border, treated as a hole
#: (filled from the other image at the current shift) rather than as an edge.
MAX_HOLE_PIXELS = 6

#: Ratio of the broad to the fine Gaussian of the ``smoothing`` band-pass filter. The fine one
#: removes what varies over a few pixels (striping, an undersampled PSF's aliasing); the broad
#: one, subtracted, removes what varies over many (a background gradient that differs between
#: exposures, which a low-pass filter alone lets through and emphasises: on MIRI-like cubes
#: its largest error went from 0.050 to 0.154 px, and back to 0.040 px with the band-pass).
BAND_PASS_RATIO = 3.0

#: Side (pixels) of the square tiles whose summed residual scores enter the spatial error (a
#: residual pattern correlated over neighbouring pixels is counted once per tile, not per pixel).
SPATIAL_TILE = 3


class Registration(NamedTuple):
    """A measured offset and its spatial (residual-based) error.

    Attributes
    ----------
    offset : Offset
        The shift and the method's own (noise) error.
    spatial_err : tuple of float
        ``(ex, ey)`` px: the error that the residual between the two aligned images implies
        (see :func:`measure_offset_details`); it contains the noise and any static pattern
        (striping, holes, an undersampled PSF, background structure). NaN when not computed.
    spatial_clusters : tuple of float
        ``(nx, ny)``: effective number of independent regions behind each spatial error (few
        when the source's core holds the information), for its own uncertainty.
    """

    offset: Offset
    spatial_err: tuple
    spatial_clusters: tuple = (np.nan, np.nan)


class RegistrationError(ValueError):
    """The two images cannot be registered (too few common valid pixels, no signal)."""


def _check_pair(reference, image, reference_err, image_err):
    """Return float arrays (ref, img, err or None, valid_ref, valid_img)."""
    reference = np.asarray(reference, dtype=float)
    image = np.asarray(image, dtype=float)
    if reference.ndim != 2 or reference.shape != image.shape:
        raise ValueError(
            f"reference and image must be 2-D arrays of one shape, got {reference.shape} "
            f"and {image.shape}"
        )
    valid_ref = np.isfinite(reference)
    valid_img = np.isfinite(image)
    err = None
    if reference_err is not None or image_err is not None:
        # One error level for the difference of the two images.
        re = np.zeros_like(reference) if reference_err is None else np.asarray(reference_err, float)
        ie = np.zeros_like(image) if image_err is None else np.asarray(image_err, float)
        if reference_err is not None:
            valid_ref &= np.isfinite(re) & (re > 0)
        if image_err is not None:
            valid_img &= np.isfinite(ie) & (ie > 0)
        err = np.sqrt(np.where(valid_ref, re, 0.0) ** 2 + np.where(valid_img, ie, 0.0) ** 2)
    return reference, image, err, valid_ref, valid_img


def _sample(array, dx, dy, cval=0.0):
    """Bilinear sample of ``array`` at (x + dx, y + dy) for every pixel (x, y).

    ``ndimage.shift`` (output p = input p - shift) gives the values of ``map_coordinates`` at
    p + (dx, dy), to the bit, in two thirds of the time.
    """
    return ndimage.shift(array, (-dy, -dx), order=1, mode="constant", cval=cval)


def _ramp(dist, width):
    """Cosine ramp from 0 (at the edge of a region) to 1 (``width`` px inside it)."""
    if width <= 0:
        return (dist > 0).astype(float)
    x = np.clip((dist - 0.5) / width, 0.0, 1.0)
    return np.where(dist > 0, 0.5 - 0.5 * np.cos(np.pi * x), 0.0)


def _aperture_weight(shape, x0, y0, radius):
    """Smooth disk: 1 inside ``radius / 2``, cosine roll-off to 0 at ``radius`` (analytic)."""
    yy, xx = np.indices(shape, dtype=float)
    r = np.hypot(xx - x0, yy - y0)
    x = np.clip((r - radius / 2) / (radius / 2), 0.0, 1.0)
    return 0.5 + 0.5 * np.cos(np.pi * x)


class _Holes(NamedTuple):
    """Hole pixels of one image: their mask and their (x, y) centres, shape (n, 2)."""

    mask: np.ndarray
    points: np.ndarray


def _find_holes(valid):
    """Small groups of invalid pixels surrounded by valid ones (not touching the border)."""
    labels, n = ndimage.label(~valid)
    mask = np.zeros(valid.shape, bool)
    if n:
        sizes = np.bincount(labels.ravel(), minlength=n + 1)
        border = np.unique(
            np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
        )
        small = sizes <= MAX_HOLE_PIXELS
        small[0] = False
        small[border] = False
        mask = small[labels]
    y, x = np.nonzero(mask)
    return _Holes(mask, np.stack([x, y], axis=1).astype(float))


def _windowed_pair(ref, img, err, valid_ref, valid_img, shift, taper, aperture=None, holes=None):
    """Apply one smooth window to both images, moved by ``shift`` in ``img``.

    The window W covers reference pixels p whose content is valid in both images (p in the
    reference, p + shift in the image). The reference is multiplied by W(p), the image by
    W(q - shift): at the true shift the two products are exact shifted copies of each other, so
    the window's edges (which cut through extended emission) do not pull the measurement toward
    zero, as a common, stationary mask does. W is a cosine ramp of the distance to the region's
    edge; the distance field (nearly linear near edges) is what is interpolated at q - shift, not
    the ramp, so the moved window is accurate. ``aperture`` ``(x, y, radius)`` multiplies the
    window by an analytic smooth disk around one source (reference pixels).

    ``holes``: ``(holes_ref, holes_img)`` from :func:`_find_holes`. A hole (a few invalid pixels
    inside the data) is not cut out of the distance field, whose bilinear interpolation is poor
    near an isolated point and would make the two windows differ right where a hole next to a
    source is (0.03-0.12 px on MIRI-like cubes). Instead the reference's holes take the image's
    windowed content at ``p + shift`` and the image's holes the reference's at ``q - shift``:
    at the current shift the filled pixels agree exactly and add nothing of their own, so a hole
    in either image is treated alike and the iteration converges to what the valid pixels
    say.

    Returns the two windowed images and the noise level ``sigma`` (one float for the whole
    window, None without error images).
    """
    holes_ref, holes_img = holes if holes is not None else (None, None)
    if holes_ref is not None:
        # Edges from the masks with the holes filled; the holes get their own analytic window.
        valid_ref = valid_ref | holes_ref.mask
        valid_img = valid_img | holes_img.mask
    img_ok_at_shift = _sample(valid_img.astype(float), *shift) > 1.0 - 1e-6
    region = valid_ref & img_ok_at_shift
    nvalid = int(region.sum())
    if nvalid < MIN_VALID_PIXELS:
        raise RegistrationError(
            f"only {nvalid} pixels are valid in both images (at least {MIN_VALID_PIXELS} needed)"
        )
    dist = ndimage.distance_transform_edt(region)
    w_ref = _ramp(dist, taper)
    w_img = _ramp(_sample(dist, -shift[0], -shift[1]), taper) * valid_img
    has_holes = holes_ref is not None and (holes_ref.points.size or holes_img.points.size)
    # Backgrounds: window-weighted means over the same (moving) sky region in both images, so a
    # real background difference between exposures is removed and nothing else is. For an
    # aperture, the background comes from outside the source's core.
    bg_ref, bg_img = w_ref, w_img
    if aperture is not None:
        x0, y0, radius = aperture
        a_ref = _aperture_weight(ref.shape, x0, y0, radius)
        a_img = _aperture_weight(ref.shape, x0 + shift[0], y0 + shift[1], radius)
        bg_ref, bg_img = w_ref * (1 - a_ref), w_img * (1 - a_img)
        w_ref, w_img = w_ref * a_ref, w_img * a_img
    inside_ref = w_ref > 0
    inside_img = w_img > 0
    if inside_ref.sum() < MIN_VALID_PIXELS or inside_img.sum() < MIN_VALID_PIXELS:
        raise RegistrationError("the window around the common area is too small")
    if has_holes:  # hole pixels have no data: keep them out of the backgrounds
        bg_ref = np.where(holes_ref.mask, 0.0, bg_ref)
        bg_img = np.where(holes_img.mask, 0.0, bg_img)
    if aperture is None:
        b_ref = np.median(ref[inside_ref & (bg_ref > 0)])
        b_img = np.median(img[inside_img & (bg_img > 0)])
    else:
        b_ref, b_img = _weighted_mean(ref, bg_ref), _weighted_mean(img, bg_img)
    r = np.where(inside_ref, (ref - b_ref) * w_ref, 0.0)
    i = np.where(inside_img, (img - b_img) * w_img, 0.0)
    if has_holes:
        # Each image's holes take the other image's windowed content at the current shift
        # (moved with real FFTs, after a provisional fill from their own neighbours): the
        # filled pixels agree with the current estimate and carry no information of their own,
        # so the iteration converges to the shift that the valid pixels give, whichever image
        # the holes are in.
        r_prov = _fill_from_neighbours(r, holes_ref.mask)
        i_prov = _fill_from_neighbours(i, holes_img.mask)
        margin = max(r.shape) // 4
        ny, nx = r.shape
        r_pad, i_pad = _pad_even([r_prov, i_prov], margin)
        core = (slice(margin, margin + ny), slice(margin, margin + nx))
        if holes_ref.mask.any():
            # Where the image is missing too (the same sky lost in both), the reference keeps
            # its provisional fill, which the image's hole then copies.
            from_img = _fourier_shift(i_pad, -shift[0], -shift[1])[core]
            both = _sample(holes_img.mask.astype(float), *shift) > 0
            fill = holes_ref.mask & ~both
            r[fill] = from_img[fill]
            common = holes_ref.mask & both
            r[common] = r_prov[common]
            r_pad = _pad_even([r], margin)[0]
        if holes_img.mask.any():
            i[holes_img.mask] = _fourier_shift(r_pad, shift[0], shift[1])[core][holes_img.mask]
    sigma = None
    if err is not None:
        # One error level for the whole window: chi2 weights by 1/err**2 in the reference frame,
        # so any structure in the error map (such as a step at the member's footprint edge)
        # would be stationary while the content moves, and bias the result (0.013 px on the
        # simulated MIRI scene).
        sigma = float(np.median(err[inside_ref]))
    return r, i, sigma


def _fill_from_neighbours(image, holes):
    """``image`` with ``holes`` replaced by the mean of their valid 8 neighbours (0 if none)."""
    if not holes.any():
        return image
    good = (~holes).astype(float)
    kernel = np.ones((3, 3))
    total = ndimage.convolve(np.where(holes, 0.0, image), kernel, mode="constant")
    count = ndimage.convolve(good, kernel, mode="constant")
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / count, 0.0)
    return np.where(holes, mean, image)


def _weighted_mean(image, weight):
    """Mean of ``image`` weighted by ``weight`` (NaN pixels must have zero weight)."""
    total = weight.sum()
    if not total > 0:
        return 0.0
    return float(np.sum(np.where(weight > 0, image, 0.0) * weight) / total)


def _fast_even_length(n):
    """Smallest even length >= n whose FFT is fast (factors 2, 3, 5 only)."""
    n = n + n % 2
    while True:
        m = n
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 2


def _pad_even(arrays, margin):
    """Zero-pad 2-D arrays by at least ``margin`` on every side, to even, FFT-friendly lengths.

    The extra padding goes after the data (high index side), so pixel indices of the data are
    unchanged up to the constant ``margin``, which cancels in a shift.
    """
    ny, nx = arrays[0].shape
    ty, tx = _fast_even_length(ny + 2 * margin), _fast_even_length(nx + 2 * margin)
    padded = []
    for a in arrays:
        out = np.zeros((ty, tx), dtype=a.dtype)
        out[margin : margin + ny, margin : margin + nx] = a
        padded.append(out)
    return padded


def _quadratic_fit_matrix():
    """Least-squares solution matrix of ``a0 + bx u + by v + cxx u**2 + cxy u v + cyy v**2`` on
    the 3x3 grid ``u, v in (-1, 0, 1)`` (row-major, v = row): coefficients = M @ patch.ravel()."""
    v, u = np.mgrid[-1:2, -1:2]
    u, v = u.ravel().astype(float), v.ravel().astype(float)
    design = np.stack([np.ones(9), u, v, u**2, u * v, v**2], 1)
    return np.linalg.pinv(design)


_QUADRATIC_FIT = _quadratic_fit_matrix()


def _zero_lag_index(shape):
    """Index of zero shift in a chi2 surface of ``shape`` (as in ``chi2n_map``/``chi2_shift``)."""
    return tuple((n - 1) // 2 for n in shape)


def chi2_map(ref, img, sigma=1.0):
    """chi2 of ``ref`` against ``img`` at every whole-pixel circular shift.

    The surface that ``image_registration.chi2_shift`` minimises:
    ``image_registration.chi2_shifts.chi2n_map(ref, img, err=sigma, boundary="wrap")`` for a
    scalar ``sigma``, equal to it within rounding and in the same layout (checked in
    ``tests/test_registration.py``), computed with ``scipy.fft`` real transforms. ``chi2n_map``
    goes through astropy's ``convolve_fft``, whose argument binding, unit and NaN handling cost
    about 0.3 ms a call on the ~70 x 70 padded windows measured here, four times the FFTs
    themselves; this function is called in every iteration of every measurement.

    Parameters
    ----------
    ref, img : ndarray, shape (ny, nx)
        Finite real images of one shape (padded: the shifts are circular).
    sigma : float
        1-sigma noise of each pixel of ``img`` (image units).

    Returns
    -------
    ndarray, shape (ny, nx)
        ``sum((ref(p) - img(p - k)) ** 2) / sigma ** 2`` over pixels ``p`` (indices modulo the
        shape) at circular lag ``k``; lag 0 sits at index ``((ny - 1) // 2, (nx - 1) // 2)``.
    """
    cross = scipy.fft.irfft2(scipy.fft.rfft2(ref) * np.conj(scipy.fft.rfft2(img)), s=ref.shape)
    chi2 = (np.sum(ref * ref) + np.sum(img * img) - 2.0 * cross) / sigma**2
    return np.roll(chi2, _zero_lag_index(ref.shape), axis=(0, 1))


def _chi2(ref, img, sigma, *, upsample_factor):
    """Minimum of image_registration's chi2 surface, refined by a quadratic fit; errors from its
    curvature.

    :func:`chi2_map` gives chi2(s) = sum((ref(p) - img(p + s))**2) / sigma**2 at every
    whole-pixel shift s. A quadratic fitted to the 3x3 values around the minimum gives the
    sub-pixel minimum and the Hessian H, whose covariance ``2 H**-1`` is the 1-sigma
    uncertainty. The caller moves ``img`` by its current estimate first, so the minimum sits
    near zero shift, where the quadratic is exact. (``chi2_shift`` instead zooms on the surface
    with a Fourier interpolation: 20-50 ms a call, quantised results, and errors from the
    two-parameter delta-chi2 = 2.3 contour, 1.5 times the 1-sigma error.)
    """
    chi2 = chi2_map(ref, img, 1.0 if sigma is None else sigma)
    ny, nx = chi2.shape
    # Zero shift (checked by injecting shifts in the tests).
    ycen, xcen = _zero_lag_index(chi2.shape)
    iy, ix = np.unravel_index(np.argmin(chi2), chi2.shape)
    iy = int(np.clip(iy, 1, ny - 2))
    ix = int(np.clip(ix, 1, nx - 2))
    patch = chi2[iy - 1 : iy + 2, ix - 1 : ix + 2]
    _, bx, by, cxx, cxy, cyy = _QUADRATIC_FIT @ patch.ravel()
    hessian = np.array([[2 * cxx, cxy], [cxy, 2 * cyy]])
    try:
        step = np.linalg.solve(hessian, [-bx, -by])
        cov = 2.0 * np.linalg.inv(hessian)
    except np.linalg.LinAlgError:
        raise RegistrationError("the chi2 surface has no minimum (no signal?)") from None
    if not (np.all(np.diag(cov) > 0) and np.all(np.abs(step) <= 1.0)):
        raise RegistrationError("the chi2 surface has no well-defined minimum (no signal?)")
    # The map's lag runs opposite to our convention (chi2_shift returns -(index - centre)).
    dx = -(ix - xcen + step[0])
    dy = -(iy - ycen + step[1])
    return Offset(float(dx), float(dy), float(np.sqrt(cov[0, 0])), float(np.sqrt(cov[1, 1])))


def _image_registration():
    """The image_registration package, imported where a method uses it (dft, cross_correlation).

    Imported here rather than with this module: ``chi2`` and ``centroid`` do not need it, and its
    ``__init__`` loads matplotlib.pyplot and pytest. That import emits astropy's deprecation of
    ``TestRunner``/``TestRunnerBase`` (image_registration 0.2.10 builds its test runner at import
    time); only that warning is ignored.
    """
    from astropy.utils.exceptions import AstropyDeprecationWarning

    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore",
            message=r"The TestRunner(Base)? class is deprecated",
            category=AstropyDeprecationWarning,
        )
        import image_registration
    return image_registration


def _usfac(upsample_factor):
    """``register_images``' upsampling: ``upsample_factor``, or ``DFT_UPSAMPLE_DEFAULT``."""
    return DFT_UPSAMPLE_DEFAULT if upsample_factor is None else int(upsample_factor)


def _dft(ref, img, sigma, *, upsample_factor):
    usfac = _usfac(upsample_factor)
    dx, dy = _image_registration().register_images(ref, img, usfac=usfac, zeromean=False)
    return Offset(float(dx), float(dy))


def _dft_half_step(ref, img, sigma, *, upsample_factor):
    """:func:`_dft` on a grid offset by half its step: ``img`` moved by half a step along
    both axes first, and the half step added back.

    ``register_images`` returns the peak of the upsampled cross-correlation on a grid of
    ``1 / usfac`` pixels, so its error is uniform over +-0.5 / usfac (0.0025 px typical for the
    default). The mean of the two results has half that quantisation error
    (``measure_offset_details`` takes it once the iteration has converged;
    ``tests/test_registration.py``).
    """
    usfac = _usfac(upsample_factor)
    half = 0.5 / usfac
    off = _dft(ref, _fourier_shift(img, -half, -half), sigma, upsample_factor=usfac)
    return Offset(off.dx + half, off.dy + half)


def _shift_phase(n, d, half):
    """Phase factors ``exp(-2 pi i f d)`` of a 1-D shift by ``d`` over FFT frequencies ``f``.

    ``half``: the frequencies of ``rfft`` (else ``fft``). At the Nyquist frequency of an even
    length the factor is ``cos(pi d)``: the real part that the full complex transform keeps.
    """
    f = np.fft.rfftfreq(n) if half else np.fft.fftfreq(n)
    phase = np.exp(-2j * np.pi * f * d)
    if n % 2 == 0:
        phase[n // 2] = np.cos(np.pi * d)
    return phase


def _fourier_shift(image, dx, dy):
    """Move the content of ``image`` by (dx, dy) pixels with an FFT phase ramp.

    ``real(ifft2(fft2(image) * exp(-2 pi i (kx dx + ky dy))))``, computed with real transforms
    (a third of the time): the ramp is separable, and where the full transform's result keeps
    only the real part of a Nyquist term (even sizes), so does the half spectrum.
    """
    ny, nx = image.shape
    ramp = _shift_phase(ny, dy, half=False)[:, None] * _shift_phase(nx, dx, half=True)[None, :]
    if ny % 2 == 0 and nx % 2 == 0:
        ramp[ny // 2, nx // 2] = np.cos(np.pi * (dx + dy))
    return np.fft.irfft2(np.fft.rfft2(image) * ramp, s=image.shape)


def _cross_correlation(ref, img, sigma, *, upsample_factor):
    """cross_correlation_shifts; without an error image it returns only (dx, dy).

    Its 3x3 peak fit is biased by up to ~0.05 px for sub-pixel shifts, vanishing as the shift
    goes to zero; the caller moves ``img`` by its current estimate first, so only a small
    residual is measured.
    """
    dx, dy = _image_registration().cross_correlation_shifts(ref, img, zeromean=False)
    return Offset(float(dx), float(dy))


def _brightest_source(image, valid):
    """(x, y) of the brightest peak of a lightly smoothed image."""
    filled = np.where(valid, image, np.median(image[valid]))
    smooth = ndimage.gaussian_filter(filled, 1.0)
    y, x = np.unravel_index(np.argmax(np.where(valid, smooth, -np.inf)), smooth.shape)
    return float(x), float(y)


def _centroid(ref, img, sigma, *, upsample_factor):
    """Difference of flux-weighted centroids of the windowed, background-subtracted images.

    ``measure_offset`` limits the window to a smooth aperture of ``CENTROID_RADIUS`` pixels
    around the brightest source, which moves with the content like the window itself, and takes
    the background from outside the source's core; no clipping, so the two centroids are of
    exactly shifted copies.
    """
    yy, xx = np.indices(ref.shape, dtype=float)
    out = []
    for a in (ref, img):
        total = a.sum()
        if not total > 0:
            raise RegistrationError("no source above the background to centroid")
        cx, cy = (a * xx).sum() / total, (a * yy).sum() / total
        if sigma is None:
            ex = ey = np.nan
        else:
            used = a != 0
            ex = np.sqrt(((xx - cx) ** 2 * sigma**2 * used).sum()) / total
            ey = np.sqrt(((yy - cy) ** 2 * sigma**2 * used).sum()) / total
        out.append((cx, cy, ex, ey))
    (rx, ry, rex, rey), (ix, iy, iex, iey) = out
    return Offset(
        float(ix - rx), float(iy - ry), float(np.hypot(rex, iex)), float(np.hypot(rey, iey))
    )


_BACKENDS = {
    "chi2": _chi2,
    "dft": _dft,
    "cross_correlation": _cross_correlation,
    "centroid": _centroid,
}


def resolution(method, upsample_factor=None):
    """1-sigma quantisation error (pixels) of a method's result: its step divided by sqrt(12).

    A floor for reported uncertainties: below it, a method's own error and the scatter of its
    results say nothing (they come out as exactly zero). ``dft``'s step is half the DFT's
    ``1 / upsample_factor``: the mean of two grids offset by half a step (:func:`_dft_half_step`).
    """
    if method == "dft":
        step = 0.5 / _usfac(upsample_factor)
    else:
        step = 0.0
    return step / np.sqrt(12.0)


@functools.lru_cache(maxsize=32)
def _band_pass_response(shape, smoothing):
    """Frequency response, on the ``rfft2`` grid of ``shape``, of :func:`_filtered`'s kernel
    (cached: one per padded image size; read-only)."""
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.rfftfreq(shape[1])[None, :]
    f2 = fx**2 + fy**2
    fine = np.exp(-2.0 * np.pi**2 * smoothing**2 * f2)
    response = fine - np.exp(-2.0 * np.pi**2 * (BAND_PASS_RATIO * smoothing) ** 2 * f2)
    response.flags.writeable = False
    return response


def _filtered(image, smoothing):
    """``image`` band-pass filtered: a Gaussian of ``smoothing`` pixels minus one of
    ``BAND_PASS_RATIO`` times that (a real, symmetric kernel).

    Applied as its frequency response with real FFTs, so the filter is circular: callers pass
    images zero-padded by a quarter of their size on every side, which holds the broad
    Gaussian's reach for the default ``smoothing`` (within 0.0013 of the spatial
    ``ndimage.gaussian_filter`` pair on a 52-pixel image of values up to 1). Two
    ``gaussian_filter`` calls took 18% of a NIRSpec-like alignment.
    """
    response = _band_pass_response(tuple(image.shape), float(smoothing))
    return scipy.fft.irfft2(scipy.fft.rfft2(image) * response, s=image.shape)


def _run_backend(
    method, ref, img, sigma, *, current, upsample_factor, margin, smoothing=0.0, backend=None
):
    """Pad, move ``img`` back by ``current`` (FFT methods), band-pass filter both
    (:func:`_filtered`, ``smoothing`` px; 0 for none), measure, and add ``current`` back.

    ``sigma``: the noise level of the windowed images (a float), or None. With smoothing, the
    errors returned are NaN (the caller computes them with :func:`_linear_errors`).
    ``backend``: the function to run instead of ``method``'s (same signature). The caller
    passes ``smoothing=0`` for ``centroid``.
    """
    ref, img = _pad_even([ref, img], margin)
    moved = method != "centroid" and (current[0] != 0.0 or current[1] != 0.0)
    if moved:
        img = _fourier_shift(img, -current[0], -current[1])
    smoothed = smoothing > 0
    if smoothed:
        ref = _filtered(ref, smoothing)
        img = _filtered(img, smoothing)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        offset = (backend or _BACKENDS[method])(ref, img, sigma, upsample_factor=upsample_factor)
        if smoothed:
            offset = Offset(offset.dx, offset.dy)
        elif sigma is not None and method in ("dft", "cross_correlation"):
            # These libraries give no uncertainty: take the noise error from the curvature of the
            # chi2 surface of the same images (the shift itself stays the method's own).
            try:
                noise = _chi2(ref, img, sigma, upsample_factor=None)
                offset = Offset(offset.dx, offset.dy, noise.dx_err, noise.dy_err)
            except RegistrationError:
                pass
    if not (np.isfinite(offset.dx) and np.isfinite(offset.dy)):
        raise RegistrationError(f"method {method!r} returned a non-finite shift {offset[:2]}")
    if moved:
        offset = Offset(
            offset.dx + current[0], offset.dy + current[1], offset.dx_err, offset.dy_err
        )
    return offset


def measure_offset(reference, image, **options):
    """Measure where the content of ``reference`` appears in ``image``.

    The offset of :func:`measure_offset_details` (same parameters), without the spatial error.
    """
    return measure_offset_details(reference, image, spatial_errors=False, **options).offset


def measure_offset_details(
    reference,
    image,
    *,
    method="chi2",
    reference_err=None,
    image_err=None,
    upsample_factor=None,
    taper=3.0,
    initial=None,
    tolerance=1e-3,
    max_iterations=8,
    margin=None,
    spatial_errors=True,
    smoothing=0.0,
):
    """Measure where the content of ``reference`` appears in ``image``, and a spatial error.

    Holes (up to ``MAX_HOLE_PIXELS`` invalid pixels surrounded by valid ones, in either image)
    are excluded from both images at corresponding positions at the current shift, by one
    analytic window (see ``_windowed_pair``), so a missing spaxel next to a source does not bias
    the result whichever image it is in.

    Parameters
    ----------
    reference, image : ndarray, shape (ny, nx)
        Images on one pixel grid; NaN marks pixels without data.
    method : {"chi2", "dft", "cross_correlation", "centroid"}
        Registration backend (module docstring).
    reference_err, image_err : ndarray, shape (ny, nx), optional
        1-sigma errors of the images, same units. Used by ``chi2`` (uncertainties) and
        ``centroid``; pixels with non-finite or non-positive errors are ignored.
    upsample_factor : int, optional
        Upsampling of the DFT for ``dft`` (precision 0.5/upsample_factor px); None uses
        ``DFT_UPSAMPLE_DEFAULT``. The other methods are not quantised.
    taper : float
        Width in pixels of the cosine edge of the window applied to both images.
    initial : tuple of float, optional
        Starting estimate ``(dx, dy)``; zero by default.
    tolerance : float
        The window is moved with the current estimate and the shift measured again (see
        ``_windowed_pair``) until the estimate changes by less than this many pixels. A common,
        stationary window (``max_iterations=0``) is biased toward zero when it cuts through
        extended emission (0.3 px on the simulated MIRI scene); each iteration divides that
        bias by about ten.
    max_iterations : int
        Most window moves.
    margin : int, optional
        Zero padding on every side before the FFT backends run; defaults to a quarter of the
        larger image side.
    spatial_errors : bool
        Also compute the spatial error (:func:`_linear_errors`): the image is moved back by the
        result, the residual ``e`` between the two windowed images is formed, and the
        covariance of a least-squares shift fit is estimated from the residual itself,
        ``A**-1 B A**-1`` with ``A = sum(g g^T)`` over pixels (``g`` the gradient of the mean
        image) and ``B`` the sum over ``SPATIAL_TILE``-pixel square tiles of
        ``(sum g e)(sum g e)^T`` (a cluster-robust "sandwich" estimate, the infinitesimal
        jackknife over tiles). With noise alone it equals the chi2 error on average; a
        static residual (striping, an undersampled PSF, a background gradient, a wrongly
        filled pixel) raises it, where the wavelength chunks, whose errors average down, see
        nothing.
    smoothing : float
        Gaussian sigma (pixels) of the band-pass filter applied to both prepared images before
        the backend (module docstring); 0 for none. Ignored by ``centroid``. The noise error
        is then that of the smoothed estimator (:func:`_linear_errors`), and the spatial error
        comes from the unsmoothed residual, weighted as the smoothed estimator weights it.

    Returns
    -------
    Registration
        ``offset``: ``(dx, dy, dx_err, dy_err)`` in pixels: a feature at ``(x, y)`` in
        ``reference`` is at ``(x + dx, y + dy)`` in ``image``; errors are NaN when the method
        gives none. ``spatial_err``: ``(ex, ey)`` px (NaN when not computed or undefined).

    Raises
    ------
    ValueError
        If ``method`` is unknown or the arrays do not have one 2-D shape.
    RegistrationError
        If fewer than ``MIN_VALID_PIXELS`` pixels are valid in both images.
    """
    if method not in _BACKENDS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    ref, img, err, valid_ref, valid_img = _check_pair(reference, image, reference_err, image_err)
    if margin is None:
        margin = max(ref.shape) // 4
    current = (0.0, 0.0) if initial is None else (float(initial[0]), float(initial[1]))
    aperture = None
    if method == "centroid":
        aperture = (*_brightest_source(ref, valid_ref), CENTROID_RADIUS)
        smoothing = 0.0  # the aperture's centroid is never filtered
    holes = (_find_holes(valid_ref), _find_holes(valid_img))
    for _ in range(int(max_iterations) + 1):
        previous = current  # the window and the move of r, i below
        r, i, sigma = _windowed_pair(
            ref, img, err, valid_ref, valid_img, current, taper, aperture, holes
        )
        offset = _run_backend(
            method,
            r,
            i,
            sigma,
            current=current,
            upsample_factor=upsample_factor,
            margin=margin,
            smoothing=smoothing,
        )
        change = np.hypot(offset.dx - current[0], offset.dy - current[1])
        current = (offset.dx, offset.dy)
        if change < tolerance:
            break
    if method == "dft":
        # Once more on the grid offset by half the DFT's step, from the same window: the mean
        # of the two halves the quantisation error.
        half = _run_backend(
            method,
            r,
            i,
            None,
            current=previous,
            upsample_factor=upsample_factor,
            margin=margin,
            smoothing=smoothing,
            backend=_dft_half_step,
        )
        offset = Offset(
            0.5 * (offset.dx + half.dx), 0.5 * (offset.dy + half.dy), offset.dx_err, offset.dy_err
        )
    smoothed = smoothing > 0
    if not (spatial_errors or (smoothed and sigma is not None)):
        return Registration(offset, (np.nan, np.nan))
    noise, spatial = _linear_errors(
        r, i, (offset.dx, offset.dy), margin, smoothing, sigma, spatial=spatial_errors
    )
    if smoothed and sigma is not None:
        offset = Offset(offset.dx, offset.dy, *noise)
    return Registration(offset, spatial[:2], spatial[2:])


def _linear_errors(r, i, shift, margin, smoothing, sigma, *, spatial=True):
    """Noise and cluster-robust 1-sigma errors of a shift, from the linearised shift fit.

    ``r``, ``i``: the windowed reference and image (unpadded); ``shift``: the measured offset;
    ``smoothing``: the Gaussian sigma (px) of the estimator's band-pass filter ``K``
    (:func:`_filtered`; 0: none);
    ``sigma``: the noise of one pixel of ``r - i`` (None: no noise error).

    A least-squares shift fit of ``K r`` and ``K i`` (``K`` symmetric) moves by
    ``A**-1 sum(h e)`` for a residual ``e``, with ``g`` the gradient of the smoothed mean image,
    ``A = sum(g g^T)`` and ``h = K g``. The noise covariance is ``sigma**2 A**-1 C A**-1`` with
    ``C = sum(h h^T)`` (``sigma**2 A**-1`` without smoothing: the chi2 curvature's). The
    spatial one replaces ``C`` by the sum over clusters of ``(sum h e)(sum h e)^T``, with ``e``
    the unsmoothed residual, whose noise is independent from pixel to pixel (see
    :func:`measure_offset_details`).

    Returns
    -------
    noise : tuple of float
        ``(ex, ey)`` px (NaN without ``sigma``).
    spatial : tuple of float
        ``(ex, ey, nx, ny)``: the spatial errors (px) and the effective number of clusters
        behind each (NaN when ``spatial`` is False: only the noise error is computed).
    """
    nan4 = (np.nan,) * 4
    r, i = _pad_even([r, i], margin)
    back = _fourier_shift(i, -shift[0], -shift[1])
    resid = r - back
    mean = 0.5 * (r + back)
    if smoothing > 0:
        mean = _filtered(mean, smoothing)
    gy, gx = np.gradient(mean)
    a = np.array([[np.sum(gx * gx), np.sum(gx * gy)], [np.sum(gx * gy), np.sum(gy * gy)]])
    if not np.linalg.det(a) > 0:
        return (np.nan, np.nan), nan4
    a_inv = np.linalg.inv(a)
    if smoothing > 0:
        hx = _filtered(gx, smoothing)
        hy = _filtered(gy, smoothing)
    else:
        hx, hy = gx, gy
    noise = (np.nan, np.nan)
    if sigma is not None:
        c = np.array([[np.sum(hx * hx), np.sum(hx * hy)], [np.sum(hx * hy), np.sum(hy * hy)]])
        noise = tuple(float(sigma * np.sqrt(v)) for v in np.diag(a_inv @ c @ a_inv))
    if not spatial:
        return noise, nan4
    t = SPATIAL_TILE
    ny, nx = resid.shape
    ny, nx = ny - ny % t, nx - nx % t
    scores = (hx * resid)[:ny, :nx], (hy * resid)[:ny, :nx]
    worst, clusters = np.zeros(2), np.full(2, np.inf)
    # Clusters: t x t tiles, and strips t wide along columns and along rows (a pattern fixed on
    # an exposure's columns or rows, such as striping, is correlated along the whole strip).
    for shape, axes in (
        ((ny // t, t, nx // t, t), (1, 3)),
        ((ny, nx // t, t), (0, 2)),
        ((ny // t, t, nx), (1, 2)),
    ):
        sx, sy = (v.reshape(shape).sum(axis=axes).ravel() for v in scores)
        b = np.array([[np.sum(sx * sx), np.sum(sx * sy)], [np.sum(sx * sy), np.sum(sy * sy)]])
        var = np.diag(a_inv @ b @ a_inv)
        # Effective number of clusters behind each axis's variance (its contributions are
        # (A^-1 s_c)**2): few when the source's core, a few tiles, holds all the information.
        step = a_inv @ np.stack([sx, sy])
        c2 = step**2
        with np.errstate(invalid="ignore", divide="ignore"):
            n_eff = np.sum(c2, axis=1) ** 2 / np.sum(c2**2, axis=1)
        better = var > worst
        worst = np.where(better, var, worst)
        clusters = np.where(better, np.nan_to_num(n_eff, nan=np.inf), clusters)
    spatial = (
        float(np.sqrt(worst[0])),
        float(np.sqrt(worst[1])),
        float(clusters[0]),
        float(clusters[1]),
    )
    return noise, spatial

