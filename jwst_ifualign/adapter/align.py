"""Align and combine the members of an association: the top of the adapter layer.

:func:`align_members` takes open IFUCubeModels and :class:`AlignOptions`, and returns the
combined arrays on the output grid and one :class:`MemberResult` per member. It checks the
options against the data, measures the offsets (:mod:`jwst_ifualign.adapter.measurement`), and resamples
and combines the members (:mod:`jwst_ifualign.adapter.assembly`); none of it writes into the input
models. The stpipe Step (:mod:`jwst_ifualign.step`) wraps it.

Work is done in blocks of ``chunk_size`` wavelength planes, so peak memory grows with the number
of members times the block, not times the whole cube.
"""

from __future__ import annotations

import logging

import numpy as np

from ..algorithms.collapse import chunk_bounds
from ..algorithms.offset import Offset
from ..exceptions import InputError, ParameterError
from .assembly import (
    combine_block,
    combine_planes,
    output_grid,
    portable_block,
    resamplers,
    run_blocks,
)
from .inputs import check_compatible, plane_wavelengths
from .measurement import measure_members, placement
from .parameters import resolve_reference
from .rejection import reject_outliers
from .results import (  # noqa: F401 - re-exported: the public names of the adapter
    DO_NOT_USE,
    FLAG_LOW_SNR,
    FLAG_MAX_SHIFT,
    FLAG_NO_DATA,
    FLAG_NOT_CONNECTED,
    FLAG_NOT_MEASURED,
    FLAG_OK,
    FLAG_REFERENCE,
    AlignOptions,
    AlignResult,
    MemberResult,
    PairFit,
)

__all__ = [
    "AlignOptions",
    "MemberResult",
    "AlignResult",
    "align_members",
    "pass_through",
    "check_options",
]

log = logging.getLogger(__name__)

def reference_index(options, nmember):
    """Index of the reference member (negative ``options.reference`` counts from the end)."""
    return resolve_reference(options.reference, nmember)


def check_options(options, wavelengths):
    """Check the options against the data; return the (start, stop) planes used for measuring.

    The options' own types, bounds and choices are checked when they are made
    (:class:`AlignOptions`); this checks what needs the cubes: ``slice`` against the number of
    planes and ``wavelength_range`` against their wavelengths.
    """
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


def align_members(members, options):
    """Measure each member's offset, resample it once onto the reference grid, and combine.

    Parameters
    ----------
    members : Members
        The open, checked members (:func:`jwst_ifualign.adapter.inputs.load_members`).
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
    inverse = ref.meta.wcs.backward_transform  # built once: as costly as evaluating it
    placements, varies = zip(
        *(placement(ref, model, inverse) for model in members.models), strict=True
    )
    # Outliers are rejected once; the cleaned view is what the measurement and the combination
    # read (placements and grids come from the models themselves).
    cleaned, n_outliers = reject_outliers(
        members, threshold=options.outlier_threshold, block=options.chunk_size
    )
    results, pair_fit = measure_members(
        cleaned, ref_index, placements, options, planes, chunks, wavelengths
    )
    for r, n in zip(results, n_outliers, strict=True):
        r.outliers = n
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
            f" [{r.flag}]" if r.flag != FLAG_OK else "",
        )

    origin, (ny, nx) = output_grid(ref, members, results, options.output_grid)
    per_member = resamplers(ref, members, placements, varies, results, origin, (ny, nx))
    nwave = ref.data.shape[0]
    data = np.empty((nwave, ny, nx), np.float32)
    err = np.empty((nwave, ny, nx), np.float32)
    dq = np.empty((nwave, ny, nx), np.uint32)
    count = np.empty((nwave, ny, nx), np.int16)
    bounds = [(z0, min(nwave, z0 + options.chunk_size)) for z0 in range(0, nwave, options.chunk_size)]

    def block(z0, z1):
        # Each block writes its own planes of the output (disjoint views: safe on threads).
        return combine_block(
            cleaned,
            per_member,
            z0,
            z1,
            method=options.combine,
            kernel=options.kernel,
            out_shape=(ny, nx),
            out=(data[z0:z1], err[z0:z1], dq[z0:z1], count[z0:z1]),
        )

    def remote(z0, z1):
        # The same block as a task for another process (dask.distributed): picklable arguments.
        planes, portable = portable_block(cleaned, per_member, z0, z1)
        kwargs = {"method": options.combine, "kernel": options.kernel, "out_shape": (ny, nx)}
        return combine_planes, (planes, portable), kwargs

    blocks = run_blocks(block, bounds, options.parallel, remote=remote)
    for (z0, z1), out in zip(bounds, blocks, strict=True):
        if not np.may_share_memory(out[0], data):  # computed in another process (distributed)
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
        reference_index=ref_index,
    )


def pass_through(members):
    """The result for a single member: nothing to align, its own arrays copied.

    Parameters
    ----------
    members : Members
        Exactly one open member.

    Returns
    -------
    AlignResult
        Copies of the member's ``data``, ``err`` and ``dq`` (never sharing memory with it),
        ``count`` 1 where it has data (its WMAP > 0, or not DO_NOT_USE without one), and one
        MemberResult flagged ``reference`` with zero offsets.
    """
    if len(members.models) != 1:
        raise InputError(f"pass_through takes one member; got {len(members.models)}")
    log.warning(
        "Only one member (%s): nothing to align; the output is a copy of it and ifu_align is "
        "SKIPPED.",
        members.names[0],
    )
    model = members.models[0]
    zero = Offset(0.0, 0.0, 0.0, 0.0)
    weightmap = model.weightmap if model.hasattr("weightmap") else None
    count = weightmap > 0 if weightmap is not None else (model.dq & DO_NOT_USE) == 0
    return AlignResult(
        data=model.data.copy(),
        err=model.err.copy(),
        dq=model.dq.copy(),
        count=count.astype(np.int16),
        members=[MemberResult(members.names[0], zero, zero, FLAG_REFERENCE)],
        wavelengths=plane_wavelengths(model),
        measure_planes=(0, model.data.shape[0]),
        chunk_planes=[],
        reference_index=0,
    )
