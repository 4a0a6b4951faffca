"""Measure every member's offset against the reference: the adapter between models and
:mod:`jwst_ifualign.algorithms` for the measurement.

White-light images are collapsed from each member's cube (in blocks of planes), placed on the
reference grid, registered against the reference (and, with ``solution="pairs"``, a member that
does not overlap the reference against the members it overlaps: the overlap graph), checked by
the guards (``min_snr``, ``max_shift``, chunk consistency) and converted into
cube_build's sky offsets.
"""

from __future__ import annotations

import logging

import numpy as np

from ..algorithms.collapse import image_from_sums
from ..algorithms.fused import usable_sums
from ..algorithms.measure import (
    CHUNK_CHI2_WARN,
    Placement,
    measure_placed,
    place_images,
)
from ..algorithms.offset import Offset
from ..algorithms.registration import RegistrationError
from ..algorithms.resample import bilinear_footprint
from ..algorithms.solve import PairMeasurement, connected_to, solve_pairs
from ..exceptions import InputError
from .results import (
    DO_NOT_USE,
    FLAG_LOW_SNR,
    FLAG_MAX_SHIFT,
    FLAG_NO_DATA,
    FLAG_NOT_CONNECTED,
    FLAG_NOT_MEASURED,
    FLAG_OK,
    FLAG_REFERENCE,
    MemberResult,
    PairFit,
)
from .wcs_mapping import (
    Reprojection,
    mapping_and_wavelength_check,
    member_extent,
    pixel_offsets_to_sky,
    translation_and_wavelength_check,
)

__all__ = ["placement", "measure_members", "peak_snr"]

log = logging.getLogger(__name__)

def _white_light(model, planes, chunks, block):
    """Full-range and chunk white-light images of a member on its native grid.

    Reads the cube in blocks of ``block`` planes. Returns a list of (image, err) pairs: the full
    range first, then each chunk (only the full range when there is a single chunk).
    """
    sums = []
    for c0, c1 in chunks:
        parts = [
            usable_sums(
                model.data[z0:z1], model.err[z0:z1], model.dq[z0:z1], do_not_use=DO_NOT_USE
            )
            for z0, z1 in ((z, min(c1, z + block)) for z in range(c0, c1, block))
        ]
        sums.append((*(sum(p[k] for p in parts) for k in range(3)), c1 - c0))
    full = (*(sum(s[k] for s in sums) for k in range(3)), planes[1] - planes[0])
    wanted = [full, *sums] if len(sums) > 1 else [full]
    return [image_from_sums(d, e2, n, nplanes) for d, e2, n, nplanes in wanted]


def placement(reference, member, reference_inverse=None):
    """Placement of a member on the reference grid, and whether its mapping varies with wavelength.

    A member whose grid is a translation of the reference's is measured on its native grid
    (shifted by whole pixels, the fraction known). Any other member's white-light images are
    put on the reference grid by reproject
    (:class:`~jwst_ifualign.adapter.wcs_mapping.Reprojection`: ``reproject_interp``, bilinear).

    ``reference_inverse``: ``reference.meta.wcs.backward_transform``, built once by the caller
    for all members (built here when not given).
    """
    shape = member.data.shape[1:]
    if member is reference:
        return Placement(None, (0.0, 0.0), shape), False
    if reference_inverse is None:
        reference_inverse = reference.meta.wcs.backward_transform
    translation, varies = translation_and_wavelength_check(reference, member, reference_inverse)
    if translation is not None:
        # A translation is applied on the native grid: no footprint needed.
        return Placement(None, translation, shape), varies
    _, _, varies = mapping_and_wavelength_check(reference, member)
    return Placement(Reprojection(reference, member), None, shape), varies


def peak_snr(image, err):
    """Peak signal-to-noise of a collapsed image: max of (image - median) / err over valid pixels."""
    ok = np.isfinite(image) & np.isfinite(err) & (err > 0)
    if ok.sum() < 9:
        return 0.0
    return float(np.max((image[ok] - np.median(image[ok])) / err[ok]))


def _direct(ref_images, placed, residual, placement, name, options):
    """Measure one member against the reference; returns (MemberMeasurement or None, flag)."""
    if not np.isfinite(placed[0][0]).any():
        log.warning(
            "Member %s has no valid data where it meets the reference (all NaN or DO_NOT_USE, "
            "or no overlap); it is skipped and flagged.",
            name,
        )
        return None, FLAG_NO_DATA
    snr = peak_snr(*placed[0])
    if snr < options.min_snr:
        log.warning(
            "Member %s: peak S/N %.1f of its collapsed image is below min_snr=%g; it is "
            "combined with its WCS alone.",
            name,
            snr,
            options.min_snr,
        )
        return None, FLAG_LOW_SNR
    try:
        measurement = measure_placed(
            ref_images,
            placed,
            residual,
            method=options.method,
            upsample_factor=options.upsample_factor,
            native_grid=placement.translation is not None,
            smoothing=options.smoothing,
        )
    except RegistrationError as exc:
        log.warning(
            "Member %s: offset not measured (%s); it is combined with its WCS alone.", name, exc
        )
        return None, FLAG_NOT_MEASURED
    return measurement, FLAG_OK


def _rejected_by_max_shift(name, off, max_shift):
    if np.hypot(off.dx, off.dy) <= max_shift:
        return False
    log.warning(
        "Member %s: measured shift (%.3f, %.3f) px exceeds max_shift=%g px; it is combined "
        "with its WCS alone.",
        name,
        off.dx,
        off.dy,
        max_shift,
    )
    return True


def _warn_chunks(name, measurement, chunks, wavelengths):
    if measurement is None or not measurement.chunk_chi2 > CHUNK_CHI2_WARN:
        return
    ranges = ", ".join(
        f"{wavelengths[a]:.3f}-{wavelengths[b - 1]:.3f} um: ({c.dx:+.3f}, {c.dy:+.3f})"
        for (a, b), c in zip(chunks, measurement.chunks, strict=True)
    )
    log.warning(
        "Member %s: offsets of the wavelength chunks disagree beyond their errors (reduced "
        "chi2 %.1f): %s. The WCS may be wrong, the offset may change with wavelength, or the "
        "PSF may be undersampled (NIRSpec IFU: consider method=centroid for a compact source).",
        name,
        measurement.chunk_chi2,
        ranges,
    )


def _warn_systematic(name, measurement):
    """Warn when the systematic (static-pattern) term of a member's error exceeds twice its
    noise term, and say whether the smoothed measurement replaced it."""
    if measurement is None:
        return
    plain = measurement.unsmoothed or measurement
    if not plain.systematic_dominates:
        return
    f = plain.formal
    sx, sy = plain.systematic_err
    if measurement.unsmoothed is None:
        outcome = "The reported error (%.4f, %.4f) px includes it (error_term=%s)." % (
            measurement.offset.dx_err,
            measurement.offset.dy_err,
            measurement.error_term,
        )
    else:
        outcome = (
            "It was measured again with both white-light images band-pass filtered (Gaussian "
            "sigma %g spaxels, parameter smoothing), which suppresses such patterns: "
            "offset (%.4f, %.4f) +- (%.4f, %.4f) px (error_term=%s), against (%.4f, %.4f) +- "
            "(%.4f, %.4f) px unsmoothed."
            % (
                measurement.smoothing,
                measurement.offset.dx,
                measurement.offset.dy,
                measurement.offset.dx_err,
                measurement.offset.dy_err,
                measurement.error_term,
                plain.offset.dx,
                plain.offset.dy,
                plain.offset.dx_err,
                plain.offset.dy_err,
            )
        )
    log.warning(
        "Member %s: the systematic error term (%.4f, %.4f) px, from the residual between the "
        "aligned images, exceeds twice the noise term (%.4f, %.4f) px: a pattern that is the "
        "same at every wavelength (striping, holes, an undersampled PSF, background structure) "
        "limits this offset. %s",
        name,
        sx,
        sy,
        f.dx_err,
        f.dy_err,
        outcome,
    )


def measure_members(members, ref_index, placements, options, planes, chunks, wavelengths):
    """Measure every member's offset; returns (list of MemberResult, PairFit or None).

    Each member that overlaps the reference (at least ``MIN_OVERLAP`` of the smaller footprint)
    is measured against it. With ``solution="pairs"``, a member that does not (a mosaic tile) is
    measured against the members it overlaps (the overlap graph of the footprints) and solved
    through them by weighted least squares anchored at the reference; a member that no chain of
    overlaps links to the reference keeps its WCS and is flagged ``not_connected``. Pairs of
    members that both overlap the reference are not measured: a pair offset is then, to a small
    fraction of its error, the difference of the two direct offsets (the README gives numbers),
    so it would add no information.
    """
    ref = members.models[ref_index]
    ref_shape = ref.data.shape[1:]
    native, placed, residuals = [], [], []
    for model, placement in zip(members.models, placements, strict=True):
        images = _white_light(model, planes, chunks, options.chunk_size)
        p, f = place_images(images, placement, ref_shape)
        native.append(images)
        placed.append(p)
        residuals.append(f)

    if not np.isfinite(placed[ref_index][0][0]).any():
        raise InputError(
            f"The reference {members.names[ref_index]} has no valid data in the measured "
            "wavelength range (all NaN or DO_NOT_USE); choose another reference (parameter "
            "reference) or wavelength_range."
        )
    zero = Offset(0.0, 0.0, 0.0, 0.0)
    nan = Offset(np.nan, np.nan)
    ref_valid = np.isfinite(placed[ref_index][0][0])
    results, chained = [], []
    for i, name in enumerate(members.names):
        if i == ref_index:
            results.append(MemberResult(name, zero, zero, FLAG_REFERENCE))
            continue
        own = np.isfinite(native[i][0][0])
        overlap = _enough_overlap(ref_valid, np.isfinite(placed[i][0][0]), own, min_pixels=1)
        if own.any() and not overlap:
            # No (or too little) sky shared with the reference: a mosaic tile.
            results.append(MemberResult(name, nan, zero, FLAG_NOT_CONNECTED))
            chained.append(i)
            continue
        rel = (residuals[i][0] - residuals[ref_index][0], residuals[i][1] - residuals[ref_index][1])
        m, flag = _direct(placed[ref_index], placed[i], rel, placements[i], name, options)
        _warn_chunks(name, m, chunks, wavelengths)
        _warn_systematic(name, m)
        if m is None:
            results.append(MemberResult(name, nan, zero, flag))
        elif _rejected_by_max_shift(name, m.offset, options.max_shift):
            results.append(MemberResult(name, m.offset, zero, FLAG_MAX_SHIFT, measurement=m))
        else:
            results.append(MemberResult(name, m.offset, m.offset, FLAG_OK, measurement=m))

    fit = None
    if not chained and options.solution == "pairs" and len(results) > 2:
        log.info(
            "Every member overlaps the reference and is measured against it; no pair of other "
            "members is measured (a pair offset would equal the difference of the two direct "
            "offsets to a small fraction of its error, adding no information)."
        )
    if chained and options.solution == "pairs":
        fit = _solve_graph(members, ref_index, placements, native, chained, options, results)
    for i in chained:
        if results[i].flag == FLAG_NOT_CONNECTED:
            log.warning(
                "Member %s overlaps neither the reference nor any member linked to it%s; it is "
                "combined with its WCS alone and flagged %s.",
                members.names[i],
                "" if options.solution == "pairs" else " (solution=reference)",
                FLAG_NOT_CONNECTED,
            )

    sky = pixel_offsets_to_sky(ref, [r.applied for r in results])
    for r, (ra, dec, ra_err, dec_err) in zip(results, sky, strict=True):
        r.ra_offset, r.dec_offset, r.ra_offset_err, r.dec_offset_err = ra, dec, ra_err, dec_err
    return results, fit


#: Smallest overlap of two footprints (fraction of the smaller one) for a pair to be measured.
MIN_OVERLAP = 0.25
#: Smallest overlap in pixels for a pair to be measured.
MIN_OVERLAP_PIXELS = 40


def _enough_overlap(valid_a, valid_b, own_b=None, *, min_pixels=MIN_OVERLAP_PIXELS):
    """Whether two valid-pixel masks on one grid share enough pixels to register them.

    ``own_b``: the second member's whole footprint when ``valid_b`` is only the part of it that
    falls on this grid (the fraction is of the smaller whole footprint). ``min_pixels``: the
    pixel minimum (none for a member against the reference: a tiny cube that mostly overlaps it
    is measured, and the registration says whether it can be).
    """
    shared = int(np.count_nonzero(valid_a & valid_b))
    whole_b = own_b if own_b is not None else valid_b
    smaller = min(int(np.count_nonzero(valid_a)), int(np.count_nonzero(whole_b)))
    return shared >= min_pixels and shared >= MIN_OVERLAP * smaller


def _extent(members, ref_index, placement, images, k):
    """Bounding box (xmin, xmax, ymin, ymax) of member k's valid pixels in reference pixels."""
    valid = np.isfinite(images[0][0])
    if placement.translation is not None:
        ys, xs = np.nonzero(valid)
        tx, ty = placement.translation
        return xs.min() - tx, xs.max() - tx, ys.min() - ty, ys.max() - ty
    return member_extent(members.models[ref_index], members.models[k], valid)


def _pair_placement(members, ref_index, placements, i, j):
    """How member j's image meets member i's grid: (Placement, jacobian).

    ``jacobian`` (2x2) turns a shift measured in i's pixels into reference pixels (identity when
    i's grid is a translation of the reference's). Translations between the two are derived from
    their translations to the reference, without evaluating a WCS.
    """
    pi, pj = placements[i], placements[j]
    shape_j = members.models[j].data.shape[1:]
    if pi.translation is not None and pj.translation is not None:
        t = (pj.translation[0] - pi.translation[0], pj.translation[1] - pi.translation[1])
        return Placement(None, t, shape_j), np.eye(2)
    mi, mj = members.models[i], members.models[j]
    xm, ym, _ = mapping_and_wavelength_check(mi, mj)
    placement = Placement(bilinear_footprint(xm, ym, shape_j), None, shape_j)
    if pi.translation is not None:
        return placement, np.eye(2)
    return placement, _jacobian(members.models[ref_index], mi)


def _jacobian(ref, model):
    """d(reference pixel) / d(member pixel) at the member's centre, 2x2 (rows x, y)."""
    nwave, ny, nx = model.data.shape
    x0, y0 = (nx - 1) / 2.0, (ny - 1) / 2.0
    ra, dec, lam = model.meta.wcs(
        np.array([x0, x0 + 1, x0]), np.array([y0, y0, y0 + 1]), np.full(3, nwave // 2),
        with_bounding_box=False,
    )
    xr, yr, _ = ref.meta.wcs.invert(ra, dec, lam, with_bounding_box=False)
    return np.array([[xr[1] - xr[0], xr[2] - xr[0]], [yr[1] - yr[0], yr[2] - yr[0]]])


def _pair_offset(members, ref_index, placements, native, i, j, options):
    """Offset ``d_j - d_i`` (reference pixels) of member j against member i, on i's grid.

    Both full-range and chunk images are measured, so the pair has its own empirical error
    (:func:`~jwst_ifualign.algorithms.measure.measure_placed`). Returns None when the two do not
    overlap enough to be registered.
    """
    placement, jac = _pair_placement(members, ref_index, placements, i, j)
    shape_i = members.models[i].data.shape[1:]
    placed_j, residual = place_images(native[j], placement, shape_i)
    if not _enough_overlap(
        np.isfinite(native[i][0][0]), np.isfinite(placed_j[0][0]), np.isfinite(native[j][0][0])
    ):
        return None
    m = measure_placed(
        native[i],
        placed_j,
        residual,
        method=options.method,
        upsample_factor=options.upsample_factor,
        native_grid=placement.translation is not None,
        smoothing=options.smoothing,
    )
    s = m.offset
    dx, dy = jac @ np.array([s.dx, s.dy])
    ex = float(np.hypot(jac[0, 0] * s.dx_err, jac[0, 1] * s.dy_err))
    ey = float(np.hypot(jac[1, 0] * s.dx_err, jac[1, 1] * s.dy_err))
    return Offset(float(dx), float(dy), ex, ey)


def _graph_pairs(members, ref_index, placements, native, chained, options, results):
    """Measure the edges of the overlap graph that a chained member needs.

    Candidates are the pairs of a chained member with an accepted member or another chained
    member whose bounding boxes (reference pixels) meet; each is measured if the footprints
    share enough pixels. Returns a list of PairMeasurement in member indices.
    """
    candidates = [i for i, r in enumerate(results) if r.accepted and i != ref_index]
    nodes = sorted(set(candidates) | set(chained))
    boxes = {k: _extent(members, ref_index, placements[k], native[k], k) for k in nodes}
    chained_set = set(chained)
    bright = {}

    def usable(k):
        # The S/N guard of a chained member, checked once, when it has a neighbour.
        if k not in chained_set:
            return True
        if k not in bright:
            snr = peak_snr(*native[k][0])
            bright[k] = snr >= options.min_snr
            if not bright[k]:
                log.warning(
                    "Member %s: peak S/N %.1f of its collapsed image is below min_snr=%g; it "
                    "is combined with its WCS alone.",
                    members.names[k],
                    snr,
                    options.min_snr,
                )
                results[k].flag = FLAG_LOW_SNR
        return bright[k]

    pairs = []
    for a, i in enumerate(nodes):
        for j in nodes[a + 1 :]:
            if i not in chained_set and j not in chained_set:
                continue  # both measured against the reference: the pair adds nothing
            (ax0, ax1, ay0, ay1), (bx0, bx1, by0, by1) = boxes[i], boxes[j]
            if ax1 < bx0 - 1 or bx1 < ax0 - 1 or ay1 < by0 - 1 or by1 < ay0 - 1:
                continue
            if not (usable(i) and usable(j)):
                continue
            try:
                off = _pair_offset(members, ref_index, placements, native, i, j, options)
            except RegistrationError as exc:
                log.info("Pair %s / %s not measured: %s", members.names[i], members.names[j], exc)
                continue
            if off is not None:
                pairs.append(PairMeasurement(i, j, off))
    return pairs


def _solve_graph(members, ref_index, placements, native, chained, options, results):
    """Measure the graph's pairs for the chained members and solve every linked member."""
    pairs = _graph_pairs(members, ref_index, placements, native, chained, options, results)
    chained = [i for i in chained if results[i].flag == FLAG_NOT_CONNECTED]
    direct = [
        PairMeasurement(ref_index, i, r.measured)
        for i, r in enumerate(results)
        if r.flag == FLAG_OK and i != ref_index
    ]
    linked = sorted(connected_to(ref_index, direct + pairs))
    if len(linked) == len(direct) + 1:
        return None  # no chained member reached the reference
    index = {k: n for n, k in enumerate(linked)}
    used = [p for p in direct + pairs if p.i in index and p.j in index]
    solution = solve_pairs(
        len(linked),
        index[ref_index],
        [PairMeasurement(index[p.i], index[p.j], p.offset) for p in used],
    )
    zero = Offset(0.0, 0.0, 0.0, 0.0)
    for k, off in zip(linked, solution.offsets, strict=True):
        r = results[k]
        if k == ref_index:
            continue
        if r.flag == FLAG_OK:
            # The reference's noise enters every offset relative to it and pairs sharing an
            # image are correlated: the errors are not allowed below the direct ones.
            ex, ey = max(off.dx_err, r.measured.dx_err), max(off.dy_err, r.measured.dy_err)
            off = Offset(off.dx, off.dy, ex, ey)
        if _rejected_by_max_shift(r.name, off, options.max_shift):
            r.measured, r.applied, r.flag = off, zero, FLAG_MAX_SHIFT
        else:
            r.measured, r.applied, r.flag = off, off, FLAG_OK
    residuals_out = [
        (linked[a], linked[b], rx, ry, sx, sy) for a, b, rx, ry, sx, sy in solution.residuals
    ]
    worst = max((max(abs(r[4]), abs(r[5])) for r in residuals_out), default=0.0)
    n_chained = sum(1 for k in chained if k in index)
    if solution.dof > 0:
        log.info(
            "Overlap graph: %d members chained through %d pairs (with %d direct offsets); "
            "chi2 %.1f for %d degrees of freedom, largest pair residual %.1f sigma",
            n_chained,
            len(pairs),
            len(direct),
            solution.chi2,
            solution.dof,
            worst,
        )
    else:
        log.info(
            "Overlap graph: %d members chained through %d pairs (with %d direct offsets)",
            n_chained,
            len(pairs),
            len(direct),
        )
    return PairFit(linked, solution.offsets, residuals_out, solution.chi2, solution.dof)
