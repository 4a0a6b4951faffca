"""Simulated s3d cubes and associations, built the way jwst's cube_build builds them.

The simulator serves the tests, the benchmarks and the Quickstart example. Each cube is an
`~stdatamodels.jwst.datamodels.IFUCubeModel` whose ``meta.wcsinfo`` is filled like
``cube_build`` fills it (tangent point at the centre spaxel, odd sizes by default, PC matrix for
the position angle, linear ``WAVE`` or tabular ``WAVE-TAB`` wavelength axis) and whose
``meta.wcs`` is made by ``jwst.assign_wcs.pointing.create_fitswcs`` with cube_build's bounding
box.

The sky is a point source (Gaussian PSF whose width grows with wavelength), an extended blob with
an emission line, and a flat background, integrated over each spaxel. Spaxels outside the
exposure's field of view are NaN with DQ ``DO_NOT_USE | NON_SCIENCE``, as cube_build writes them.

Artefacts of real single-exposure (spec2) cubes can be added per member (:class:`Artefacts`):
un-flagged outlier voxels (cosmic-ray and bad-pixel residuals), holes (NaN, DO_NOT_USE spaxels
inside the footprint, at random or next to the source peak), a striping pattern fixed on the
exposure's columns (the same at every wavelength, its own phase per exposure) and background
offsets and gradients.

Pointing errors: each member has a true pointing error ``(e_ra, e_dec)`` in arcsec on the sky
(RA offset times cos Dec) that its WCS does not know. The data at a spaxel whose WCS says
``(ra, dec)`` shows the sky at ``(ra, dec)`` moved by ``(e_ra, e_dec)``.
The truth recorded for member ``m`` against the reference ``r`` is, in the conventions of
:class:`jwst_ifualign.offsets.Offset`:

- ``ra_offset, dec_offset = e_m - e_r`` (the correction cube_build's ``offset_file`` adds), and
- ``dx, dy``: where a feature at reference pixel ``(x, y)`` appears, ``(x + dx, y + dy)``, once
  the member is reprojected onto the reference grid with its own WCS.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from jwst.assign_wcs.pointing import create_fitswcs
from scipy.special import erf
from stdatamodels.jwst import datamodels
from stdatamodels.jwst.datamodels.dqflags import pixel as dq_flags

DO_NOT_USE, NON_SCIENCE = dq_flags["DO_NOT_USE"], dq_flags["NON_SCIENCE"]

__all__ = [
    "Artefacts",
    "BLOB_FWHM_ARCSEC",
    "BLOB_OFFSET_ARCSEC",
    "InstrumentSetup",
    "MIRI_CH1",
    "NIRSPEC_G395H",
    "SimulatedMember",
    "SimulatedAssociation",
    "make_cube",
    "pixel_fraction",
    "simulate_association",
    "association_with_truth",
    "write_association",
    "scene_spectrum",
]

#: Offset (arcsec East, North) of the extended blob from the point source, on the sky.
BLOB_OFFSET_ARCSEC = (0.55, -0.40)
#: Intrinsic FWHM of the extended blob, arcsec (convolved with the PSF).
BLOB_FWHM_ARCSEC = 1.0


@dataclass(frozen=True)
class InstrumentSetup:
    """Instrument-like parameters of a simulated cube.

    Attributes
    ----------
    name : str
        ``meta.instrument.name`` ("MIRI" or "NIRSPEC").
    exp_type : str
        ``meta.exposure.type``.
    spaxel_arcsec : float
        Spaxel size (cube_build's ``cdelt1 = cdelt2``), arcsec.
    wave_range_um : tuple of float
        First and last wavelength, microns.
    fov_arcsec : tuple of float
        Field of view (width, height) of one exposure, arcsec; spaxels outside it are NaN.
    fwhm_um_slope, fwhm_arcsec_at_zero : float
        PSF FWHM in arcsec is ``fwhm_arcsec_at_zero + fwhm_um_slope * wavelength_um``.
    shape : tuple of int
        Default cube shape ``(nwave, ny, nx)``.
    extra_meta : dict
        Other ``meta.instrument`` values (detector, channel, band, grating, filter).
    """

    name: str
    exp_type: str
    spaxel_arcsec: float
    wave_range_um: tuple[float, float]
    fov_arcsec: tuple[float, float]
    fwhm_um_slope: float
    fwhm_arcsec_at_zero: float
    shape: tuple[int, int, int]
    extra_meta: dict = field(default_factory=dict)


#: MIRI MRS channel 1A-like: 0.13" spaxels, FWHM ~0.27" (Law et al. 2023), 1050 x 45 x 47.
MIRI_CH1 = InstrumentSetup(
    name="MIRI",
    exp_type="MIR_MRS",
    spaxel_arcsec=0.13,
    wave_range_um=(4.90, 5.74),
    fov_arcsec=(3.2, 3.7),
    fwhm_um_slope=0.033,
    fwhm_arcsec_at_zero=0.106,
    shape=(1050, 45, 47),
    extra_meta={"detector": "MIRIFUSHORT", "channel": "1", "band": "SHORT"},
)

#: NIRSpec IFU G395H-like: 0.1" spaxels, undersampled PSF, 3600 x 50 x 50.
NIRSPEC_G395H = InstrumentSetup(
    name="NIRSPEC",
    exp_type="NRS_IFU",
    spaxel_arcsec=0.10,
    wave_range_um=(2.87, 5.27),
    fov_arcsec=(3.0, 3.0),
    fwhm_um_slope=0.032,
    fwhm_arcsec_at_zero=0.0,
    shape=(3600, 50, 50),
    extra_meta={"detector": "NRS1", "grating": "G395H", "filter": "F290LP"},
)


@dataclass(frozen=True)
class Artefacts:
    """Artefacts of a real single-exposure cube added to one simulated member.

    Amplitudes are relative to each plane's source peak (the brightest spaxel of the signal in
    the footprint) or to its noise sigma, as named; every random choice comes from the cube's
    random generator.

    Attributes
    ----------
    outlier_fraction : float
        Fraction of the footprint's voxels given an un-flagged positive outlier (a cosmic-ray or
        bad-pixel residual: one voxel, one plane, DQ clean).
    outlier_amplitude : float
        Value added to an outlier voxel, in units of its plane's source peak.
    hole_fraction : float
        Fraction of the footprint's spaxels made holes (NaN data and ERR, DQ ``DO_NOT_USE``, at
        every plane), chosen at random.
    hole_at_source : bool
        Also make a hole of the spaxel next to the source peak (one spaxel along +x from the
        spaxel nearest the source).
    stripe_amplitude : float
        Column striping: the signal is multiplied by
        ``1 + stripe_amplitude * cos(2 pi x / stripe_period + phase)`` on the cube's own columns
        ``x``, the same at every wavelength; ``phase`` is drawn uniformly per exposure.
    stripe_period : float
        Period of the striping, spaxels.
    background_offset : float
        Constant added to every voxel, in units of the plane's noise sigma.
    background_gradient : float
        Linear ramp along x added to every voxel, from ``-background_gradient`` to
        ``+background_gradient`` times the plane's noise sigma across the cube's width.
    """

    outlier_fraction: float = 0.0
    outlier_amplitude: float = 50.0
    hole_fraction: float = 0.0
    hole_at_source: bool = False
    stripe_amplitude: float = 0.0
    stripe_period: float = 3.0
    background_offset: float = 0.0
    background_gradient: float = 0.0


@dataclass
class SimulatedMember:
    """One simulated exposure and its truth.

    Attributes
    ----------
    model : IFUCubeModel
        The cube.
    pointing_error_arcsec : tuple of float
        ``(e_ra, e_dec)``: true pointing error unknown to the WCS, arcsec on the sky.
    truth_dx, truth_dy : float
        Expected offset in reference pixels (see the module docstring).
    truth_ra_offset, truth_dec_offset : float
        Expected cube_build correction, arcsec (RA offset times cos Dec).
    """

    model: datamodels.IFUCubeModel
    pointing_error_arcsec: tuple[float, float]
    truth_dx: float = 0.0
    truth_dy: float = 0.0
    truth_ra_offset: float = 0.0
    truth_dec_offset: float = 0.0


@dataclass
class SimulatedAssociation:
    """A simulated association: members (reference first) and where they were written."""

    members: list[SimulatedMember]
    product_name: str
    asn_path: Path | None = None

    def truth_table(self):
        """Return the truth as a list of dicts, one per member in association order."""
        return [
            {
                "member": m.model.meta.filename,
                "dx": m.truth_dx,
                "dy": m.truth_dy,
                "ra_offset": m.truth_ra_offset,
                "dec_offset": m.truth_dec_offset,
            }
            for m in self.members
        ]


def _wavelengths(setup, nwave, tabular):
    lo, hi = setup.wave_range_um
    if not tabular:
        return np.linspace(lo, hi, nwave)
    # Multi-band cubes have a non-uniform table; a geometric progression is a fair stand-in.
    return np.geomspace(lo, hi, nwave)


def pixel_fraction(centre, sigma, n):
    """Fraction of a unit-flux 1-D Gaussian falling in each of ``n`` pixels (pixel centres 0..n-1).

    ``centre`` and ``sigma`` (pixels) are scalars or arrays that broadcast together to some
    shape S; returns shape S + (n,).
    """
    edges = np.arange(n + 1) - 0.5
    z = (edges - np.asarray(centre, float)[..., None]) / (
        np.sqrt(2.0) * np.asarray(sigma, float)[..., None]
    )
    return 0.5 * np.diff(erf(z), axis=-1)


def _gaussian_cube(x0, y0, sigma_pix, shape):
    """Pixel-integrated circular Gaussians of unit flux, one per plane: shape (nwave, ny, nx)."""
    nwave, ny, nx = shape
    sigma_pix = np.broadcast_to(np.asarray(sigma_pix, dtype=float), (nwave,))
    fx = pixel_fraction(np.full(nwave, x0), sigma_pix, nx)
    fy = pixel_fraction(np.full(nwave, y0), sigma_pix, ny)
    return fy[:, :, None] * fx[:, None, :]


def _fill_wcsinfo(model, *, crval, crpix, cdelt_deg, pa_deg, wavelengths, tabular):
    """Fill meta.wcsinfo the way cube_build's ``update_ifucube`` does."""
    w = model.meta.wcsinfo
    w.crval1, w.crval2 = float(crval[0]), float(crval[1])
    w.crpix1, w.crpix2 = float(crpix[0]), float(crpix[1])
    w.cdelt1 = w.cdelt2 = float(cdelt_deg)
    w.ctype1, w.ctype2 = "RA---TAN", "DEC--TAN"
    w.cunit1 = w.cunit2 = "deg"
    w.cunit3 = "um"
    w.wcsaxes = 3
    rot = math.radians(pa_deg)
    w.pc1_1, w.pc1_2, w.pc1_3 = -math.cos(rot), math.sin(rot), 0.0
    w.pc2_1, w.pc2_2, w.pc2_3 = math.sin(rot), math.cos(rot), 0.0
    w.pc3_1, w.pc3_2, w.pc3_3 = 0.0, 0.0, 1.0
    if tabular:
        w.ctype3 = "WAVE-TAB"
        w.ps3_0, w.ps3_1 = "WCS-TABLE", "wavelength"
        w.crval3, w.crpix3 = 1.0, 1.0
        model.wavedim = f"(1,{len(wavelengths):d})"
    else:
        w.ctype3 = "WAVE"
        w.crval3 = float(wavelengths[0])
        w.crpix3 = 1.0
        w.cdelt3 = float(wavelengths[1] - wavelengths[0]) if len(wavelengths) > 1 else 0.001
    w.waverange_start = float(wavelengths[0])
    w.waverange_end = float(wavelengths[-1])


def make_cube(
    *,
    setup=MIRI_CH1,
    shape=None,
    pointing=(150.0, 2.0),
    source=(150.0, 2.0),
    pointing_error_arcsec=(0.0, 0.0),
    pa_deg=0.0,
    fov_pa_deg=8.0,
    tabular=False,
    snr=50.0,
    source_fraction=1.0,
    rng=None,
    filename="sim_s3d.fits",
    artefacts=None,
):
    """Make one cube_build-like s3d cube of a simulated scene.

    Parameters
    ----------
    setup : InstrumentSetup
        Instrument-like parameters.
    shape : tuple of int, optional
        ``(nwave, ny, nx)``; defaults to ``setup.shape``. cube_build writes odd spatial sizes;
        even sizes are allowed here to test their handling.
    pointing : tuple of float
        ``(ra, dec)`` in degrees of the cube centre (the WCS tangent point, ``crval``).
    source : tuple of float
        ``(ra, dec)`` in degrees of the point source on the true sky.
    pointing_error_arcsec : tuple of float
        ``(e_ra, e_dec)`` arcsec on the sky: the data show the sky moved by this, the WCS does not
        know it.
    pa_deg : float
        Cube position angle (cube_build's ``rot_angle``), degrees; 0 is North up, East left.
    fov_pa_deg : float
        Orientation of the exposure's field of view within the cube, degrees.
    tabular : bool
        Write a ``WAVE-TAB`` (tabular) wavelength axis instead of a linear ``WAVE`` one.
    snr : float
        Per-voxel signal-to-noise of the brightest spaxel of every plane (noise is Gaussian,
        constant within a plane, recorded in ERR). ``numpy.inf`` for no noise.
    source_fraction : float
        Scale of the point source relative to the extended emission (1 = PSF dominated).
    rng : numpy.random.Generator, optional
        Random generator for the noise.
    filename : str
        ``meta.filename``.
    artefacts : Artefacts, optional
        Artefacts of a real single-exposure cube to add; none by default.

    Returns
    -------
    IFUCubeModel
        Data (MJy/sr) of shape ``(nwave, ny, nx)``, float32, NaN outside the field of view.
    """
    rng = np.random.default_rng(0) if rng is None else rng
    nwave, ny, nx = setup.shape if shape is None else shape
    wavelengths = _wavelengths(setup, nwave, tabular)
    cdelt = setup.spaxel_arcsec
    crpix = ((nx - 1) / 2.0 + 1.0, (ny - 1) / 2.0 + 1.0)

    wave_f4 = np.asarray(wavelengths, dtype=np.float32)
    wavetable = np.array([(wave_f4[None].T,)], dtype=[("wavelength", "<f4", (nwave, 1))])
    model = datamodels.IFUCubeModel(
        data=np.zeros((nwave, ny, nx), np.float32),
        dq=np.zeros((nwave, ny, nx), np.uint32),
        err=np.zeros((nwave, ny, nx), np.float32),
        weightmap=np.zeros((nwave, ny, nx), np.float32),
        wavetable=wavetable,
    )
    _fill_wcsinfo(
        model,
        crval=pointing,
        crpix=crpix,
        cdelt_deg=cdelt / 3600.0,
        pa_deg=pa_deg,
        wavelengths=wavelengths,
        tabular=tabular,
    )
    _fill_meta(model, setup, filename, source)
    model.meta.wcs = create_fitswcs(model)
    model.meta.wcs.bounding_box = ((0, nx - 1), (0, ny - 1), (0, nwave - 1))

    # Pixel positions of sky features as this (mis-pointed) exposure records them: a sky
    # position S shows at the pixel whose WCS coordinate is S moved by -e.
    e_ra, e_dec = pointing_error_arcsec
    w0 = float(wavelengths[nwave // 2])

    def to_pixel(ra, dec, dra=0.0, ddec=0.0):
        pos = SkyCoord(ra * u.deg, dec * u.deg).spherical_offsets_by(
            (dra - e_ra) * u.arcsec, (ddec - e_dec) * u.arcsec
        )
        x, y, _ = model.meta.wcs.invert(pos.ra.deg, pos.dec.deg, w0, with_bounding_box=False)
        return float(x), float(y)

    fwhm = setup.fwhm_arcsec_at_zero + setup.fwhm_um_slope * wavelengths
    sig_psf = fwhm / cdelt / 2.3548
    xs, ys = to_pixel(*source)
    psf = _gaussian_cube(xs, ys, sig_psf, (nwave, ny, nx))
    xb, yb = to_pixel(*source, *BLOB_OFFSET_ARCSEC)
    blob_sigma = np.hypot(BLOB_FWHM_ARCSEC / 2.3548 / cdelt, sig_psf)
    blob = _gaussian_cube(xb, yb, blob_sigma, (nwave, ny, nx))

    continuum, line = scene_spectrum(setup, wavelengths)
    pix_area = 1.0  # fluxes are in spaxel units, so the cube is directly surface brightness
    signal = (
        source_fraction * continuum[:, None, None] * psf
        + 2.0 * continuum[:, None, None] * line[:, None, None] * blob
    ) / pix_area
    background = 0.02 * continuum
    signal += background[:, None, None]

    footprint = _footprint(model, setup.fov_arcsec, fov_pa_deg, pointing)
    peak = np.max(np.where(footprint, signal, 0.0), axis=(1, 2))
    sigma = np.zeros(nwave) if not np.isfinite(snr) else peak / snr
    noise = rng.standard_normal(signal.shape) * sigma[:, None, None]
    art = Artefacts() if artefacts is None else artefacts
    if art.stripe_amplitude:
        phase = rng.uniform(0.0, 2.0 * np.pi)
        columns = np.arange(nx)
        signal = signal * (
            1.0 + art.stripe_amplitude * np.cos(2.0 * np.pi * columns / art.stripe_period + phase)
        )
    data = signal + noise
    if art.background_offset or art.background_gradient:
        ramp = np.linspace(-1.0, 1.0, nx) * art.background_gradient + art.background_offset
        data += sigma[:, None, None] * ramp[None, None, :]
    err = np.broadcast_to(sigma[:, None, None], data.shape).copy()
    if not np.isfinite(snr):
        err[:] = peak[:, None, None] * 1e-3  # a small, finite ERR even without noise
    holes = _holes(art, footprint, (xs, ys), rng)
    if art.outlier_fraction:
        inside = np.flatnonzero(np.broadcast_to(footprint, data.shape).ravel())
        n_hits = int(round(art.outlier_fraction * inside.size))
        hits = rng.choice(inside, size=n_hits, replace=False)
        z = hits // (ny * nx)
        data.ravel()[hits] += art.outlier_amplitude * peak[z]

    outside = ~footprint | holes
    data[:, outside] = np.nan
    err[:, outside] = np.nan
    dq = np.zeros(data.shape, np.uint32)
    dq[:, outside] = DO_NOT_USE | NON_SCIENCE
    wmap = np.where(footprint, 4.0, 0.0)[None].repeat(nwave, axis=0)

    model.data = data.astype(np.float32)
    model.err = err.astype(np.float32)
    model.dq = dq
    model.weightmap = wmap.astype(np.float32)
    return model


def scene_spectrum(setup, wavelengths):
    """Continuum and emission-line profile of the simulated scene at ``wavelengths`` (microns).

    Returns ``(continuum, line)``, arrays like ``wavelengths``: the point source's flux per
    spaxel is ``continuum`` times its PSF fraction, the blob's ``2 * continuum * line`` times its
    profile, the background ``0.02 * continuum``.
    """
    lo, hi = setup.wave_range_um
    wavelengths = np.asarray(wavelengths, float)
    continuum = 100.0 * (wavelengths / lo) ** -1.0
    line = 1.0 + 3.0 * np.exp(-0.5 * ((wavelengths - (lo + 0.55 * (hi - lo))) / (0.002 * lo)) ** 2)
    return continuum, line


def _holes(artefacts, footprint, source_xy, rng):
    """Boolean (ny, nx): spaxels inside the footprint made holes (see :class:`Artefacts`)."""
    holes = np.zeros(footprint.shape, bool)
    if artefacts.hole_fraction:
        inside = np.flatnonzero(footprint.ravel())
        n = int(round(artefacts.hole_fraction * inside.size))
        holes.ravel()[rng.choice(inside, size=n, replace=False)] = True
    if artefacts.hole_at_source:
        x, y = int(np.rint(source_xy[0])) + 1, int(np.rint(source_xy[1]))
        if 0 <= y < holes.shape[0] and 0 <= x < holes.shape[1]:
            holes[y, x] = True
    return holes & footprint


def _fill_meta(model, setup, filename, source):
    model.meta.filename = filename
    model.meta.bunit_data = "MJy/sr"
    model.meta.bunit_err = "MJy/sr"
    model.meta.instrument.name = setup.name
    for key, value in setup.extra_meta.items():
        setattr(model.meta.instrument, key, value)
    model.meta.exposure.type = setup.exp_type
    # cube_build copies it from the exposures; extract_1d's IFU path needs it.
    model.meta.wcsinfo.dispersion_direction = 2 if setup.name == "MIRI" else 1
    model.meta.telescope = "JWST"
    model.meta.observation.date = "2024-01-01"
    model.meta.observation.time = "00:00:00"
    model.meta.target.ra, model.meta.target.dec = float(source[0]), float(source[1])
    model.meta.ifu.flux_extension = "SCI"
    model.meta.ifu.error_extension = "ERR"
    model.meta.ifu.error_type = "ERR"
    model.meta.ifu.dq_extension = "DQ"
    model.meta.ifu.weighting = "drizzle"
    model.meta.ifu.roi_spatial = 0.0
    model.meta.ifu.roi_wave = 0.0
    model.meta.ifu.weight_power = 0.0
    area = setup.spaxel_arcsec**2
    model.meta.photometry.pixelarea_arcsecsq = area
    model.meta.photometry.pixelarea_steradians = area * 2.3504e-11
    model.meta.cal_step.cube_build = "COMPLETE"


def _footprint(model, fov_arcsec, fov_pa_deg, centre):
    """Boolean (ny, nx): spaxel centres inside the exposure's rotated rectangular field of view."""
    _, ny, nx = model.data.shape
    y, x = np.mgrid[:ny, :nx]
    ra, dec, _ = model.meta.wcs(x.ravel(), y.ravel(), np.zeros(x.size), with_bounding_box=False)
    c0 = SkyCoord(centre[0] * u.deg, centre[1] * u.deg)
    dra, ddec = c0.spherical_offsets_to(SkyCoord(ra * u.deg, dec * u.deg))
    t = math.radians(fov_pa_deg)
    a = dra.to_value(u.arcsec) * math.cos(t) - ddec.to_value(u.arcsec) * math.sin(t)
    b = dra.to_value(u.arcsec) * math.sin(t) + ddec.to_value(u.arcsec) * math.cos(t)
    inside = (np.abs(a) <= fov_arcsec[0] / 2) & (np.abs(b) <= fov_arcsec[1] / 2)
    return inside.reshape(ny, nx)


def _truth_pixels(ref_model, member_error, ref_error):
    """Offset in reference pixels that a pointing error difference produces (module docstring)."""
    _, ny, nx = ref_model.data.shape
    xc, yc = (nx - 1) / 2.0, (ny - 1) / 2.0
    ra, dec, lam = ref_model.meta.wcs(xc, yc, 0, with_bounding_box=False)
    # A feature at reference pixel p (sky S = w(p) + e_r) shows in the member at the pixel whose
    # reference-grid coordinate is S - e_m = w(p) + (e_r - e_m).
    d_ra = ref_error[0] - member_error[0]
    d_dec = ref_error[1] - member_error[1]
    moved = SkyCoord(ra * u.deg, dec * u.deg).spherical_offsets_by(d_ra * u.arcsec, d_dec * u.arcsec)
    x, y, _ = ref_model.meta.wcs.invert(moved.ra.deg, moved.dec.deg, lam, with_bounding_box=False)
    return float(x) - xc, float(y) - yc


def simulate_association(
    *,
    setup=MIRI_CH1,
    shape=None,
    n_members=4,
    dithers_arcsec=((0.0, 0.0), (0.51, -0.32), (-0.47, 0.36), (0.29, 0.55)),
    errors_arcsec=((0.0, 0.0), (0.0, 0.0), (0.085, -0.055), (0.085, -0.055)),
    pa_deg=0.0,
    tabular=False,
    snr=50.0,
    seed=1,
    target=(150.0, 2.0),
    product_name="sim_ifu",
    artefacts=None,
):
    """Simulate an association of dithered cubes with injected pointing errors.

    The default is the seed notebook's 4-dither MIRI MRS case: exposures 1 and 2 (one
    observation) agree, 3 and 4 (another observation) agree with each other but carry a pointing
    error of (85, -55) mas, i.e. about (0.65, -0.42) channel-1 spaxels.

    Parameters
    ----------
    setup : InstrumentSetup
        Instrument-like parameters.
    shape : tuple of int, optional
        ``(nwave, ny, nx)``; defaults to ``setup.shape``.
    n_members : int
        Number of exposures; dithers and errors cycle if there are more members than entries.
    dithers_arcsec : sequence of (float, float)
        Commanded dither offsets (known to the WCS) of each exposure, arcsec on the sky.
    errors_arcsec : sequence of (float, float)
        True pointing errors (unknown to the WCS) of each exposure, arcsec on the sky.
    pa_deg : float
        Position angle of every cube, degrees.
    tabular : bool
        Write WAVE-TAB cubes.
    snr : float
        Per-voxel S/N of the brightest spaxel (see `make_cube`).
    seed : int
        Seed of the noise.
    target : tuple of float
        ``(ra, dec)`` of the source, degrees.
    product_name : str
        The association's product name.
    artefacts : dict of int to Artefacts, optional
        Artefacts to add to members, by member index (0 is the reference); none by default.

    Returns
    -------
    SimulatedAssociation
    """
    rng = np.random.default_rng(seed)
    members = []
    target_coord = SkyCoord(target[0] * u.deg, target[1] * u.deg)
    for i in range(n_members):
        dither = dithers_arcsec[i % len(dithers_arcsec)]
        error = errors_arcsec[i % len(errors_arcsec)]
        if i >= len(errors_arcsec):
            error = tuple(rng.uniform(-0.1, 0.1, 2))
        pointing = target_coord.spherical_offsets_by(dither[0] * u.arcsec, dither[1] * u.arcsec)
        model = make_cube(
            setup=setup,
            shape=shape,
            pointing=(pointing.ra.deg, pointing.dec.deg),
            source=target,
            pointing_error_arcsec=error,
            pa_deg=pa_deg,
            tabular=tabular,
            snr=snr,
            rng=rng,
            artefacts=(artefacts or {}).get(i),
            filename=f"jw01234{1 + i // 2:03d}001_0{i % 2 + 1}101_00001_mirifushort_s3d.fits"
            if setup.name == "MIRI"
            else f"jw01234{1 + i // 2:03d}001_0{i % 2 + 1}101_00001_nrs1_s3d.fits",
        )
        members.append(SimulatedMember(model=model, pointing_error_arcsec=tuple(error)))
    return association_with_truth(members, product_name)


def association_with_truth(members, product_name):
    """The association of ``members`` (reference first), each given its truth against it.

    Parameters
    ----------
    members : list of SimulatedMember
        Cubes and their true pointing errors; ``truth_*`` are filled in place.
    product_name : str
        The association's product name.

    Returns
    -------
    SimulatedAssociation
    """
    ref = members[0]
    for m in members:
        m.truth_dx, m.truth_dy = _truth_pixels(
            ref.model, m.pointing_error_arcsec, ref.pointing_error_arcsec
        )
        m.truth_ra_offset = m.pointing_error_arcsec[0] - ref.pointing_error_arcsec[0]
        m.truth_dec_offset = m.pointing_error_arcsec[1] - ref.pointing_error_arcsec[1]
    return SimulatedAssociation(members=members, product_name=product_name)


def write_association(sim, folder, *, asn_name="asn.json"):
    """Save the members of a simulated association and a spec3-style association JSON.

    Member file names in the JSON are relative to the JSON file, as in jwst associations.

    Parameters
    ----------
    sim : SimulatedAssociation
        The association to write; ``sim.asn_path`` is set.
    folder : str or Path
        Destination folder (created if needed).
    asn_name : str
        File name of the association JSON.

    Returns
    -------
    Path
        The association JSON path.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for m in sim.members:
        m.model.save(folder / m.model.meta.filename)
    asn = {
        "asn_type": "spec3",
        "asn_rule": "candidate_Asn_Lv3IFU",
        "asn_id": "o001",
        "program": "01234",
        "asn_pool": "simulated_pool",
        "version_id": None,
        "code_version": "jwst_ifualign simulator",
        "products": [
            {
                "name": sim.product_name,
                "members": [
                    {"expname": m.model.meta.filename, "exptype": "science"} for m in sim.members
                ],
            }
        ],
    }
    path = folder / asn_name
    path.write_text(json.dumps(asn, indent=2))
    sim.asn_path = path
    return path
