"""Measure every member's offset against the reference: the adapter between models and
:mod:`jwst_ifualign.algorithms` for the measurement.

White-light images are collapsed from each member's cube (in blocks of planes), placed on the
reference grid, registered against the reference (and, with ``solution="pairs"``, against each
other), checked by the guards (``min_snr``, ``max_shift``, chunk consistency) and converted into
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
from ..algorithms.solve import PairMeasurement, solve_pairs
from ..exceptions import InputError
from .results import (
    DO_NOT_USE,
    FLAG_LOW_SNR,
    FLAG_MAX_SHIFT,
    FLAG_NO_DATA,
    FLAG_NOT_MEASURED,
    FLAG_REFERENCE,
    MemberResult,
    PairFit,
)
from .wcs_mapping import (
    mapping_and_wavelength_check,
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
    xm, ym, varies = mapping_and_wavelength_check(reference, member)
    return Placement(bilinear_footprint(xm, ym, shape), None, shape), varies


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
        )
    except RegistrationError as exc:
        log.warning(
            "Member %s: offset not measured (%s); it is combined with its WCS alone.", name, exc
        )
        return None, FLAG_NOT_MEASURED
    return measurement, ""


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
    """Warn when the spatial (static-pattern) term of a member's error exceeds its noise term."""
    if measurement is None or not measurement.systematic_dominates:
        return
    f = measurement.formal
    sx, sy = measurement.systematic_err
    log.warning(
        "Member %s: the systematic error term (%.4f, %.4f) px, from the residual between the "
        "aligned images, exceeds the noise term (%.4f, %.4f) px: a pattern that is the same at "
        "every wavelength (striping, holes, an undersampled PSF, background structure) limits "
        "this offset. The reported error (%.4f, %.4f) px includes it (error_term=%s).",
        name,
        sx,
        sy,
        f.dx_err,
        f.dy_err,
        measurement.offset.dx_err,
        measurement.offset.dy_err,
        measurement.error_term,
    )


def measure_members(members, ref_index, placements, options, planes, chunks, wavelengths):
    """Measure every member's offset; returns (list of MemberResult, PairFit or None)."""
    ref = members.models[ref_index]
    ref_shape = ref.data.shape[1:]
    placed, residuals = [], []
    for model, placement in zip(members.models, placements, strict=True):
        images = _white_light(model, planes, chunks, options.chunk_size)
        p, f = place_images(images, placement, ref_shape)
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
    results, measurements = [], {}
    for i, name in enumerate(members.names):
        if i == ref_index:
            results.append(MemberResult(name, zero, zero, FLAG_REFERENCE))
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
            measurements[(ref_index, i)] = m
            results.append(MemberResult(name, m.offset, m.offset, "", measurement=m))

    fit = None
    good = [i for i, r in enumerate(results) if r.accepted]
    if options.solution == "pairs" and len(good) >= 3:
        fit = _solve_pairs(members, ref_index, good, placed, residuals, measurements, options, results)
        for i, off in zip(good, fit.offsets, strict=True):
            if i == ref_index:
                continue
            r = results[i]
            # Pairs sharing an image are correlated, and the reference's own noise enters every
            # offset relative to it, so the fit's errors cannot be below the direct ones.
            off = Offset(
                off.dx, off.dy, max(off.dx_err, r.measured.dx_err), max(off.dy_err, r.measured.dy_err)
            )
            if _rejected_by_max_shift(r.name, off, options.max_shift):
                r.measured, r.applied, r.flag = off, zero, FLAG_MAX_SHIFT
            else:
                r.measured, r.applied = off, off

    sky = pixel_offsets_to_sky(ref, [r.applied for r in results])
    for r, (ra, dec, ra_err, dec_err) in zip(results, sky, strict=True):
        r.ra_offset, r.dec_offset, r.ra_offset_err, r.dec_offset_err = ra, dec, ra_err, dec_err
    return results, fit


def _excess(measurement):
    """(x, y) factors by which a direct measurement's final errors exceed its formal ones (>= 1).

    The chunk scatter shows how far the formal (noise) error of a member's measurement understates
    its real error (an undersampled PSF, an offset changing with wavelength).
    """
    if measurement is None:
        return 1.0, 1.0
    f, o = measurement.formal, measurement.offset
    return tuple(
        float(total / formal) if formal > 0 and np.isfinite(total / formal) and total > formal else 1.0
        for total, formal in ((o.dx_err, f.dx_err), (o.dy_err, f.dy_err))
    )


def _pair_offset(results, i, j, placed, residuals, options):
    """Offset of member j relative to member i (neither the reference), full wavelength range.

    Started from the difference of their direct offsets. The error is the pair's formal error
    scaled by the mean squared excess of the two members' direct measurements (see
    :func:`_excess`): the pair shares its members' images and so their excess scatter, and the
    wavelength chunks, measured for every member against the reference, are not measured again.
    """
    mi, mj = results[i].measured, results[j].measured
    rel = (residuals[j][0] - residuals[i][0], residuals[j][1] - residuals[i][1])
    m = measure_placed(
        placed[i][:1],
        placed[j][:1],
        rel,
        method=options.method,
        upsample_factor=options.upsample_factor,
        initial=Offset(mj.dx - mi.dx, mj.dy - mi.dy),
    )
    (xi, yi), (xj, yj) = _excess(results[i].measurement), _excess(results[j].measurement)
    scale = (np.sqrt((xi**2 + xj**2) / 2), np.sqrt((yi**2 + yj**2) / 2))
    off = m.offset
    ex, ey = off.dx_err * scale[0], off.dy_err * scale[1]
    if not (np.isfinite(ex) and np.isfinite(ey) and ex > 0 and ey > 0):
        # No formal error (a method without one): the direct errors of the two members.
        ex, ey = np.hypot(mi.dx_err, mj.dx_err), np.hypot(mi.dy_err, mj.dy_err)
    return Offset(off.dx, off.dy, float(ex), float(ey))


def _solve_pairs(members, ref_index, good, placed, residuals, measurements, options, results):
    """Measure every pair of accepted members and solve their offsets together."""
    pairs = []
    for a, i in enumerate(good):
        for j in good[a + 1 :]:
            key = (i, j) if (i, j) in measurements else (j, i) if (j, i) in measurements else None
            if key is not None:
                m = measurements[key]
                off = m.offset if key == (i, j) else -m.offset
            else:
                try:
                    off = _pair_offset(results, i, j, placed, residuals, options)
                except RegistrationError as exc:
                    log.info("Pair %s / %s not measured: %s", members.names[i], members.names[j], exc)
                    continue
            pairs.append(PairMeasurement(good.index(i), good.index(j), off))
    solution = solve_pairs(len(good), good.index(ref_index), pairs)
    residuals_out = [
        (good[a], good[b], rx, ry, sx, sy) for a, b, rx, ry, sx, sy in solution.residuals
    ]
    worst = max((max(abs(r[4]), abs(r[5])) for r in residuals_out), default=0.0)
    log.info(
        "Pairwise solution over %d members and %d pairs: chi2 %.1f for %d degrees of freedom; "
        "largest pair residual %.1f sigma",
        len(good),
        len(pairs),
        solution.chi2,
        solution.dof,
        worst,
    )
    return PairFit(good, solution.offsets, residuals_out, solution.chi2, solution.dof)
