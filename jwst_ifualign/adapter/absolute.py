"""Absolute astrometry: tie a cube to a reference image or to a catalog of source positions.

Relative alignment puts every member on the reference member's frame, which is itself off by the
telescope's blind pointing error. This module measures the correction of that frame:

- against an image (:func:`correction_from_image`): a JWST image (``_i2d``/``_cal``
  ImageModel, or any FITS image with a celestial WCS) of the same field. The cube is collapsed
  over the wavelengths the image's filter covers (weighted by a throughput table, or a top hat
  over the filter's band), put on a cutout of the image's grid with ``reproject_interp``
  through both WCSs, matched in resolution (the sharper of the two convolved with a Gaussian of
  the FWHM difference, both FWHMs measured on the brightest compact source), scaled in flux, and
  registered to the image with the step's method (:func:`~jwst_ifualign.algorithms.measure.
  measure_placed`, with the wavelength chunks for the empirical error);
- against a catalog (:func:`correction_from_catalog`): an ECSV of ``ra``, ``dec`` (degrees) and
  optional ``ra_err``, ``dec_err`` (arcsec): every listed source inside the cube is fitted on the
  cube's own white-light image (a 2-D Gaussian, :func:`~jwst_ifualign.algorithms.absolute.
  fit_point_source`) and the error-weighted mean difference to the catalog is the correction.

The result, :class:`AbsoluteCorrection`, is in cube_build's convention: arcsec on the sky (RA
offset times cos Dec) ADDED to the cube's coordinates, so that it lands on the image's (or the
catalog's) frame.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.convolution import convolve
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.stats import mad_std
from astropy.table import Table
from astropy.wcs import WCS
from astropy.wcs.wcsapi import HighLevelWCSWrapper, SlicedLowLevelWCS
from stdatamodels.jwst import datamodels

from ..algorithms.absolute import (
    convolve_gaussian,
    fit_point_source,
    flux_scale,
    matching_sigma,
    weighted_white_light,
)
from ..algorithms.collapse import chunk_bounds
from ..algorithms.measure import measure_placed
from ..algorithms.offset import Offset
from ..algorithms.quality import point_source_fwhm
from ..algorithms.registration import RegistrationError, resolution
from ..exceptions import InputError, ParameterError
from .inputs import plane_wavelengths
from .results import DO_NOT_USE, valid_voxels
from .wcs_mapping import celestial_wcs, grid_offsets_to_sky, pixel_errors_to_sky

__all__ = [
    "AbsoluteCorrection",
    "AbsoluteReference",
    "load_absolute_reference",
    "tie_to_reference",
    "measure_frame",
    "apply_frame",
    "combine_frames",
    "ReferenceImage",
    "FILTER_BANDS_UM",
    "load_reference_image",
    "load_reference_catalog",
    "load_throughput",
    "load_kernel",
    "correction_from_image",
    "correction_from_catalog",
]

log = logging.getLogger(__name__)

#: Approximate half-power bands (microns) of JWST imaging filters, pivot +- half the bandwidth
#: (JDox filter tables): used when no throughput table is given.
FILTER_BANDS_UM = {
    "F560W": (5.05, 6.17),
    "F770W": (6.58, 8.69),
    "F1000W": (9.02, 10.87),
    "F1130W": (10.95, 11.67),
    "F1280W": (11.59, 14.01),
    "F1500W": (13.53, 16.64),
    "F1800W": (16.52, 19.50),
    "F2100W": (18.48, 23.16),
    "F2550W": (23.47, 27.50),
    "F070W": (0.62, 0.78),
    "F090W": (0.79, 1.00),
    "F115W": (1.01, 1.28),
    "F150W": (1.33, 1.67),
    "F200W": (1.75, 2.23),
    "F277W": (2.42, 3.13),
    "F356W": (3.14, 3.98),
    "F444W": (3.88, 4.98),
    "F410M": (3.87, 4.31),
}

#: Pixels added around the cube's footprint on the image's grid for the cutout.
CUTOUT_MARGIN = 6


@dataclass(frozen=True)
class AbsoluteCorrection:
    """Correction of a cube's frame onto a reference image's or catalog's frame.

    Attributes
    ----------
    ra_offset, dec_offset : float
        Arcsec on the sky (RA offset times cos Dec), added to the cube's coordinates (as
        cube_build's ``offset_file`` adds its offsets).
    ra_offset_err, dec_offset_err : float
        1-sigma errors, arcsec.
    kind : str
        ``"image"`` or ``"catalog"``.
    reference : str
        Name of the image or catalog file.
    details : dict
        What was measured: for an image the offset on its grid (pixels), the matched FWHMs and
        the band; for a catalog every source's residual.
    """

    ra_offset: float
    dec_offset: float
    ra_offset_err: float
    dec_offset_err: float
    kind: str
    reference: str
    details: dict = field(default_factory=dict)


@dataclass
class ReferenceImage:
    """A reference image: data and 1-sigma error (ny, nx), a celestial WCS, and its filter."""

    data: np.ndarray
    err: np.ndarray
    wcs: object
    name: str
    filter: str | None = None


def _celestial_from_header(header):
    try:
        wcs = WCS(header).celestial
    except Exception:  # noqa: BLE001 - astropy raises many kinds on broken headers
        return None
    return wcs if wcs.naxis == 2 and wcs.has_celestial else None


def _noise_of(data):
    """A constant 1-sigma error from the pixel-to-pixel scatter (no ERR array given)."""
    finite = data[np.isfinite(data)]
    diffs = np.diff(np.where(np.isfinite(data), data, np.nan), axis=1)
    sigma = mad_std(diffs[np.isfinite(diffs)]) / np.sqrt(2.0) if finite.size else np.nan
    return np.full(data.shape, sigma if sigma > 0 else np.nan)


def load_reference_image(source):
    """Read a reference image: an ImageModel (``_i2d``, ``_cal``) or a FITS file with a celestial
    WCS in the header of its first 2-D image extension.

    Parameters
    ----------
    source : str, Path or ImageModel

    Returns
    -------
    ReferenceImage

    Raises
    ------
    InputError
        If the file does not exist, holds no 2-D image, or has no celestial WCS.
    """
    if isinstance(source, datamodels.ImageModel):
        return _from_image_model(source, source.meta.filename or "reference image")
    path = Path(source)
    if not path.is_file():
        raise InputError(
            f"reference_image {path} does not exist; give the path of an _i2d/_cal image or a "
            "FITS image with a celestial WCS."
        )
    with fits.open(path) as hdul:
        jwst_product = "DATAMODL" in hdul[0].header and "ASDF" in hdul
    if jwst_product:  # an _i2d or _cal: its gwcs is exact (distortion included)
        with datamodels.open(path) as model:
            if isinstance(model, datamodels.ImageModel) and model.meta.wcs is not None:
                return _from_image_model(model, path.name)
    with fits.open(path) as hdul:
        for hdu in hdul:
            if hdu.data is None or hdu.data.ndim != 2:
                continue
            wcs = _celestial_from_header(hdu.header)
            if wcs is None:
                raise InputError(
                    f"reference_image {path.name}: extension {hdu.name} has no celestial WCS "
                    "(RA/Dec CTYPE keywords); give an image with one (an _i2d product, or "
                    "FITS with a WCS)."
                )
            data = np.array(hdu.data, float)
            err_hdu = hdul["ERR"] if "ERR" in hdul else None
            err = np.array(err_hdu.data, float) if err_hdu is not None else _noise_of(data)
            return ReferenceImage(data, err, wcs, path.name, hdu.header.get("FILTER"))
    raise InputError(f"reference_image {path.name} holds no 2-D image.")


def _from_image_model(model, name):
    data = np.array(model.data, float)
    bad = (model.dq & DO_NOT_USE) != 0 if model.dq is not None and model.dq.size else False
    data[bad] = np.nan
    err = np.array(model.err, float) if model.err is not None and model.err.size else None
    if err is None or not np.any(np.isfinite(err) & (err > 0)):
        err = _noise_of(data)
    return ReferenceImage(data, err, model.meta.wcs, name, model.meta.instrument.filter)


def load_throughput(path):
    """A filter throughput table (ECSV): ``wavelength`` (microns, or any length unit) and
    ``throughput``. Returns ``(wavelength_um, throughput)`` arrays sorted by wavelength."""
    path = Path(path)
    try:
        table = Table.read(path, format="ascii.ecsv")
    except (OSError, ValueError) as exc:
        raise InputError(f"filter_throughput {path} cannot be read as ECSV ({exc}).") from None
    missing = {"wavelength", "throughput"} - set(table.colnames)
    if missing:
        raise InputError(
            f"filter_throughput {path.name} lacks column(s) {', '.join(sorted(missing))}; it "
            "needs 'wavelength' (microns) and 'throughput'."
        )
    wave = table["wavelength"]
    wave = wave.quantity.to_value(u.um) if wave.unit is not None else np.asarray(wave, float)
    order = np.argsort(wave)
    return np.asarray(wave, float)[order], np.asarray(table["throughput"], float)[order]


def load_kernel(path):
    """A matching kernel (2-D, on the reference image's pixel grid) from a FITS file (its first
    2-D image extension) or a ``.npy`` file; it need not be normalised."""
    path = Path(path)
    if not path.is_file():
        raise InputError(
            f"psf_kernel {path} does not exist; give a FITS or .npy file of a 2-D kernel."
        )
    if path.suffix == ".npy":
        kernel = np.load(path)
    else:
        with fits.open(path) as hdul:
            kernel = next((h.data for h in hdul if h.data is not None and h.data.ndim == 2), None)
    kernel = None if kernel is None else np.asarray(kernel, float)
    if (
        kernel is None
        or kernel.ndim != 2
        or not np.all(np.isfinite(kernel))
        or not kernel.sum() > 0
    ):
        raise InputError(
            f"psf_kernel {path.name} is not a finite 2-D kernel with a positive sum; give one "
            "sampled on the reference image's pixels."
        )
    return kernel


def load_reference_catalog(path):
    """A catalog of compact sources (ECSV): ``ra``, ``dec`` (degrees), optional ``ra_err``,
    ``dec_err`` (arcsec, RA error on the sky). Returns a Table with those four columns."""
    path = Path(path)
    try:
        table = Table.read(path, format="ascii.ecsv")
    except (OSError, ValueError) as exc:
        raise InputError(f"reference_catalog {path} cannot be read as ECSV ({exc}).") from None
    if not {"ra", "dec"} <= set(table.colnames):
        raise InputError(
            f"reference_catalog {path.name} needs columns 'ra' and 'dec' (degrees); it has "
            f"{', '.join(table.colnames)}."
        )
    out = Table()
    for name, unit in (("ra", u.deg), ("dec", u.deg)):
        col = table[name]
        out[name] = col.quantity.to_value(unit) if col.unit is not None else np.asarray(col, float)
    for name in ("ra_err", "dec_err"):
        if name in table.colnames:
            col = table[name]
            out[name] = (
                col.quantity.to_value(u.arcsec) if col.unit is not None else np.asarray(col, float)
            )
        else:
            out[name] = np.zeros(len(table))
    out.meta["name"] = path.name
    return out


def _band_weights(wavelengths, image_filter, throughput, name):
    """Weight of every cube plane: the throughput there, or a top hat over the filter's band."""
    if throughput is not None:
        weights = np.interp(wavelengths, *throughput, left=0.0, right=0.0)
        source = "the throughput table"
    elif image_filter in FILTER_BANDS_UM:
        lo, hi = FILTER_BANDS_UM[image_filter]
        weights = ((wavelengths >= lo) & (wavelengths <= hi)).astype(float)
        source = f"the {image_filter} band {lo}-{hi} um"
    else:
        log.warning(
            "Reference image %s: filter %r unknown and no filter_throughput given; the whole "
            "cube is collapsed.",
            name,
            image_filter,
        )
        return np.ones(wavelengths.size), "all planes"
    if not np.any(weights > 0):
        raise InputError(
            f"The cube's wavelengths ({wavelengths.min():.3f}-{wavelengths.max():.3f} um) do not "
            f"overlap {source}; give an image in a filter the cubes cover, or a "
            "filter_throughput table that does."
        )
    return weights, source


def _valid(cube):
    """Usable voxels of the whole cube (the rule of every other white-light image)."""
    return valid_voxels(cube, 0, cube.data.shape[0])


def _image_cutout(image, cube_wcs, cube_shape):
    """Slices (y, x) of the image covering the cube's footprint (its corners through
    ``cube_wcs``, 2-D celestial) plus a margin; None if that leaves too little of the image."""
    ny, nx = cube_shape
    yy, xx = np.mgrid[0 : ny : max(ny - 1, 1), 0 : nx : max(nx - 1, 1)]
    ra, dec = cube_wcs.pixel_to_world_values(xx.ravel(), yy.ravel())
    px, py = image.wcs.world_to_pixel_values(ra, dec)
    iy, ix = image.data.shape
    x0 = max(int(np.floor(np.min(px))) - CUTOUT_MARGIN, 0)
    x1 = min(int(np.ceil(np.max(px))) + CUTOUT_MARGIN + 1, ix)
    y0 = max(int(np.floor(np.min(py))) - CUTOUT_MARGIN, 0)
    y1 = min(int(np.ceil(np.max(py))) + CUTOUT_MARGIN + 1, iy)
    if x1 - x0 < 5 or y1 - y0 < 5:
        return None
    return slice(y0, y1), slice(x0, x1)


def _reproject(image2d, wcs_in, wcs_out, shape):
    """``image2d`` (on ``wcs_in``) on the grid of ``wcs_out`` and ``shape``, bilinear."""
    from reproject import (
        reproject_interp,  # imported when needed (0.35 s), as in wcs_mapping
    )

    out, _ = reproject_interp((image2d, wcs_in), wcs_out, shape_out=shape, order="bilinear")
    return out


def _fwhm(image):
    try:
        return float(point_source_fwhm(image)[0])
    except Exception:  # noqa: BLE001 - no compact source: no resolution matching
        return np.nan


def _jacobian(wcs, x, y):
    """Sky position (SkyCoord) of pixel (x, y) and the 2x2 arcsec-per-pixel Jacobian there."""
    ra, dec = wcs.pixel_to_world_values(np.array([x, x + 1.0, x]), np.array([y, y, y + 1.0]))
    sky = SkyCoord(ra * u.deg, dec * u.deg)
    jx, jy = sky[0].spherical_offsets_to(sky[1]), sky[0].spherical_offsets_to(sky[2])
    jac = np.array(
        [
            [jx[0].to_value(u.arcsec), jy[0].to_value(u.arcsec)],
            [jx[1].to_value(u.arcsec), jy[1].to_value(u.arcsec)],
        ]
    )
    return sky[0], jac


def _sky_correction(wcs, shape, off):
    """Correction (arcsec) and its errors of a frame whose rendering on a grid shows a feature of
    grid pixel p at p + (dx, dy), at the grid's centre through ``wcs`` (2-D, APE 14 low level):
    :func:`~jwst_ifualign.adapter.wcs_mapping.grid_offsets_to_sky`."""
    centre = ((shape[1] - 1) / 2.0, (shape[0] - 1) / 2.0)
    return grid_offsets_to_sky(wcs.pixel_to_world_values, centre, [off])[0]


def _matched(reference, reference_err, images, fwhm_reference, fwhm_images):
    """Match resolution (the sharper side convolved) and flux (images scaled to the reference).

    ``images``: list of (image, err) on the reference's grid. Returns the matched reference pair
    and list of image pairs. Errors of a convolved image are scaled by the noise reduction of
    the normalised Gaussian kernel (its root sum of squares).
    """

    def smooth(img, err, sigma):
        if sigma <= 0:
            return img, err
        return convolve_gaussian(img, sigma), err * min(1.0, 1.0 / (2.0 * np.sqrt(np.pi) * sigma))

    ref, ref_err = smooth(reference, reference_err, matching_sigma(fwhm_reference, fwhm_images))
    out = []
    for img, err in images:
        img, err = smooth(img, err, matching_sigma(fwhm_images, fwhm_reference))
        a, b = flux_scale(ref, img)
        out.append((a * img + b, a * err))
    return (ref, ref_err), out


def _register(reference, images, *, method, upsample_factor, what):
    """Register the cube's band image (and chunks) to the reference image's.

    The error is the larger of the noise and chunk terms (and the method's resolution), not the
    spatial term of a member against the reference: an image and a cube differ in PSF, band and
    calibration, which leaves a residual between the two that is not noise, so the spatial
    term (residual-based) overstated the error twentyfold (88 mas for a 0.4 mas error in
    ``tests/test_absolute.py``). What that difference can do to the offset is measured by
    registering the other way (:func:`correction_from_image`).
    """
    try:
        m = measure_placed(
            [reference] * len(images),
            images,
            (0.0, 0.0),
            method=method,
            upsample_factor=upsample_factor,
            native_grid=False,
        )
    except RegistrationError as exc:
        raise InputError(
            f"{what} could not be registered ({exc}); check that they show the same field."
        ) from None
    floor = resolution(method, upsample_factor)
    ex = float(np.nanmax([m.formal.dx_err, m.empirical_err[0], floor]))
    ey = float(np.nanmax([m.formal.dy_err, m.empirical_err[1], floor]))
    return Offset(m.offset.dx, m.offset.dy, ex, ey)


def correction_from_image(
    cube, image, *, method, upsample_factor=None, error_chunks=5, throughput=None, kernel=None
):
    """Measure a cube's frame against a reference image.

    The cube's band image (and its wavelength chunks) is put on a cutout of the image's grid and
    registered there; that is the correction. The image is also put on the cube's grid and the
    registration repeated: each way interpolates one side and not the other, so the two differ
    by what interpolation and an undersampled PSF do; that difference is added to the error in
    quadrature (it is the larger term for NIRSpec-like cubes).

    Parameters
    ----------
    cube : IFUCubeModel
        The cube to tie (in the step, the combined cube of a group, on its reference's grid).
    image : ReferenceImage
        From :func:`load_reference_image`.
    method : str
        Registration method (the step's ``method``).
    upsample_factor : int, optional
        As for the relative measurement.
    error_chunks : int
        Wavelength chunks of the band measured for the empirical error.
    throughput : tuple of ndarray, optional
        ``(wavelength_um, throughput)`` from :func:`load_throughput`.
    kernel : ndarray, optional
        A user's matching kernel on the image's pixel grid (:func:`load_kernel`): the image is
        convolved with it (normalised) instead of the automatic Gaussian matching, and neither
        side is matched further.

    Returns
    -------
    AbsoluteCorrection

    Raises
    ------
    InputError
        If the image does not overlap the cube, or the filter does not overlap its wavelengths.
    """
    wavelengths = plane_wavelengths(cube)
    weights, band = _band_weights(wavelengths, image.filter, throughput, image.name)
    used = np.flatnonzero(weights > 0)
    cube_wcs = celestial_wcs(cube)
    cut = _image_cutout(image, cube_wcs, cube.data.shape[1:])
    what = f"The cube {cube.meta.filename} and reference_image {image.name}"
    if cut is None or not np.isfinite(image.data[cut]).sum() > 25:
        raise InputError(f"{what} do not overlap; give an image of the same field.")
    ref, ref_err = image.data[cut], image.err[cut]
    if kernel is not None:
        ref = convolve(
            ref,
            kernel,
            boundary="extend",
            nan_treatment="interpolate",
            preserve_nan=True,
            normalize_kernel=True,
        )
        ref_err = ref_err * float(np.sqrt(np.sum(kernel**2)) / np.sum(kernel))
    cut_wcs = HighLevelWCSWrapper(SlicedLowLevelWCS(image.wcs.low_level_wcs, cut))
    valid = _valid(cube)
    bounds = [(0, wavelengths.size)]
    if error_chunks > 1:
        bounds += chunk_bounds(int(used[0]), int(used[-1]) + 1, error_chunks)
    native = []
    for z0, z1 in bounds:
        w = np.zeros_like(weights)
        w[z0:z1] = weights[z0:z1]
        native.append(weighted_white_light(cube.data, cube.err, valid, w))

    # 1. The cube on the image's grid.
    on_image = [tuple(_reproject(a, cube_wcs, cut_wcs, ref.shape) for a in pair) for pair in native]
    fwhm_cube, fwhm_image = _fwhm(on_image[0][0]), _fwhm(ref)
    # With a user's kernel the resolutions are matched already: equal FWHMs match nothing more.
    automatic = kernel is None
    matched_ref, matched = _matched(
        ref, ref_err, on_image, fwhm_image, fwhm_cube if automatic else fwhm_image
    )
    off = _register(matched_ref, matched, method=method, upsample_factor=upsample_factor, what=what)
    ra, dec, ra_err, dec_err = _sky_correction(cut_wcs.low_level_wcs, ref.shape, off)

    # 2. The image on the cube's grid: the same correction, interpolated the other way.
    shape = cube.data.shape[1:]
    img_on_cube = tuple(_reproject(a, cut_wcs, cube_wcs, shape) for a in (ref, ref_err))
    fwhm_back = _fwhm(img_on_cube[0])
    back_ref, back = _matched(
        *img_on_cube, native, fwhm_back, _fwhm(native[0][0]) if automatic else fwhm_back
    )
    off2 = _register(back_ref, back, method=method, upsample_factor=upsample_factor, what=what)
    ra2, dec2, _, _ = _sky_correction(cube_wcs.low_level_wcs, shape, off2)
    ra_err, dec_err = float(np.hypot(ra_err, ra - ra2)), float(np.hypot(dec_err, dec - dec2))

    details = {
        "dx_image_px": off.dx,
        "dy_image_px": off.dy,
        "dx_image_err_px": off.dx_err,
        "dy_image_err_px": off.dy_err,
        "ra_offset_on_cube_grid": ra2,
        "dec_offset_on_cube_grid": dec2,
        "fwhm_cube_px": fwhm_cube,
        "fwhm_image_px": fwhm_image,
        "band": band,
        "planes": [int(used[0]), int(used[-1]) + 1],
    }
    log.info(
        'Absolute correction of %s from reference_image %s (%s): RA %+.4f +/- %.4f", Dec '
        '%+.4f +/- %.4f" (on the cube\'s grid: %+.4f", %+.4f")',
        cube.meta.filename,
        image.name,
        band,
        ra,
        ra_err,
        dec,
        dec_err,
        ra2,
        dec2,
    )
    return AbsoluteCorrection(ra, dec, ra_err, dec_err, "image", image.name, details)


def _source_corrections(cube, catalog, box):
    """Per catalog source inside ``cube``: the correction (arcsec) that moves the fitted position
    onto the catalog's, its noise error (from the fit) and its model error (box-size spread).

    Returns ``{source index: (dra, ddec, ra_err, dec_err, ra_model_err, dec_model_err)}``.
    """
    nwave, ny, nx = cube.data.shape
    image, err = weighted_white_light(cube.data, cube.err, _valid(cube), np.ones(nwave))
    wcs2d = celestial_wcs(cube)
    xs, ys = wcs2d.world_to_pixel_values(np.asarray(catalog["ra"]), np.asarray(catalog["dec"]))
    out = {}
    for k, (x, y) in enumerate(zip(np.atleast_1d(xs), np.atleast_1d(ys), strict=True)):
        if not (0 <= x <= nx - 1 and 0 <= y <= ny - 1):
            continue
        try:
            fit = fit_point_source(image, err, x, y, box=box)
        except ValueError as exc:
            log.info("%s: catalog source %d not used: %s", cube.meta.filename, k, exc)
            continue
        # Model error: a Gaussian is not the PSF collapsed over wavelength on a sloped
        # background; the spread of fits in smaller and larger boxes shows what that does. It is
        # common to every cube of the scene, so it does not average down over them.
        mx = my = 0.0
        for b in (box - 1, box + 1):
            try:
                v = fit_point_source(image, err, x, y, box=b)
            except ValueError:
                continue
            mx, my = max(mx, abs(v.x - fit.x)), max(my, abs(v.y - fit.y))
        sky, jac = _jacobian(wcs2d, fit.x, fit.y)
        truth = SkyCoord(catalog["ra"][k] * u.deg, catalog["dec"][k] * u.deg)
        dra, ddec = sky.spherical_offsets_to(truth)
        out[k] = (
            float(dra.to_value(u.arcsec)),
            float(ddec.to_value(u.arcsec)),
            *pixel_errors_to_sky(jac, fit.x_err, fit.y_err),
            *pixel_errors_to_sky(jac, mx, my),
        )
    return out


def _mean_with_scatter(values, errors):
    """Error-weighted mean, and its error: the formal one, or the scatter of the values about
    the mean when that is larger (reduced chi-square above one), for two or more values."""
    values, errors = np.asarray(values, float), np.maximum(np.asarray(errors, float), 1e-6)
    w = 1.0 / errors**2
    mean = float(np.sum(w * values) / np.sum(w))
    err = float(1.0 / np.sqrt(np.sum(w)))
    if values.size >= 2:
        red = float(np.sum(w * (values - mean) ** 2) / (values.size - 1))
        err *= max(1.0, np.sqrt(red))
    return mean, err


def correction_from_catalog(cubes, catalog, *, relative=None, box=3):
    """Measure the reference frame of aligned cubes against catalog positions of compact sources.

    Every listed source inside a cube is fitted on that cube's own white-light image, on its
    native pixels (no resampling smooths it), and its position moved onto the reference frame by
    the cube's relative correction. Each source's correction is the error-weighted mean over the
    cubes, its noise error the larger of the formal one and the cubes' scatter (every dither
    samples the source at another pixel phase), to which the model error (the spread of fits
    in other box sizes, common to all cubes) and the catalog's error are added in quadrature;
    the sources are then averaged the same way.

    Parameters
    ----------
    cubes : sequence of IFUCubeModel
        The aligned members (or one cube).
    catalog : astropy.table.Table
        From :func:`load_reference_catalog`.
    relative : sequence of (float, float), optional
        Each cube's relative correction onto the reference frame, arcsec (the offsets table's
        ``ra_offset, dec_offset``); zero by default.
    box : int
        Half-size (pixels) of the fitted box.

    Returns
    -------
    AbsoluteCorrection

    Raises
    ------
    InputError
        If no listed source can be fitted inside any cube.
    """
    cubes = list(cubes)
    relative = [(0.0, 0.0)] * len(cubes) if relative is None else list(relative)
    per_source = {}
    for cube, (rra, rdec) in zip(cubes, relative, strict=True):
        for k, (dra, ddec, *errs) in _source_corrections(cube, catalog, box).items():
            # The member's position on the reference frame is its own moved by its correction.
            per_source.setdefault(k, []).append((dra - rra, ddec - rdec, *errs))
    name = catalog.meta.get("name", "catalog")
    if not per_source:
        raise InputError(
            f"No source of reference_catalog {name} could be fitted in "
            f"{', '.join(c.meta.filename for c in cubes)}: none lies inside the cubes away from "
            "their edges, or none is a compact source there; give a catalog of sources in the "
            "field."
        )
    sources, rows = [], []
    for k, fits_k in sorted(per_source.items()):
        arr = np.array(fits_k)
        ra, ra_err = _mean_with_scatter(arr[:, 0], arr[:, 2])
        dec, dec_err = _mean_with_scatter(arr[:, 1], arr[:, 3])
        # Noise and pixel phase average over the cubes; the model error and the catalog's
        # own error do not.
        ra_err = float(np.sqrt(ra_err**2 + arr[:, 4].mean() ** 2 + catalog["ra_err"][k] ** 2))
        dec_err = float(np.sqrt(dec_err**2 + arr[:, 5].mean() ** 2 + catalog["dec_err"][k] ** 2))
        rows.append((ra, dec, ra_err, dec_err))
        sources.append({"source": int(k), "cubes": len(fits_k), "ra_offset": ra, "dec_offset": dec})
    arr = np.array(rows)
    (ra, ra_err), (dec, dec_err) = (_mean_with_scatter(arr[:, a], arr[:, a + 2]) for a in (0, 1))
    log.info(
        "Absolute correction from %d source(s) of reference_catalog %s in %d cube(s): RA %+.4f "
        '+/- %.4f", Dec %+.4f +/- %.4f"',
        len(rows),
        name,
        len(cubes),
        ra,
        ra_err,
        dec,
        dec_err,
    )
    return AbsoluteCorrection(ra, dec, ra_err, dec_err, "catalog", name, {"sources": sources})


@dataclass
class AbsoluteReference:
    """What the offsets are tied to: a loaded reference image (with its filter's throughput) or
    catalog; see :func:`load_absolute_reference`."""

    image: ReferenceImage | None = None
    catalog: Table | None = None
    throughput: tuple | None = None
    kernel: np.ndarray | None = None


def load_absolute_reference(options):
    """Read the reference image or catalog that the options name, before any other work.

    Parameters
    ----------
    options : AlignOptions
        ``reference_image``, ``reference_catalog``, ``filter_throughput``.

    Returns
    -------
    AbsoluteReference or None
        None when neither is given (relative alignment only).

    Raises
    ------
    ParameterError
        If both are given, or ``filter_throughput`` without ``reference_image``.
    InputError
        If a file cannot be used (see the loaders).
    """
    image, catalog = options.reference_image, options.reference_catalog
    if image and catalog:
        raise ParameterError(
            "reference_image and reference_catalog are both given; tie the cubes to one of them "
            "(give the other as None)."
        )
    if options.psf_kernel and not image:
        raise ParameterError(
            "psf_kernel is given without reference_image; it matches the image's resolution to "
            "the cubes': give reference_image too, or drop it."
        )
    if options.filter_throughput and not image:
        raise ParameterError(
            "filter_throughput is given without reference_image; it weights the cube's planes "
            "for the image's filter: give reference_image too, or drop it."
        )
    if not (image or catalog):
        return None
    if image:
        throughput = (
            load_throughput(options.filter_throughput) if options.filter_throughput else None
        )
        kernel = load_kernel(options.psf_kernel) if options.psf_kernel else None
        return AbsoluteReference(
            image=load_reference_image(image), throughput=throughput, kernel=kernel
        )
    return AbsoluteReference(catalog=load_reference_catalog(catalog))


def _frame_error(result):
    """1-sigma error (arcsec) of where the combined cube's content sits relative to the
    reference member's frame: the mean of the accepted members' relative errors (each member
    enters the combination once), ``sqrt(sum(err**2)) / n``."""
    used = [r for r in result.members if r.accepted]
    n = max(len(used), 1)
    ra = float(np.sqrt(np.sum([r.ra_offset_err**2 for r in used]))) / n
    dec = float(np.sqrt(np.sum([r.dec_offset_err**2 for r in used]))) / n
    return ra, dec


def measure_frame(result, combined, models, reference, options):
    """The absolute correction of the reference frame of one aligned group.

    Parameters are those of :func:`tie_to_reference`. The returned correction's errors include
    the uncertainty of the combined cube's frame against the reference member's
    (:func:`_frame_error`).
    """
    if reference.image is not None:
        correction = correction_from_image(
            combined,
            reference.image,
            method=options.method,
            upsample_factor=options.upsample_factor,
            error_chunks=options.error_chunks,
            throughput=reference.throughput,
            kernel=reference.kernel,
        )
    else:
        used = [(m, r) for m, r in zip(models, result.members, strict=True) if r.accepted]
        correction = correction_from_catalog(
            [m for m, _ in used],
            reference.catalog,
            relative=[(r.ra_offset, r.dec_offset) for _, r in used],
        )
    frame = _frame_error(result)
    return dataclasses.replace(
        correction,
        ra_offset_err=float(np.hypot(correction.ra_offset_err, frame[0])),
        dec_offset_err=float(np.hypot(correction.dec_offset_err, frame[1])),
    )


def apply_frame(result, correction):
    """A copy of ``result`` with ``absolute`` set and every member's ``*_abs`` offsets: its
    relative correction plus the frame's (members not applied get the frame's alone); errors
    in quadrature."""
    members = [
        dataclasses.replace(
            r,
            ra_offset_abs=r.ra_offset + correction.ra_offset,
            dec_offset_abs=r.dec_offset + correction.dec_offset,
            ra_offset_abs_err=float(np.hypot(r.ra_offset_err, correction.ra_offset_err)),
            dec_offset_abs_err=float(np.hypot(r.dec_offset_err, correction.dec_offset_err)),
        )
        for r in result.members
    ]
    return dataclasses.replace(result, members=members, absolute=correction)


def tie_to_reference(result, combined, models, reference, options):
    """Measure the reference frame's absolute correction and give every member its absolute
    offsets.

    Parameters
    ----------
    result : AlignResult
        The relative alignment (:func:`~jwst_ifualign.adapter.align.align_members`).
    combined : IFUCubeModel
        The combined cube built from ``result`` (registered to a reference image).
    models : sequence of IFUCubeModel
        The members in association order (fitted for a catalog, on their native pixels).
    reference : AbsoluteReference
        From :func:`load_absolute_reference`.
    options : AlignOptions
        ``method``, ``upsample_factor``, ``error_chunks``.

    Returns
    -------
    AlignResult
        A copy with ``absolute`` set and every member's ``*_abs`` offsets (:func:`apply_frame`).
        Errors add in quadrature the member's relative error, the frame measurement's, and the
        uncertainty of the combined cube's frame against the reference member's.
    """
    return apply_frame(result, measure_frame(result, combined, models, reference, options))


def combine_frames(corrections):
    """One correction from several measurements of the same frame (settings whose reference
    frames coincide): the error-weighted mean per axis, its error scaled up by the scatter when
    the measurements disagree beyond their errors."""
    if len(corrections) == 1:
        return corrections[0]
    out = [
        _mean_with_scatter(
            [getattr(c, value) for c in corrections], [getattr(c, error) for c in corrections]
        )
        for value, error in (("ra_offset", "ra_offset_err"), ("dec_offset", "dec_offset_err"))
    ]
    first = corrections[0]
    details = {
        "combined_from": [
            dict(c.details, ra_offset=c.ra_offset, dec_offset=c.dec_offset) for c in corrections
        ]
    }
    return AbsoluteCorrection(
        out[0][0], out[1][0], out[0][1], out[1][1], first.kind, first.reference, details
    )
