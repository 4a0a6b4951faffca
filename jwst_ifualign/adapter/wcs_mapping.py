"""Pixel mappings between cubes through their own WCS (``meta.wcs``), and pixel-to-sky offsets.

Only the celestial part of an s3d WCS is used for the mapping; cube_build's WCS is separable, so
the mapping is the same for every wavelength plane. :func:`mapping_and_wavelength_check` checks
that for a given pair of cubes.

:func:`celestial_wcs` gives the 2-D celestial FITS WCS of a cube (from ``meta.wcsinfo``, which
cube_build's ``meta.wcs`` is built from), for reproject: :class:`Reprojection` puts a member's
2-D images on the reference grid with ``reproject.reproject_interp``.
"""

from __future__ import annotations

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.wcs import WCS

from ..algorithms.measure import translation_of

__all__ = [
    "celestial_wcs",
    "Reprojection",
    "reference_to_member_pixels",
    "mapping_and_wavelength_check",
    "translation_and_wavelength_check",
    "member_extent",
    "pixel_offsets_to_sky",
    "grid_offsets_to_sky",
    "pixel_errors_to_sky",
]

#: Largest change (pixels) of the mapping across wavelength still treated as constant.
WAVELENGTH_TOLERANCE = 1e-3


def celestial_wcs(model, *, shift=(0.0, 0.0)):
    """The 2-D celestial WCS (RA---TAN, DEC--TAN) of an s3d cube, from its ``meta.wcsinfo``.

    cube_build builds ``meta.wcs`` from the same keywords (``create_fitswcs``); a test checks
    that the two agree on the sky position of every spaxel.

    Parameters
    ----------
    model : IFUCubeModel
    shift : tuple of float
        ``(dx, dy)`` pixels: the WCS of the grid whose pixel ``p`` is the model's ``p + shift``.

    Returns
    -------
    astropy.wcs.WCS
        Pixel (x, y), 0-based in astropy's pixel API, to (RA, Dec) in degrees.
    """
    info = model.meta.wcsinfo
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = [info.ctype1, info.ctype2]
    wcs.wcs.cunit = [info.cunit1 or "deg", info.cunit2 or "deg"]
    wcs.wcs.crval = [info.crval1, info.crval2]
    wcs.wcs.crpix = [info.crpix1 - shift[0], info.crpix2 - shift[1]]
    wcs.wcs.cdelt = [info.cdelt1, info.cdelt2]
    wcs.wcs.pc = [
        [_keyword(info, "pc1_1", 1.0), _keyword(info, "pc1_2", 0.0)],
        [_keyword(info, "pc2_1", 0.0), _keyword(info, "pc2_2", 1.0)],
    ]
    wcs.wcs.set()
    ny, nx = model.data.shape[1:]
    wcs.array_shape = (ny, nx)
    return wcs


def _keyword(info, name, default):
    value = getattr(info, name, None)
    return default if value is None else float(value)


class Reprojection:
    """Puts a member's 2-D images (white light and its error) on the reference grid.

    ``reproject.reproject_interp`` with ``order="bilinear"`` between the two cubes' celestial
    WCS (:func:`celestial_wcs`), for a member whose grid is not a translation of the
    reference's (another orientation or scale); NaN where the member has no data.

    Parameters
    ----------
    reference, member : IFUCubeModel
    """

    def __init__(self, reference, member):
        self.reference_wcs = celestial_wcs(reference)
        self.member_wcs = celestial_wcs(member)
        self.shape_out = reference.data.shape[1:]

    def __call__(self, image):
        """``image`` (ny_member, nx_member) on the reference grid, shape (ny_ref, nx_ref)."""
        # Imported here: reproject takes 0.35 s to import, and most associations (cube_build
        # skyalign cubes, translations of each other) never need it.
        from reproject import reproject_interp

        out = reproject_interp(
            (np.asarray(image, float), self.member_wcs),
            self.reference_wcs,
            shape_out=self.shape_out,
            order="bilinear",
            return_footprint=False,
        )
        return np.asarray(out, float)


def _map(reference, member, x, y, plane):
    ra, dec, lam = reference.meta.wcs(x, y, np.full(np.shape(x), float(plane)), with_bounding_box=False)
    xm, ym, _ = member.meta.wcs.invert(ra, dec, lam, with_bounding_box=False)
    return np.asarray(xm, float), np.asarray(ym, float)


def reference_to_member_pixels(
    reference, member, *, shift=(0.0, 0.0), plane=None, origin=(0, 0), shape=None
):
    """Member pixel coordinates of every output spaxel, through both cubes' WCS.

    Parameters
    ----------
    reference, member : IFUCubeModel
        Cubes with ``meta.wcs`` (detector x, y, z -> RA, Dec, wavelength).
    shift : tuple of float
        ``(dx, dy)`` in reference pixels: the mapping is evaluated at ``(x + dx, y + dy)``, which
        folds a measured :class:`~jwst_ifualign.algorithms.offset.Offset` into the member's WCS.
    plane : int, optional
        Wavelength plane at which to evaluate; the middle plane by default.
    origin : tuple of int
        Reference pixel ``(x0, y0)`` of output pixel (0, 0); (0, 0) is the reference grid
        itself, negative values extend it (``output_grid="union"``).
    shape : tuple of int, optional
        ``(ny, nx)`` of the output grid; the reference's by default.

    Returns
    -------
    xm, ym : ndarray, shape (ny, nx)
        Member column and row (0-based, pixel centres at integers) of each output spaxel.
    """
    nwave = reference.data.shape[0]
    ny, nx = reference.data.shape[1:] if shape is None else shape
    plane = nwave // 2 if plane is None else plane
    y, x = np.mgrid[:ny, :nx].astype(float)
    return _map(reference, member, x + origin[0] + shift[0], y + origin[1] + shift[1], plane)


def member_extent(reference, member, covered):
    """Bounding box of a member's covered spaxels in reference pixel coordinates.

    Parameters
    ----------
    reference, member : IFUCubeModel
    covered : ndarray of bool, shape (ny_member, nx_member)
        Spaxels of the member with data.

    Returns
    -------
    xmin, xmax, ymin, ymax : float
        Extremes of the covered spaxel centres, reference pixels (NaN if none is covered).
    """
    ym, xm = np.nonzero(covered)
    if xm.size == 0:
        return (np.nan,) * 4
    plane = float(member.data.shape[0] // 2)
    ra, dec, lam = member.meta.wcs(
        xm.astype(float), ym.astype(float), np.full(xm.size, plane), with_bounding_box=False
    )
    xr, yr, _ = reference.meta.wcs.invert(ra, dec, lam, with_bounding_box=False)
    return float(np.min(xr)), float(np.max(xr)), float(np.min(yr)), float(np.max(yr))


def mapping_and_wavelength_check(reference, member):
    """The mapping at the middle plane, and whether it changes across wavelength, in one call.

    Returns
    -------
    xm, ym : ndarray, shape (ny_ref, nx_ref)
        As :func:`reference_to_member_pixels` at the middle plane.
    varies : bool
        True if the mapping at the corners and centre of the grid differs between the first and
        last planes by more than ``WAVELENGTH_TOLERANCE`` pixels.
    """

    def member_inverse(ra, dec, lam):
        return member.meta.wcs.invert(ra, dec, lam, with_bounding_box=False)

    return _grid_and_check(reference, member_inverse)


def _grid_and_check(cube, inverse):
    """Map every spaxel of ``cube`` (middle plane) through ``cube.meta.wcs`` and ``inverse``.

    Returns the mapped (x, y), shape (ny, nx), and whether the mapping of the corners and centre
    changes between the first and last planes by more than ``WAVELENGTH_TOLERANCE`` pixels.
    """
    nwave, ny, nx = cube.data.shape
    y, x = np.mgrid[:ny, :nx].astype(float)
    cx = np.array([0.0, nx - 1.0, 0.0, nx - 1.0, (nx - 1) / 2])
    cy = np.array([0.0, 0.0, ny - 1.0, ny - 1.0, (ny - 1) / 2])
    planes = np.concatenate([np.full(x.size, nwave // 2), np.zeros(5), np.full(5, nwave - 1)])
    ra, dec, lam = cube.meta.wcs(
        np.concatenate([x.ravel(), cx, cx]),
        np.concatenate([y.ravel(), cy, cy]),
        planes.astype(float),
        with_bounding_box=False,
    )
    xo, yo, _ = inverse(ra, dec, lam)
    xo, yo = np.asarray(xo, float), np.asarray(yo, float)
    n = x.size
    change = np.concatenate([xo[n + 5 :] - xo[n : n + 5], yo[n + 5 :] - yo[n : n + 5]])
    varies = nwave > 1 and bool(np.max(np.abs(change)) > WAVELENGTH_TOLERANCE)
    return xo[:n].reshape(ny, nx), yo[:n].reshape(ny, nx), varies


def translation_and_wavelength_check(reference, member, reference_inverse):
    """Whether a member's grid is a translation of the reference's, cheaply; and its wavelength check.

    Maps the member's own spaxels into the reference (the member's forward WCS and the
    reference's inverse, built once for all members: building a gwcs inverse costs about as much
    as evaluating it), instead of the reference's spaxels into the member.

    Parameters
    ----------
    reference, member : IFUCubeModel
    reference_inverse : callable
        ``reference.meta.wcs.backward_transform``: (RA, Dec, wavelength) -> reference (x, y, z).

    Returns
    -------
    translation : tuple of float or None
        ``(tx, ty)`` with member pixel = reference pixel + (tx, ty) everywhere (to
        ``TRANSLATION_TOLERANCE``, middle plane); None when the mapping is not a translation.
    varies : bool
        As for :func:`mapping_and_wavelength_check`, for the member's corners and centre.
    """
    xr, yr, varies = _grid_and_check(member, reference_inverse)
    # reference pixel = member pixel - (tx, ty)
    inverse = translation_of(xr, yr)
    return (None if inverse is None else (-inverse[0], -inverse[1])), varies


def pixel_offsets_to_sky(reference, offsets):
    """Convert pixel offsets into cube_build's offset_file corrections.

    Parameters
    ----------
    reference : IFUCubeModel
        The reference cube (its WCS defines the pixel grid of ``offsets``).
    offsets : sequence of Offset
        Offsets of members in reference pixels (package convention).

    Returns
    -------
    list of (ra_offset, dec_offset, ra_err, dec_err)
        Arcsec on the sky (RA offset times cos Dec), one tuple per offset: the correction that,
        ADDED to the member's coordinates (``SkyCoord.spherical_offsets_by``, as cube_build
        applies it), lines the member up with the reference. The member shows a reference
        feature at pixel ``p + (dx, dy)``, i.e. at the sky position the reference grid gives
        ``p + (dx, dy)``; the correction moves that position back onto the reference's ``p``.
    """
    nwave, ny, nx = reference.data.shape
    zc = float(nwave // 2)

    def pixel_to_sky(x, y):
        ra, dec, _ = reference.meta.wcs(x, y, np.full(x.size, zc), with_bounding_box=False)
        return ra, dec

    return grid_offsets_to_sky(pixel_to_sky, ((nx - 1) / 2.0, (ny - 1) / 2.0), offsets)


def grid_offsets_to_sky(pixel_to_sky, centre, offsets):
    """:func:`pixel_offsets_to_sky` on any grid: corrections at the grid pixel ``centre``.

    Parameters
    ----------
    pixel_to_sky : callable
        ``(x, y) -> (ra, dec)`` in degrees for arrays of pixel coordinates (0-based).
    centre : tuple of float
        ``(x, y)`` where the corrections and the Jacobian are evaluated.
    offsets : sequence of Offset
        Offsets on that grid (package convention).

    Returns
    -------
    list of (ra_offset, dec_offset, ra_err, dec_err)
        Arcsec, as :func:`pixel_offsets_to_sky`.
    """
    xc, yc = centre
    dx = np.array([o.dx for o in offsets], float)
    dy = np.array([o.dy for o in offsets], float)
    xs = np.concatenate([[xc, xc + 1.0, xc], xc + dx])
    ys = np.concatenate([[yc, yc, yc + 1.0], yc + dy])
    ra, dec = pixel_to_sky(xs, ys)
    points = SkyCoord(ra * u.deg, dec * u.deg)
    centre_sky = points[0]
    dra, ddec = points[3:].spherical_offsets_to(centre_sky)
    # Jacobian (arcsec per pixel) for the errors, which mix under a rotated grid.
    jx = centre_sky.spherical_offsets_to(points[1])
    jy = centre_sky.spherical_offsets_to(points[2])
    jac = np.array(
        [
            [jx[0].to_value(u.arcsec), jy[0].to_value(u.arcsec)],
            [jx[1].to_value(u.arcsec), jy[1].to_value(u.arcsec)],
        ]
    )
    return [
        (
            float(dra[k].to_value(u.arcsec)),
            float(ddec[k].to_value(u.arcsec)),
            *pixel_errors_to_sky(jac, o.dx_err, o.dy_err),
        )
        for k, o in enumerate(offsets)
    ]


def pixel_errors_to_sky(jac, ex, ey):
    """(RA, Dec) 1-sigma errors in arcsec of independent pixel errors ``(ex, ey)`` through the
    2x2 arcsec-per-pixel Jacobian ``jac`` (rows RA, Dec; columns x, y)."""
    return (
        float(np.hypot(jac[0, 0] * ex, jac[0, 1] * ey)),
        float(np.hypot(jac[1, 0] * ex, jac[1, 1] * ey)),
    )
