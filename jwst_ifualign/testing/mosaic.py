"""Simulated mosaics: tiles of cube_build-like s3d cubes over a field of point sources.

A mosaic needs emission wherever two tiles overlap, which the single-source scene of
:func:`jwst_ifualign.testing.simulate.make_cube` does not give. Each tile here is made by
``make_cube`` (WCS, field of view, DQ and metadata exactly as for a dither) without noise, and
its SCI array is then replaced by a field of point sources seen through the tile's own pointing
error, plus a flat background and Gaussian noise recorded in ERR. The truth follows the
conventions of :mod:`jwst_ifualign.testing.simulate` (offsets against the first tile, the
reference).
"""

from __future__ import annotations

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord

from .simulate import (
    MIRI_CH1,
    SimulatedMember,
    association_with_truth,
    make_cube,
    pixel_fraction,
    scene_spectrum,
)

__all__ = ["grid_layout", "simulate_mosaic"]


def grid_layout(ncol, nrow, step_arcsec=(1.6, 1.9)):
    """Tile centres of an ``ncol`` x ``nrow`` mosaic, arcsec (RA times cos Dec, Dec) from the
    first tile, row by row.

    ``step_arcsec``: (x, y) distance between tile centres; the default overlaps MIRI_CH1's
    3.2" x 3.7" field of view by half along both axes.
    """
    sx, sy = step_arcsec
    return [(c * sx, r * sy) for r in range(nrow) for c in range(ncol)]


def _source_field(tiles_arcsec, *, spacing_arcsec, margin_arcsec, rng):
    """Point sources on a jittered grid covering every tile: (x, y, flux), arcsec and relative."""
    t = np.asarray(tiles_arcsec, float)
    lo, hi = t.min(axis=0) - margin_arcsec, t.max(axis=0) + margin_arcsec
    gx = np.arange(lo[0], hi[0] + spacing_arcsec, spacing_arcsec)
    gy = np.arange(lo[1], hi[1] + spacing_arcsec, spacing_arcsec)
    x, y = (a.ravel() for a in np.meshgrid(gx, gy))
    jitter = rng.uniform(-0.35, 0.35, (2, x.size)) * spacing_arcsec
    return x + jitter[0], y + jitter[1], rng.uniform(0.5, 1.5, x.size)


def simulate_mosaic(
    *,
    tiles_arcsec,
    errors_arcsec=None,
    pa_deg=0.0,
    setup=MIRI_CH1,
    shape=(40, 35, 37),
    snr=50.0,
    max_error_arcsec=0.08,
    source_spacing_arcsec=0.9,
    seed=1,
    target=(150.0, 2.0),
    product_name="sim_mosaic",
):
    """Simulate a mosaic of IFU tiles with injected pointing errors.

    Parameters
    ----------
    tiles_arcsec : sequence of (float, float)
        Commanded centre of each tile (known to its WCS), arcsec on the sky from ``target``
        (RA offset times cos Dec, Dec offset). The first tile is the reference.
    errors_arcsec : sequence of (float, float), optional
        True pointing error of each tile (unknown to its WCS), arcsec; by default zero for the
        first tile and uniform in +-``max_error_arcsec`` for the others.
    pa_deg : float or sequence of float
        Position angle of every tile's cube, or of each tile, degrees (tiles at another angle
        than their neighbours are not translations of their grids).
    setup : InstrumentSetup
        Instrument-like parameters (field of view, spaxel size, PSF).
    shape : tuple of int
        ``(nwave, ny, nx)`` of every tile.
    snr : float
        Per-voxel S/N of the brightest spaxel of each plane of a tile.
    max_error_arcsec : float
        Range of the default pointing errors.
    source_spacing_arcsec : float
        Mean distance between the point sources of the field (a jittered grid).
    seed : int
        Seed of the source field, the errors and the noise.
    target : tuple of float
        ``(ra, dec)`` of the first tile's commanded centre, degrees.
    product_name : str
        The association's product name.

    Returns
    -------
    SimulatedAssociation
        Tiles in the order given, with their truth against the first.
    """
    rng = np.random.default_rng(seed)
    n = len(tiles_arcsec)
    if errors_arcsec is None:
        errors_arcsec = [(0.0, 0.0)] + [
            tuple(rng.uniform(-max_error_arcsec, max_error_arcsec, 2)) for _ in range(n - 1)
        ]
    half_fov = 0.5 * float(np.hypot(*setup.fov_arcsec))
    sx, sy, flux = _source_field(
        tiles_arcsec, spacing_arcsec=source_spacing_arcsec, margin_arcsec=half_fov + 0.5, rng=rng
    )
    centre = SkyCoord(target[0] * u.deg, target[1] * u.deg)
    sources = centre.spherical_offsets_by(sx * u.arcsec, sy * u.arcsec)
    detector = setup.extra_meta.get("detector", "nrs1").lower()
    angles = np.broadcast_to(np.asarray(pa_deg, float), (n,))
    members = []
    for k, (tile, error) in enumerate(zip(tiles_arcsec, errors_arcsec, strict=True)):
        pointing = centre.spherical_offsets_by(tile[0] * u.arcsec, tile[1] * u.arcsec)
        model = make_cube(
            setup=setup,
            shape=shape,
            pointing=(pointing.ra.deg, pointing.dec.deg),
            source=target,
            pointing_error_arcsec=error,
            pa_deg=float(angles[k]),
            snr=np.inf,
            filename=f"jw01234001001_02101_{k + 1:05d}_{detector}_s3d.fits",
        )
        _fill_field(model, setup, sources, flux, error, snr, rng)
        members.append(SimulatedMember(model=model, pointing_error_arcsec=tuple(error)))
    return association_with_truth(members, product_name)


def _fill_field(model, setup, sources, flux, error, snr, rng):
    """Replace a tile's SCI and ERR by the source field seen with pointing error ``error``."""
    nwave, ny, nx = model.data.shape
    z = np.arange(nwave, dtype=float)
    _, _, wave = model.meta.wcs(np.zeros(nwave), np.zeros(nwave), z, with_bounding_box=False)
    # A sky position S shows at the pixel whose WCS coordinate is S moved by -error.
    seen = sources.spherical_offsets_by(-error[0] * u.arcsec, -error[1] * u.arcsec)
    x, y, _ = model.meta.wcs.invert(
        seen.ra.deg, seen.dec.deg, np.full(len(flux), wave[nwave // 2]), with_bounding_box=False
    )
    x, y = np.asarray(x, float), np.asarray(y, float)
    near = (x > -5) & (x < nx + 4) & (y > -5) & (y < ny + 4)
    sigma = (setup.fwhm_arcsec_at_zero + setup.fwhm_um_slope * wave) / setup.spaxel_arcsec / 2.3548
    # (k sources, nwave, n pixels): each source's profile at every plane's PSF width.
    fx = pixel_fraction(x[near][:, None], sigma[None, :], nx)
    fy = pixel_fraction(y[near][:, None], sigma[None, :], ny)
    continuum, _ = scene_spectrum(setup, wave)
    signal = np.einsum("k,kwy,kwx->wyx", flux[near], fy, fx) * continuum[:, None, None]
    signal += 0.02 * continuum[:, None, None]
    inside = np.isfinite(model.data[0])
    peak = np.max(np.where(inside, signal, 0.0), axis=(1, 2))
    if np.isfinite(snr):
        noise_sigma = peak / snr
        data = signal + rng.standard_normal(signal.shape) * noise_sigma[:, None, None]
    else:
        noise_sigma = peak * 1e-3  # a small, finite ERR even without noise
        data = signal
    data[:, ~inside] = np.nan
    err = np.broadcast_to(noise_sigma[:, None, None], data.shape).astype(np.float32)
    model.data = data.astype(np.float32)
    model.err = np.where(inside, err, np.float32(np.nan)).astype(np.float32)
