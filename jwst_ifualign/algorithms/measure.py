"""Measure a member's offset from white-light images, with errors from wavelength chunks.

How the member's image meets the reference grid (:class:`Placement`):

- When the celestial mapping from reference pixels to member pixels is a pure translation
  ``(tx, ty)`` (same pixel scale and orientation: every cube_build ``skyalign`` cube), the
  member's native image is moved by the integer part of the translation only, without
  interpolation, and the known fractional part ``f`` is subtracted from the measured shift:
  ``d = s - f``. Registering un-interpolated images avoids the bias of comparing a bilinearly
  smoothed image with an unsmoothed one (about 0.03 px for MIRI-like, 0.06 px for NIRSpec-like
  PSFs).
- Otherwise (members at other position angles or scales) the member image is resampled onto the
  reference grid (bilinear) and the shift measured there.

Errors: the full range is measured once; each of ``n_chunks`` contiguous wavelength chunks is
measured too, starting from the full-range offset. The empirical error is the scatter of the
chunk offsets divided by ``sqrt(n_chunks)`` (each chunk holds 1/n_chunks of the signal), scaled by the ratio of Student's
t and Gaussian 2-sigma quantiles for ``n_chunks - 1`` degrees of freedom, because a scatter from a
few chunks is itself uncertain (x1.42 for 5 chunks). When the chunks disagree beyond their noise
errors (reduced chi-square above ``CHUNK_CHI2_WARN``) the scatter is systematic and is not
divided by ``sqrt(n_chunks)``. The chunks cannot see a pattern that is the same at every
wavelength (striping, holes, an undersampled PSF): the full-range measurement also gives a
spatial error from the residual between the aligned images
(:func:`~jwst_ifualign.algorithms.registration.measure_offset_details`). The reported error is
the largest of the method's formal (noise) error, the chunk error, the spatial error and the
quantisation step over sqrt(12) (:func:`~jwst_ifualign.algorithms.registration.resolution`);
``MemberMeasurement.error_term`` names the one that wins. When the spatial error shows a static
pattern, the member is measured again with both images band-pass filtered
(:func:`measure_placed`), which removes most of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from scipy import special

from .offset import Offset
from .registration import RegistrationError, measure_offset_details, resolution
from .resample import BilinearFootprint, resample_image

__all__ = [
    "Placement",
    "MemberMeasurement",
    "translation_of",
    "place_image",
    "place_images",
    "measure_placed",
    "CHUNK_CHI2_WARN",
    "ERROR_TERMS",
    "SYSTEMATIC_WARN",
]

#: Names of the terms of a reported error (``MemberMeasurement.error_term``): the method's own
#: noise error, the wavelength-chunk scatter, the spatial (residual-based) error, and the
#: method's quantisation step.
ERROR_TERMS = ("noise", "chunks", "spatial", "resolution")

#: Fewest effective regions the spatial term's Student-t scaling assumes. A compact source's
#: core can make the effective number close to one, whose t factor (x6 for 2 regions) gave
#: errors of 0.1-0.5 px for offsets good to 0.03 px on high-S/N NIRSpec-like cubes; from 4
#: regions the factor is at most x1.59, and every artefact row of benchmarks/accuracy.py stays
#: within 2 sigma in >= 94% of measurements (chi2 and dft, S/N 20, MIRI- and NIRSpec-like).
SPATIAL_MIN_REGIONS = 4

#: Two-sided probability of +-2 sigma for a Gaussian (0.9772 one-sided).
_COVERAGE_2SIGMA = float(special.ndtr(2.0))

#: Reduced chi-square of the chunk offsets above which they are taken to disagree (p ~ 1e-3 for
#: 4 degrees of freedom): the adapter warns, and the chunk scatter is not averaged down.
CHUNK_CHI2_WARN = 4.6

#: Factor by which the systematic part of the spatial error must exceed the noise error for the
#: adapter to warn. The spatial error is estimated from few independent regions (the source's
#: core), so with noise alone it scatters about the noise error; 1 would warn on half the clean
#: MIRI-like members, 2 on none of those simulated, while striping gives 9-40.
SYSTEMATIC_WARN = 2.0

#: Smallest systematic error term (pixels, either axis) for the smoothed measurement of
#: :func:`measure_placed`. Below it a static pattern is too small to matter and smoothing's
#: loss of information dominates: on clean MIRI-like cubes at S/N 100, whose reprojected
#: members show a static residual of 0.001-0.003 px (interpolation blur), filtering them too
#: moved benchmarks/accuracy.py's chi2 row (median / p90) from 0.0006 / 0.0015 px to
#: 0.0007 / 0.0017 px; striping and undersampled PSFs give 0.01-0.2 px.
SMOOTHING_MIN_SYSTEMATIC = 0.005

#: Fewest pixels with data in both full-range images for the smoothed measurement of
#: :func:`measure_placed`. On a smaller common area the smooth window itself holds most of the
#: spatial frequencies that the filter keeps (5 x 5-spaxel cubes: 0.11-0.21 px off, against
#: 0.002-0.06 px unfiltered).
SMOOTHING_MIN_PIXELS = 100

#: Largest deviation (pixels) of a mapping from a pure translation for the native-grid path.
TRANSLATION_TOLERANCE = 0.005


class Placement(NamedTuple):
    """How a member's pixels relate to the reference grid.

    Attributes
    ----------
    footprint : BilinearFootprint, callable or None
        Bilinear sampling of the member at every reference pixel (from its own WCS), or a
        function taking a member image (ny_m, nx_m) to the reference grid (the adapter passes
        reproject's); None for a translation, which needs none.
    translation : tuple of float or None
        ``(tx, ty)`` when member pixel = reference pixel + (tx, ty) everywhere to within
        ``TRANSLATION_TOLERANCE``; None otherwise.
    member_shape : tuple of int
        ``(ny, nx)`` of the member.
    """

    footprint: BilinearFootprint
    translation: tuple | None
    member_shape: tuple


def translation_of(xmap, ymap, *, tolerance=TRANSLATION_TOLERANCE):
    """Return ``(tx, ty)`` if ``(xmap, ymap) = (x + tx, y + ty)`` to ``tolerance``, else None.

    Parameters
    ----------
    xmap, ymap : ndarray, shape (ny, nx)
        Member pixel coordinates of every reference pixel (NaN allowed).
    """
    yy, xx = np.indices(np.shape(xmap))
    rx = np.asarray(xmap) - xx
    ry = np.asarray(ymap) - yy
    ok = np.isfinite(rx) & np.isfinite(ry)
    if not ok.any():
        return None
    tx, ty = float(np.median(rx[ok])), float(np.median(ry[ok]))
    if max(np.max(np.abs(rx[ok] - tx)), np.max(np.abs(ry[ok] - ty))) > tolerance:
        return None
    return tx, ty


def place_image(image, image_err, placement, ref_shape):
    """Put a member's 2-D image on the reference grid for registration.

    Returns
    -------
    placed, placed_err : ndarray, shape ref_shape
        The member image (NaN where no data) on the reference grid.
    residual : tuple of float
        ``(fx, fy)``: the WCS reprojection of the member at reference pixel ``p`` equals the
        placed image at ``p + (fx, fy)``, so a feature found at ``p + s`` in the placed image is
        at ``p + s - (fx, fy)`` in the reprojection. ``(0, 0)`` when resampled.
    """
    if placement.translation is None:
        if callable(placement.footprint):  # the adapter's reprojection onto the reference grid
            return placement.footprint(image), placement.footprint(image_err), (0.0, 0.0)
        placed = resample_image(image, placement.footprint)
        placed_err = resample_image(image_err, placement.footprint)
        return placed, placed_err, (0.0, 0.0)
    tx, ty = placement.translation
    ix, iy = int(np.rint(tx)), int(np.rint(ty))
    placed = _integer_shift(image, ix, iy, ref_shape)
    placed_err = _integer_shift(image_err, ix, iy, ref_shape)
    return placed, placed_err, (tx - ix, ty - iy)


def _integer_shift(image, ix, iy, out_shape):
    """out[y, x] = image[y + iy, x + ix], NaN where that falls outside ``image``."""
    out = np.full(out_shape, np.nan)
    ny, nx = image.shape
    ys = slice(max(0, -iy), min(out_shape[0], ny - iy))
    xs = slice(max(0, -ix), min(out_shape[1], nx - ix))
    if ys.start < ys.stop and xs.start < xs.stop:
        out[ys, xs] = image[ys.start + iy : ys.stop + iy, xs.start + ix : xs.stop + ix]
    return out


@dataclass
class MemberMeasurement:
    """Offset of one image set against another (a member against the reference, or a pair).

    Attributes
    ----------
    offset : Offset
        Final offset; errors are the larger of formal, empirical and the method's resolution.
    formal : Offset
        Full-range measurement with the method's own error (NaN if it has none).
    empirical_err : tuple of float
        ``(ex, ey)`` from the chunk scatter, NaN with fewer than 2 chunks.
    chunks : list of Offset
        Offset of each wavelength chunk (NaN when a chunk could not be measured).
    chunk_chi2 : float
        Reduced chi-square of the chunk offsets about their mean, using the chunks' formal
        errors (the larger of the two axes); NaN when the method gives no errors. Much larger
        than one means the offset changes with wavelength beyond the noise.
    native_grid : bool
        True when measured on the native grid (translation path).
    spatial_err : tuple of float
        ``(ex, ey)``: the spatial error of the full-range measurement, from the residual between
        the aligned images (see
        :func:`~jwst_ifualign.algorithms.registration.measure_offset_details`); it sees static
        patterns that the chunks, whose errors average down with wavelength, cannot. Scaled by
        Student's t for the effective number of regions behind it (``spatial_raw_err``
        unscaled: its systematic part decides the warning).
    error_term : str
        Which of ``ERROR_TERMS`` sets the reported error (on the axis with the larger error).
    smoothing : float
        Gaussian sigma (px) of the band-pass filter both images had for this measurement; 0 for
        none.
    unsmoothed : MemberMeasurement or None
        When this measurement is the smoothed one (:func:`measure_placed`), the measurement of
        the same images without smoothing, whose static pattern made it necessary.
    """

    offset: Offset
    formal: Offset
    empirical_err: tuple
    chunks: list = field(default_factory=list)
    chunk_chi2: float = np.nan
    native_grid: bool = True
    spatial_err: tuple = (np.nan, np.nan)
    error_term: str = "noise"
    spatial_raw_err: tuple = (np.nan, np.nan)
    smoothing: float = 0.0
    unsmoothed: MemberMeasurement | None = None

    @property
    def systematic_err(self):
        """``(ex, ey)``: the part of the (unscaled) spatial error beyond the noise error,
        ``sqrt(spatial**2 - noise**2)`` (0 where the spatial error is the smaller)."""
        return tuple(
            float(np.sqrt(max(sp**2 - fo**2, 0.0))) if np.isfinite(sp) and np.isfinite(fo) else 0.0
            for sp, fo in zip(
                self.spatial_raw_err, (self.formal.dx_err, self.formal.dy_err), strict=True
            )
        )

    @property
    def systematic_dominates(self):
        """True when the systematic term exceeds ``SYSTEMATIC_WARN`` times the noise term on
        either axis."""
        return any(
            s > SYSTEMATIC_WARN * f
            for s, f in zip(
                self.systematic_err, (self.formal.dx_err, self.formal.dy_err), strict=True
            )
        )


def _measure_one(
    ref_img, ref_err, placed, placed_err, residual, method, upsample_factor, initial, spatial,
    smoothing,
):
    """(Offset, spatial error) of one image pair, the known fractional residual removed."""
    if initial is not None:
        initial = (initial.dx + residual[0], initial.dy + residual[1])
    reg = measure_offset_details(
        ref_img,
        placed,
        method=method,
        reference_err=ref_err,
        image_err=placed_err,
        upsample_factor=upsample_factor,
        initial=initial,
        spatial_errors=spatial,
        smoothing=smoothing,
    )
    s = reg.offset
    offset = Offset(s.dx - residual[0], s.dy - residual[1], s.dx_err, s.dy_err)
    return offset, (reg.spatial_err, reg.spatial_clusters)


def _t_scale(n):
    """Ratio of Student's t (``n - 1`` degrees of freedom) and Gaussian 2-sigma quantiles: the
    factor by which a scatter from ``n`` values must grow for +-2 of it to cover what a known
    sigma would (x1.42 for 5). 1 for ``n`` infinite or not finite; at most that of n = 2."""
    if not np.isfinite(n):
        return 1.0
    dof = max(float(n) - 1.0, 1.0)
    return float(special.stdtrit(dof, _COVERAGE_2SIGMA) / special.ndtri(_COVERAGE_2SIGMA))


def _chunk_chi2(chunks):
    good = [c for c in chunks if np.isfinite(c.dx) and c.dx_err > 0 and c.dy_err > 0]
    if len(good) < 2:
        return np.nan
    worst = 0.0
    for values, errs in (
        (np.array([c.dx for c in good]), np.array([c.dx_err for c in good])),
        (np.array([c.dy for c in good]), np.array([c.dy_err for c in good])),
    ):
        w = 1.0 / errs**2
        mean = np.sum(w * values) / np.sum(w)
        worst = max(worst, float(np.sum(w * (values - mean) ** 2) / (len(good) - 1)))
    return worst


def measure_placed(
    reference_images,
    placed_images,
    residual,
    *,
    method,
    upsample_factor,
    native_grid=True,
    initial=None,
    smoothing=0.0,
):
    """Measure an offset from image sets already on one grid.

    When the residual of the full-range measurement shows a static pattern (its systematic
    term exceeds ``SYSTEMATIC_WARN`` times the noise term and ``SMOOTHING_MIN_SYSTEMATIC``:
    striping, an undersampled PSF) and ``smoothing`` is positive, the image sets are measured
    again with both images band-pass filtered (a Gaussian of ``smoothing`` px minus a broader
    one, see :mod:`~jwst_ifualign.algorithms.registration`), which removes the spatial
    frequencies where such patterns live, and that measurement is returned (its
    ``unsmoothed`` attribute holds the first). ``centroid`` is never smoothed, nor are images
    with fewer than ``SMOOTHING_MIN_PIXELS`` pixels of data in common.

    Parameters
    ----------
    reference_images, placed_images : list of (ndarray, ndarray)
        ``(image, err)`` pairs of shape (ny, nx) on one grid; element 0 is the full wavelength
        range, the rest are the chunks in wavelength order.
    residual : tuple of float
        Known fractional offset to subtract from what is measured (see :func:`place_image`;
        for a pair of placed members i and j, ``f_j - f_i``).
    method, upsample_factor
        Registration method and its upsampling (see
        :func:`~jwst_ifualign.algorithms.registration.measure_offset`).
    native_grid : bool
        Recorded in the result.
    initial : Offset, optional
        Starting estimate of the full-range offset (same convention as the result).
    smoothing : float
        Gaussian sigma (px) of the band-pass filter for images with a static pattern; 0 never
        smooths.

    Returns
    -------
    MemberMeasurement

    Raises
    ------
    RegistrationError
        If the full-range images cannot be registered.
    """
    (rimg, rerr), (pimg, perr) = reference_images[0], placed_images[0]
    full = _measure_one(
        rimg, rerr, pimg, perr, residual, method, upsample_factor, initial, True, 0.0
    )
    args = (residual, method, upsample_factor, native_grid)
    # The full range alone decides; the chunks are measured once, with the filter chosen.
    plain = _measure_images(reference_images[:1], placed_images[:1], *args, full, 0.0)
    used = 0.0
    if (
        smoothing > 0
        and method != "centroid"
        and plain.systematic_dominates
        and max(plain.systematic_err) > SMOOTHING_MIN_SYSTEMATIC
        and np.count_nonzero(np.isfinite(rimg) & np.isfinite(pimg)) >= SMOOTHING_MIN_PIXELS
    ):
        try:
            full = _measure_one(
                rimg, rerr, pimg, perr, residual, method, upsample_factor, plain.formal, True,
                smoothing,
            )
            used = smoothing
        except RegistrationError:
            pass
    measurement = _measure_images(reference_images, placed_images, *args, full, used)
    if used:
        measurement.unsmoothed = plain
    return measurement


def _measure_images(
    reference_images, placed_images, residual, method, upsample_factor, native_grid, full,
    smoothing,
):
    """The measurement of :func:`measure_placed`: ``full``, the ``(offset, spatial)`` of the
    full range from :func:`_measure_one`, and the chunks measured with ``smoothing``."""
    formal, (spatial_raw, clusters) = full
    # A variance from few regions is itself uncertain: scale it like the chunk scatter, by
    # Student's t for the effective number of regions minus one (at least SPATIAL_MIN_REGIONS).
    spatial = tuple(
        float(v * _t_scale(max(n, SPATIAL_MIN_REGIONS)))
        for v, n in zip(spatial_raw, clusters, strict=True)
    )
    chunks = []
    for (rimg, rerr), (pimg, perr) in zip(reference_images[1:], placed_images[1:], strict=True):
        # Chunks start from the full-range offset and iterate too: measured once with the
        # window fixed there, the real chunk-to-chunk differences of an undersampled PSF are
        # pulled toward it (NIRSpec-like coverage within 2 sigma fell from 0.93 to 0.80).
        try:
            off, _ = _measure_one(
                rimg, rerr, pimg, perr, residual, method, upsample_factor, formal, False,
                smoothing,
            )
        except RegistrationError:
            off = Offset(np.nan, np.nan)
        chunks.append(off)
    good = [c for c in chunks if np.isfinite(c.dx)]
    chunk_chi2 = _chunk_chi2(chunks)
    if len(good) >= 2:
        arr = np.array([(c.dx, c.dy) for c in good])
        # A scatter from few chunks is itself uncertain: scale it so that +-2 sigma covers what
        # a Gaussian 2 sigma would (Student t with n - 1 degrees of freedom; x1.42 for 5 chunks).
        scatter = arr.std(axis=0, ddof=1) * _t_scale(len(good))
        if not chunk_chi2 > CHUNK_CHI2_WARN:
            # Chunks agree within their noise: their scatter averages down over the chunks.
            # Otherwise it is systematic (an offset that changes with wavelength, an
            # undersampled PSF) and does not: the scatter itself is the error.
            scatter = scatter / np.sqrt(len(good))
        empirical = tuple(float(v) for v in scatter)
    else:
        empirical = (np.nan, np.nan)
    floor = resolution(method, upsample_factor)
    # Terms in the order of ERROR_TERMS; NaN terms (not available) never win.
    terms = np.array(
        [
            [formal.dx_err, empirical[0], spatial[0], floor],
            [formal.dy_err, empirical[1], spatial[1], floor],
        ]
    )
    terms = np.where(np.isfinite(terms), terms, -np.inf)
    errors = terms.max(axis=1)
    axis = int(np.argmax(errors))
    final = Offset(formal.dx, formal.dy, float(errors[0]), float(errors[1]))
    return MemberMeasurement(
        offset=final,
        formal=formal,
        empirical_err=empirical,
        chunks=chunks,
        chunk_chi2=chunk_chi2,
        native_grid=native_grid,
        spatial_err=tuple(float(v) for v in spatial),
        spatial_raw_err=tuple(float(v) for v in spatial_raw),
        error_term=ERROR_TERMS[int(np.argmax(terms[axis]))],
        smoothing=float(smoothing),
    )


def place_images(member_images, placement, ref_shape):
    """Place a member's image set on the reference grid; returns (placed list, residual)."""
    placed, residual = [], (0.0, 0.0)
    for img, err in member_images:
        p, pe, residual = place_image(img, err, placement, ref_shape)
        placed.append((p, pe))
    return placed, residual
