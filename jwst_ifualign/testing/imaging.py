"""Simulated JWST images and source catalogs of the simulator's scene, on the TRUE sky.

The absolute mode of ``ifu_align`` ties cubes to an image (MIRI imaging, NIRCam) or to a catalog
of source positions. For its tests, benchmark and worked example, this module renders the scene
that :func:`jwst_ifualign.testing.simulate.make_cube` puts into every cube (a point source, an
extended blob offset from it, a flat background) as an imager would see it: pixel-integrated,
with the imager's PSF (a circular Gaussian of the filter's FWHM), Gaussian noise, and the true
WCS (no pointing error). Surface brightness is in the cube's units, so the image and a cube
collapsed over the filter's band agree in level.

The image is an `~stdatamodels.jwst.datamodels.ImageModel` whose ``meta.wcsinfo`` is a
tangent-plane WCS with its position angle, and whose ``meta.wcs`` is made from it by
``jwst.assign_wcs.pointing.create_fitswcs``, as for an ``_i2d`` product; saved, its SCI header
carries the same WCS in FITS keywords.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import Table
from jwst.assign_wcs.pointing import create_fitswcs
from stdatamodels.jwst import datamodels

from .simulate import (
    BLOB_FWHM_ARCSEC,
    BLOB_OFFSET_ARCSEC,
    MIRI_CH1,
    pixel_fraction,
    scene_spectrum,
)

__all__ = [
    "ImagerSetup",
    "MIRI_F560W",
    "NIRCAM_F444W",
    "make_reference_image",
    "reference_catalog",
    "filter_throughput_table",
]


@dataclass(frozen=True)
class ImagerSetup:
    """An imager and filter.

    Attributes
    ----------
    name, detector, filter : str
        ``meta.instrument`` values.
    pixel_arcsec : float
        Pixel scale, arcsec.
    fwhm_arcsec : float
        PSF FWHM in the filter (a circular Gaussian here), arcsec.
    band_um : tuple of float
        Wavelengths where the filter transmits (a top hat here), microns.
    shape : tuple of int
        ``(ny, nx)`` of the image.
    """

    name: str
    detector: str
    filter: str
    pixel_arcsec: float
    fwhm_arcsec: float
    band_um: tuple[float, float]
    shape: tuple[int, int]


#: MIRI imager F560W-like: 0.11" pixels, FWHM 0.207" (JDox), 5.05-6.17 um.
MIRI_F560W = ImagerSetup("MIRI", "MIRIMAGE", "F560W", 0.11, 0.207, (5.054, 6.171), (61, 65))

#: NIRCam long-wavelength F444W-like: 0.063" pixels, FWHM 0.145" (JDox), 3.88-4.98 um.
NIRCAM_F444W = ImagerSetup("NIRCAM", "NRCALONG", "F444W", 0.063, 0.145, (3.881, 4.982), (91, 95))


def _gaussian_image(x0, y0, sigma, shape):
    """Pixel-integrated circular Gaussian of unit flux, shape (ny, nx)."""
    ny, nx = shape
    return np.outer(pixel_fraction(y0, sigma, ny), pixel_fraction(x0, sigma, nx))


def _fill_wcsinfo(model, *, centre, pixel_arcsec, pa_deg, shape):
    ny, nx = shape
    w = model.meta.wcsinfo
    w.wcsaxes = 2
    w.crval1, w.crval2 = float(centre[0]), float(centre[1])
    w.crpix1, w.crpix2 = (nx - 1) / 2.0 + 1.0, (ny - 1) / 2.0 + 1.0
    w.cdelt1 = w.cdelt2 = pixel_arcsec / 3600.0
    w.ctype1, w.ctype2 = "RA---TAN", "DEC--TAN"
    w.cunit1 = w.cunit2 = "deg"
    rot = math.radians(pa_deg)
    w.pc1_1, w.pc1_2 = -math.cos(rot), math.sin(rot)
    w.pc2_1, w.pc2_2 = math.sin(rot), math.cos(rot)


def make_reference_image(
    *,
    imager=MIRI_F560W,
    cube_setup=MIRI_CH1,
    source=(150.0, 2.0),
    centre=None,
    pa_deg=17.0,
    snr=100.0,
    source_fraction=1.0,
    rng=None,
    filename="sim_i2d.fits",
):
    """Render the simulator's scene as an image on the true sky.

    Parameters
    ----------
    imager : ImagerSetup
        Pixel scale, PSF and band of the image.
    cube_setup : InstrumentSetup
        The cubes' setup: the image's surface brightness is in the same units as theirs (flux per
        cube spaxel).
    source : tuple of float
        ``(ra, dec)`` of the point source, degrees (as given to ``simulate_association``).
    centre : tuple of float, optional
        ``(ra, dec)`` of the image centre, degrees; defaults to 1" East and 0.7" North of the
        source (so that the image and the cubes are not centred alike).
    pa_deg : float
        Position angle of the image's y axis, degrees.
    snr : float
        Peak signal-to-noise ratio per pixel (Gaussian noise, recorded in ERR).
    source_fraction : float
        Point-source scale, as in :func:`~jwst_ifualign.testing.simulate.make_cube`.
    rng : numpy.random.Generator, optional
        Noise generator.
    filename : str
        ``meta.filename``.

    Returns
    -------
    ImageModel
        ``data`` and ``err`` of shape ``imager.shape`` (float32), ``meta.wcs`` the true WCS.
    """
    rng = np.random.default_rng(0) if rng is None else rng
    src = SkyCoord(source[0] * u.deg, source[1] * u.deg)
    if centre is None:
        c = src.spherical_offsets_by(1.0 * u.arcsec, 0.7 * u.arcsec)
        centre = (c.ra.deg, c.dec.deg)
    shape = imager.shape
    model = datamodels.ImageModel(
        data=np.zeros(shape, np.float32),
        err=np.zeros(shape, np.float32),
        dq=np.zeros(shape, np.uint32),
    )
    _fill_wcsinfo(
        model, centre=centre, pixel_arcsec=imager.pixel_arcsec, pa_deg=pa_deg, shape=shape
    )
    model.meta.wcs = create_fitswcs(model)
    model.meta.filename = filename
    model.meta.bunit_data = "MJy/sr"
    model.meta.bunit_err = "MJy/sr"
    model.meta.telescope = "JWST"
    model.meta.instrument.name = imager.name
    model.meta.instrument.detector = imager.detector
    model.meta.instrument.filter = imager.filter
    model.meta.exposure.type = "MIR_IMAGE" if imager.name == "MIRI" else "NRC_IMAGE"

    # The scene at the band's wavelengths that the cubes also cover, in cube spaxel units.
    lo, hi = imager.band_um
    waves = np.linspace(lo, hi, 64)
    continuum, line = scene_spectrum(cube_setup, waves)
    per_area = (cube_setup.spaxel_arcsec / imager.pixel_arcsec) ** 2
    sig_psf = imager.fwhm_arcsec / imager.pixel_arcsec / 2.3548
    sig_blob = np.hypot(BLOB_FWHM_ARCSEC / imager.pixel_arcsec / 2.3548, sig_psf)

    def pixel_of(coord):
        x, y = model.meta.wcs.invert(coord.ra.deg, coord.dec.deg, with_bounding_box=False)
        return float(x), float(y)

    xs, ys = pixel_of(src)
    xb, yb = pixel_of(src.spherical_offsets_by(*(v * u.arcsec for v in BLOB_OFFSET_ARCSEC)))
    signal = per_area * (
        source_fraction * continuum.mean() * _gaussian_image(xs, ys, sig_psf, shape)
        + 2.0 * (continuum * line).mean() * _gaussian_image(xb, yb, sig_blob, shape)
    )
    signal += 0.02 * continuum.mean()
    sigma = float(signal.max() / snr) if np.isfinite(snr) else float(signal.max() * 1e-3)
    noise = rng.standard_normal(shape) * sigma if np.isfinite(snr) else 0.0
    model.data = (signal + noise).astype(np.float32)
    model.err = np.full(shape, sigma, np.float32)
    return model


def reference_catalog(positions, *, error_arcsec=0.0):
    """A reference catalog as the step reads it: ``ra``, ``dec`` (deg), ``ra_err``, ``dec_err``.

    Parameters
    ----------
    positions : sequence of (float, float)
        ``(ra, dec)`` of each source, degrees.
    error_arcsec : float
        1-sigma error of every position, arcsec (RA error on the sky, times cos Dec).

    Returns
    -------
    astropy.table.Table
        Write it with ``table.write(path, format="ascii.ecsv")``.
    """
    ra, dec = (np.array(v, float) for v in zip(*positions, strict=True))
    table = Table({"ra": ra * u.deg, "dec": dec * u.deg})
    table["ra_err"] = np.full(ra.size, error_arcsec) * u.arcsec
    table["dec_err"] = np.full(ra.size, error_arcsec) * u.arcsec
    return table


def filter_throughput_table(imager, *, n=50):
    """A top-hat filter throughput as the step reads it: ``wavelength`` (um), ``throughput``."""
    lo, hi = imager.band_um
    wave = np.linspace(lo - 0.1, hi + 0.1, n)
    return Table({"wavelength": wave * u.um, "throughput": ((wave >= lo) & (wave <= hi)) * 1.0})
