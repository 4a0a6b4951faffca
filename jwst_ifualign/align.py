"""Align and combine the members of an association: the adapter between models and algorithms.

:func:`align_members` takes open IFUCubeModels and :class:`AlignOptions`, and returns the
combined arrays on the reference grid and one :class:`MemberResult` per member. It reads arrays
and WCS from the models, calls the numpy algorithms of :mod:`jwst_ifualign.algorithms`, and never
writes into the input models. The stpipe Step (:mod:`jwst_ifualign.step`) wraps it.

Work is done in blocks of ``chunk_size`` wavelength planes, so peak memory grows with the number
of members times the block, not times the whole cube.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
from stdatamodels.jwst.datamodels import dqflags

from .algorithms.collapse import chunk_bounds, collapse_sums, image_from_sums
from .algorithms.combine import COMBINE_METHODS, combine_cubes
from .algorithms.measure import (
    MemberMeasurement,
    Placement,
    measure_placed,
    place_images,
    translation_of,
)
from .algorithms.solve import PairMeasurement, solve_pairs
from .algorithms.offset import Offset
from .algorithms.registration import METHODS, RegistrationError
from .algorithms.resample import (
    bilinear_footprint,
    gather_nearest,
    resample_cube,
    translate_cube,
    translate_nearest,
)
from .exceptions import InputError, ParameterError
from .inputs import check_compatible
from .wcs_mapping import (
    mapping_and_wavelength_check,
    member_extent,
    pixel_offsets_to_sky,
    reference_to_member_pixels,
)

__all__ = ["AlignOptions", "MemberResult", "AlignResult", "align_members"]

log = logging.getLogger(__name__)

DO_NOT_USE = dqflags.pixel["DO_NOT_USE"]
NON_SCIENCE = dqflags.pixel["NON_SCIENCE"]

#: Flags of a member in the offsets table.
FLAG_REFERENCE = "reference"
FLAG_MAX_SHIFT = "rejected_max_shift"
FLAG_NOT_MEASURED = "not_measured"
FLAG_LOW_SNR = "rejected_low_snr"
FLAG_NO_DATA = "no_data"

#: Ways to turn measurements into offsets (``AlignOptions.solution``).
SOLUTIONS = ("pairs", "reference")

#: Output grids (``AlignOptions.output_grid``).
OUTPUT_GRIDS = ("reference", "union")

#: Reduced chi-square of the chunk offsets above which a warning is logged (p ~ 1e-3 for 4 dof).
CHUNK_CHI2_WARN = 4.6


@dataclass(frozen=True)
class AlignOptions:
    """Options of :func:`align_members` (the Step's parameters; see its spec for help texts)."""

    method: str = "chi2"
    upsample_factor: int | None = None
    wavelength_range: tuple | None = None
    slice: int | None = None
    error_chunks: int = 5
    combine: str = "weighted_mean"
    reference: int = 0
    max_shift: float = 3.0
    min_snr: float = 5.0
    solution: str = "pairs"
    kernel: str = "bicubic"
    output_grid: str = "reference"
    chunk_size: int = 256
    parallel: bool = False


@dataclass
class MemberResult:
    """What was measured and applied for one member.

    Attributes
    ----------
    name : str
        Member file name.
    measured : Offset
        Measured offset (package convention, reference pixels); NaN if not measured.
    applied : Offset
        Offset folded into the member's WCS for resampling (zero if rejected).
    flag : str
        "" (measured and applied), "reference", "rejected_max_shift" or "not_measured".
    ra_offset, dec_offset, ra_offset_err, dec_offset_err : float
        Applied correction for cube_build's offset_file, arcsec (RA times cos Dec).
    measurement : MemberMeasurement or None
        Details (formal error, chunk offsets), None for the reference or when not measured.
    """

    name: str
    measured: Offset
    applied: Offset
    flag: str = ""
    ra_offset: float = 0.0
    dec_offset: float = 0.0
    ra_offset_err: float = 0.0
    dec_offset_err: float = 0.0
    measurement: MemberMeasurement | None = None


@dataclass
class AlignResult:
    """Combined cube arrays on the reference grid and the per-member results."""

    data: np.ndarray
    err: np.ndarray
    dq: np.ndarray
    count: np.ndarray
    members: list
    wavelengths: np.ndarray
    measure_planes: tuple
    chunk_planes: list = field(default_factory=list)
    pair_fit: object = None
    grid_origin: tuple = (0, 0)


def _valid(model, z0, z1, *, positive_err=False):
    """Usable voxels of planes [z0, z1): finite data, not DO_NOT_USE, a finite, non-negative ERR
    (positive with ``positive_err``, which inverse-variance weighting needs)."""
    err = model.err[z0:z1]
    with np.errstate(invalid="ignore"):
        err_ok = (err > 0) if positive_err else (err >= 0)
    return (
        np.isfinite(model.data[z0:z1])
        & np.isfinite(err)
        & err_ok
        & ((model.dq[z0:z1] & DO_NOT_USE) == 0)
    )


def reference_index(options, nmember):
    """Index of the reference member (negative indices count from the end)."""
    if not -nmember <= options.reference < nmember:
        raise ParameterError(
            f"reference={options.reference} is out of range for an association of {nmember} "
            f"members; give an index from 0 to {nmember - 1}."
        )
    return options.reference % nmember


def check_options(options, wavelengths):
    """Validate options against the data; return the (start, stop) planes used for measuring."""
    if options.method not in METHODS:
        raise ParameterError(f"method must be one of {', '.join(METHODS)}; got {options.method!r}")
    if options.combine not in COMBINE_METHODS:
        raise ParameterError(
            f"combine must be one of {', '.join(COMBINE_METHODS)}; got {options.combine!r}"
        )
    if options.output_grid not in OUTPUT_GRIDS:
        raise ParameterError(
            f"output_grid must be one of {', '.join(OUTPUT_GRIDS)}; got {options.output_grid!r}"
        )
    if options.solution not in SOLUTIONS:
        raise ParameterError(
            f"solution must be one of {', '.join(SOLUTIONS)}; got {options.solution!r}"
        )
    nwave = wavelengths.size
    if options.slice is not None:
        if not 0 <= options.slice < nwave:
            raise ParameterError(
                f"slice={options.slice} is out of range; the cubes have {nwave} planes "
                f"(0 to {nwave - 1})."
            )
        return options.slice, options.slice + 1
    if options.wavelength_range is None:
        return 0, nwave
    lo, hi = sorted(float(v) for v in options.wavelength_range)
    inside = np.flatnonzero((wavelengths >= lo) & (wavelengths <= hi))
    if inside.size == 0:
        raise ParameterError(
            f"wavelength_range=[{lo}, {hi}] um contains no plane of the cubes, which cover "
            f"{wavelengths.min():.4f} to {wavelengths.max():.4f} um; give a range inside that."
        )
    return int(inside[0]), int(inside[-1]) + 1


def _white_light(model, planes, chunks, block):
    """Full-range and chunk white-light images of a member on its native grid.

    Reads the cube in blocks of ``block`` planes. Returns a list of (image, err) pairs: the full
    range first, then each chunk (only the full range when there is a single chunk).
    """
    sums = []
    for c0, c1 in chunks:
        parts = [
            collapse_sums(model.data[z0:z1], model.err[z0:z1], _valid(model, z0, z1))
            for z0, z1 in ((z, min(c1, z + block)) for z in range(c0, c1, block))
        ]
        sums.append((*(sum(p[k] for p in parts) for k in range(3)), c1 - c0))
    full = (*(sum(s[k] for s in sums) for k in range(3)), planes[1] - planes[0])
    wanted = [full, *sums] if len(sums) > 1 else [full]
    return [image_from_sums(d, e2, n, nplanes) for d, e2, n, nplanes in wanted]


def _placement(reference, member):
    """Placement of a member on the reference grid, and whether its mapping varies with wavelength."""
    shape = member.data.shape[1:]
    if member is reference:
        ny, nx = shape
        yy, xx = np.mgrid[:ny, :nx].astype(float)
        return Placement(bilinear_footprint(xx, yy, shape), (0.0, 0.0), shape), False
    xm, ym, varies = mapping_and_wavelength_check(reference, member)
    return Placement(bilinear_footprint(xm, ym, shape), translation_of(xm, ym), shape), varies


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


def _measure(members, ref_index, placements, options, planes, chunks, wavelengths):
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
        if m is None:
            results.append(MemberResult(name, nan, zero, flag))
        elif _rejected_by_max_shift(name, m.offset, options.max_shift):
            results.append(MemberResult(name, m.offset, zero, FLAG_MAX_SHIFT, measurement=m))
        else:
            measurements[(ref_index, i)] = m
            results.append(MemberResult(name, m.offset, m.offset, "", measurement=m))

    fit = None
    good = [i for i, r in enumerate(results) if r.flag in ("", FLAG_REFERENCE)]
    if options.solution == "pairs" and len(good) >= 3:
        fit = _solve_pairs(members, ref_index, good, placed, residuals, measurements, options)
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


@dataclass
class PairFit:
    """Global least-squares solution from all pairs of accepted members.

    Attributes
    ----------
    members : list of int
        Indices of the members in the fit (the reference included).
    offsets : list of Offset
        Fitted offsets of those members.
    residuals : list of tuple
        ``(i, j, rx, ry, rx_sigma, ry_sigma)`` per pair (member indices, px and sigma).
    chi2, dof : float, int
        Chi-square of the fit and its degrees of freedom.
    """

    members: list
    offsets: list
    residuals: list
    chi2: float
    dof: int


def _solve_pairs(members, ref_index, good, placed, residuals, measurements, options):
    """Measure every pair of accepted members and solve their offsets together."""
    pairs = []
    for a, i in enumerate(good):
        for j in good[a + 1 :]:
            key = (i, j) if (i, j) in measurements else (j, i) if (j, i) in measurements else None
            if key is not None:
                m = measurements[key]
                off = m.offset if key == (i, j) else -m.offset
            else:
                rel = (residuals[j][0] - residuals[i][0], residuals[j][1] - residuals[i][1])
                try:
                    off = measure_placed(
                        placed[i],
                        placed[j],
                        rel,
                        method=options.method,
                        upsample_factor=options.upsample_factor,
                    ).offset
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


@dataclass
class _Resampler:
    """How one member is brought onto the reference grid with its applied offset.

    Exactly one of: ``identity`` (the reference itself), ``shift`` (a pure translation
    ``(tx, ty)``: reference pixel p samples the member at p + shift), ``footprint`` (general WCS
    mapping, the same at every plane) or ``per_plane`` (a function of the plane index returning
    a footprint, for a mapping that changes with wavelength).
    """

    identity: bool = False
    shift: tuple | None = None
    footprint: object = None
    per_plane: object = None

    def block(self, model, z0, z1, kernel, out_shape, positive_err):
        """Aligned (data, err, valid, dq) of planes [z0, z1) on the reference grid."""
        valid = _valid(model, z0, z1, positive_err=positive_err)
        data, err, dq = model.data[z0:z1], model.err[z0:z1], model.dq[z0:z1]
        if self.identity:
            return data, err, valid, dq
        fill = DO_NOT_USE | NON_SCIENCE
        if self.shift is not None:
            d, e, v = translate_cube(data, err, valid, self.shift, out_shape, kernel=kernel)
            return d, e, v, translate_nearest(dq, self.shift, out_shape, fill)
        if self.per_plane is None:
            d, e, v = resample_cube(data, err, valid, self.footprint, kernel=kernel)
            return d, e, v, gather_nearest(dq, self.footprint, fill)
        parts = []
        for k, z in enumerate(range(z0, z1)):
            fp = self.per_plane(z)
            d, e, v = resample_cube(
                data[k : k + 1], err[k : k + 1], valid[k : k + 1], fp, kernel=kernel
            )
            parts.append((d, e, v, gather_nearest(dq[k : k + 1], fp, fill)))
        return tuple(np.concatenate(p) for p in zip(*parts, strict=True))


def _resamplers(ref, members, placements, varies_list, results, origin, out_shape):
    """One _Resampler per member, its applied offset folded into its mapping onto the output grid.

    Output pixel q is reference pixel q + origin.
    """
    resamplers = []
    same_grid = tuple(origin) == (0, 0) and tuple(out_shape) == ref.data.shape[1:]
    for model, placement, varies, res in zip(
        members.models, placements, varies_list, results, strict=True
    ):
        offset = (res.applied.dx + origin[0], res.applied.dy + origin[1])
        if model is ref and same_grid and (res.applied.dx, res.applied.dy) == (0.0, 0.0):
            resamplers.append(_Resampler(identity=True))
            continue
        if placement.translation is not None and not varies:
            tx, ty = placement.translation
            resamplers.append(_Resampler(shift=(tx + offset[0], ty + offset[1])))
            continue
        shape = model.data.shape[1:]
        applied = (res.applied.dx, res.applied.dy)
        if not varies:
            xm, ym = reference_to_member_pixels(
                ref, model, shift=applied, origin=origin, shape=out_shape
            )
            resamplers.append(_Resampler(footprint=bilinear_footprint(xm, ym, shape)))
            continue
        log.info("Member %s: celestial mapping varies with wavelength; resampling per plane.", res.name)

        def by_plane(z, model=model, shape=shape, applied=applied):
            xm, ym = reference_to_member_pixels(
                ref, model, shift=applied, plane=z, origin=origin, shape=out_shape
            )
            return bilinear_footprint(xm, ym, shape)

        resamplers.append(_Resampler(per_plane=by_plane))
    return resamplers


def output_grid(ref, members, results, kind):
    """Origin (reference pixel of output pixel 0, 0) and shape (ny, nx) of the output grid.

    ``reference``: the reference's own grid. ``union``: the reference's grid (same tangent
    point, scale and orientation) extended by whole pixels to cover every member's footprint
    once aligned.
    """
    ny, nx = ref.data.shape[1:]
    if kind == "reference":
        return (0, 0), (ny, nx)
    x0, x1, y0, y1 = 0, nx - 1, 0, ny - 1
    for model, r in zip(members.models, results, strict=True):
        covered = np.isfinite(model.data).any(axis=0)
        xmin, xmax, ymin, ymax = member_extent(ref, model, covered)
        if not np.isfinite(xmin):
            continue
        # The aligned member shows its spaxel at reference pixel p at p - applied offset.
        x0 = min(x0, int(np.floor(xmin - r.applied.dx + 0.5)))
        x1 = max(x1, int(np.ceil(xmax - r.applied.dx - 0.5)))
        y0 = min(y0, int(np.floor(ymin - r.applied.dy + 0.5)))
        y1 = max(y1, int(np.ceil(ymax - r.applied.dy - 0.5)))
    return (x0, y0), (y1 - y0 + 1, x1 - x0 + 1)


def combine_block(members, resamplers, z0, z1, *, method, kernel, out_shape):
    """Resample every member for planes [z0, z1) and combine them; returns (data, err, dq, count)."""
    positive_err = method == "weighted_mean"
    stack = [
        r.block(model, z0, z1, kernel, out_shape, positive_err)
        for model, r in zip(members.models, resamplers, strict=True)
    ]
    data = np.stack([s[0] for s in stack])
    err = np.stack([s[1] for s in stack])
    valid = np.stack([s[2] for s in stack])
    out, out_err, count = combine_cubes(data, err, valid, method=method)
    used = valid if method != "weighted_mean" else valid & np.isfinite(err) & (err > 0)
    flags = np.zeros(out.shape, np.uint32)
    for s, v in zip(stack, used, strict=True):
        flags |= np.where(v, s[3] & ~np.uint32(DO_NOT_USE | NON_SCIENCE), 0).astype(np.uint32)
    flags[count == 0] = DO_NOT_USE | NON_SCIENCE
    return out, out_err, flags, count


def _run_blocks(block, bounds, parallel):
    """Yield ``block(z0, z1)`` for every wavelength block, serially or as dask tasks.

    With ``parallel``, blocks run on dask: the active ``dask.distributed`` client if there is
    one, threads otherwise. Blocks are independent, so the result is identical to the serial one.
    """
    if not parallel:
        for z0, z1 in bounds:
            yield block(z0, z1)
        return
    try:
        import dask
    except ImportError:
        raise ParameterError(
            "parallel=True needs dask: pip install 'jwst_ifualign[dask]' (or set parallel=False)."
        ) from None
    scheduler = "threads"
    try:
        from distributed import default_client

        default_client()
        scheduler = None  # the user's distributed client
    except (ImportError, ValueError):
        pass
    tasks = [dask.delayed(block)(z0, z1) for z0, z1 in bounds]
    yield from dask.compute(*tasks, scheduler=scheduler)


def align_members(members, options):
    """Measure each member's offset, resample it once onto the reference grid, and combine.

    Parameters
    ----------
    members : Members
        The open, checked members (:func:`jwst_ifualign.inputs.load_members`).
    options : AlignOptions
        Method, combination, reference index and block size.

    Returns
    -------
    AlignResult
        Combined ``data`` and ``err`` (float32, surface brightness units of the input), ``dq``
        (uint32) and ``count`` (members per voxel), each of shape (nwave, ny_ref, nx_ref), and
        one MemberResult per member in association order.

    Raises
    ------
    InputError, ParameterError
        For unusable inputs or parameters (before any computation).
    """
    nmember = len(members.models)
    if nmember < 2:
        raise InputError(
            f"The association has only {nmember} member ({members.names[0]}); give at least two "
            "s3d cubes to align."
        )
    ref_index = reference_index(options, nmember)
    wavelengths = check_compatible(members, ref_index)
    planes = check_options(options, wavelengths)
    n_err_chunks = 1 if options.slice is not None else options.error_chunks
    chunks = chunk_bounds(*planes, n_err_chunks)
    ref = members.models[ref_index]
    log.info(
        "Aligning %d members on %s (reference) with method=%s over planes %d-%d (%.4f-%.4f um)",
        nmember,
        members.names[ref_index],
        options.method,
        planes[0],
        planes[1] - 1,
        wavelengths[planes[0]],
        wavelengths[planes[1] - 1],
    )
    placements, varies = zip(*(_placement(ref, model) for model in members.models), strict=True)
    results, pair_fit = _measure(members, ref_index, placements, options, planes, chunks, wavelengths)
    for r in results:
        m = r.measured
        log.info(
            "Member %s: dx=%+.4f +/- %.4f px, dy=%+.4f +/- %.4f px; RA offset %+.4f\", Dec "
            "offset %+.4f\"%s",
            r.name,
            m.dx,
            m.dx_err,
            m.dy,
            m.dy_err,
            r.ra_offset,
            r.dec_offset,
            f" [{r.flag}]" if r.flag else "",
        )

    origin, (ny, nx) = output_grid(ref, members, results, options.output_grid)
    resamplers = _resamplers(ref, members, placements, varies, results, origin, (ny, nx))
    nwave = ref.data.shape[0]
    data = np.empty((nwave, ny, nx), np.float32)
    err = np.empty((nwave, ny, nx), np.float32)
    dq = np.empty((nwave, ny, nx), np.uint32)
    count = np.empty((nwave, ny, nx), np.int16)
    bounds = [(z0, min(nwave, z0 + options.chunk_size)) for z0 in range(0, nwave, options.chunk_size)]

    def block(z0, z1):
        return combine_block(
            members,
            resamplers,
            z0,
            z1,
            method=options.combine,
            kernel=options.kernel,
            out_shape=(ny, nx),
        )

    for (z0, z1), out in zip(bounds, _run_blocks(block, bounds, options.parallel), strict=True):
        data[z0:z1], err[z0:z1], dq[z0:z1], count[z0:z1] = out
    return AlignResult(
        data=data,
        err=err,
        dq=dq,
        count=count,
        members=results,
        wavelengths=wavelengths,
        measure_planes=planes,
        chunk_planes=chunks,
        pair_fit=pair_fit,
        grid_origin=origin,
    )
