"""Bring every member onto the output grid with its offset and combine them, block by block.

The adapter between models and :mod:`jwst_ifualign.algorithms` for resampling and combination:
one resampling per member (translation, general WCS mapping, or per plane when the mapping
changes with wavelength), wavelength processed in blocks of ``chunk_size`` planes, serially or
on dask.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from ..algorithms.combine import WeightedMean, combine_cubes
from ..algorithms.fused import accumulate_translated, finish_weighted_mean
from ..algorithms.resample import (
    bilinear_footprint,
    gather_nearest,
    resample_cube,
    translate_nearest,
    translate_parts,
)
from ..exceptions import ParameterError
from .results import DO_NOT_USE, NON_SCIENCE, valid_voxels
from .wcs_mapping import member_extent, reference_to_member_pixels

__all__ = [
    "resamplers",
    "output_grid",
    "combine_block",
    "portable_block",
    "combine_planes",
    "run_blocks",
]

log = logging.getLogger(__name__)


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

    @property
    def translation(self):
        """``(tx, ty)`` when the member is a translation of the output grid (the identity is
        ``(0, 0)``), else None."""
        return (0.0, 0.0) if self.identity else self.shift

    def block(self, model, z0, z1, kernel, out_shape, positive_err):
        """Aligned planes [z0, z1) on the output grid: (data, var, valid, dq).

        ``data`` is 0 and ``var`` (error squared) is +inf where ``valid`` is False (the form
        :class:`~jwst_ifualign.algorithms.combine.WeightedMean` adds without masking).
        """
        valid = valid_voxels(model, z0, z1, positive_err=positive_err)
        data, err, dq = model.data[z0:z1], model.err[z0:z1], model.dq[z0:z1]
        if self.identity:
            return (*_masked(data, err, valid), valid, dq)
        fill = DO_NOT_USE | NON_SCIENCE
        if self.shift is not None:
            d, var, v = translate_parts(data, err, valid, self.shift, out_shape, kernel=kernel)
            return d, var, v, translate_nearest(dq, self.shift, out_shape, fill)
        if self.per_plane is None:
            d, e, v = resample_cube(data, err, valid, self.footprint, kernel=kernel)
            return (*_masked(d, e, v), v, gather_nearest(dq, self.footprint, fill))
        parts = []
        for k, z in enumerate(range(z0, z1)):
            fp = self.per_plane(z)
            d, e, v = resample_cube(
                data[k : k + 1], err[k : k + 1], valid[k : k + 1], fp, kernel=kernel
            )
            parts.append((*_masked(d, e, v), v, gather_nearest(dq[k : k + 1], fp, fill)))
        return tuple(np.concatenate(p) for p in zip(*parts, strict=True))


def _masked(data, err, valid):
    """(data, var) as float32 with 0 and +inf where not ``valid``."""
    d = np.where(valid, data, np.float32(0)).astype(np.float32, copy=False)
    var = np.where(valid, err, np.float32(np.inf)).astype(np.float32, copy=False)
    return d, np.multiply(var, var, out=var)


def resamplers(ref, members, placements, varies_list, results, origin, out_shape):
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
    once aligned, so that the reference and every member of its orientation stay translations
    of the output grid (the compiled path). Not reproject's ``find_optimal_celestial_wcs``:
    it makes a North-up grid whatever the reference's orientation, and a grid offset from the
    reference's by a fraction of a pixel (``tests/test_edges.py::
    test_find_optimal_celestial_wcs_is_not_a_whole_pixel_extension``).
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


def combine_block(members, resamplers, z0, z1, *, method, kernel, out_shape, out=None):
    """Resample every member for planes [z0, z1) and combine them; returns (data, err, dq, count).

    ``out``: optional ``(data, err, dq, count)`` arrays of the block's shape (views of the
    output cube) that receive the result and are returned.

    The weighted mean is accumulated one member at a time; members that are translations of
    the output grid (the reference and cube_build's sky-aligned cubes) are translated and added
    in one compiled pass (:func:`~jwst_ifualign.algorithms.fused.accumulate_translated`), plane
    by plane. ``mean`` and ``median`` need the stack of members.
    """
    shape = (z1 - z0, *out_shape)
    if out is None:
        flags = np.zeros(shape, np.uint32)
    else:
        flags = out[2]
        flags[...] = 0
    keep = np.uint32(~np.uint32(DO_NOT_USE | NON_SCIENCE))
    pairs = list(zip(members.models, resamplers, strict=True))
    if method == "weighted_mean":
        total = WeightedMean(shape, out=None if out is None else (out[0], out[1], out[3]))
        translated = [
            (m.data[z0:z1], m.err[z0:z1], m.dq[z0:z1], r.translation)
            for m, r in pairs
            if r.translation is not None
        ]
        accumulate_translated(
            translated, total, flags, kernel=kernel, do_not_use=DO_NOT_USE, keep=keep
        )
        for model, r in pairs:
            if r.translation is not None:
                continue  # added above
            d, var, valid, dq = r.block(model, z0, z1, kernel, out_shape, True)
            total.add(d, var, valid)
            np.bitwise_or(flags, dq & keep, out=flags, where=valid)
        out_data, out_err, count = finish_weighted_mean(total, flags, fill=DO_NOT_USE | NON_SCIENCE)
        return out_data, out_err, flags, count
    else:
        data, err, valid = [], [], []
        for model, r in pairs:
            d, var, v, dq = r.block(model, z0, z1, kernel, out_shape, False)
            data.append(np.where(v, d, np.float32(np.nan)))
            err.append(np.where(v, np.sqrt(var), np.float32(np.nan)))
            valid.append(v)
            np.bitwise_or(flags, dq & keep, out=flags, where=v)
        result = combine_cubes(np.stack(data), np.stack(err), np.stack(valid), method=method)
        if out is None:
            out_data, out_err, count = result
        else:
            for target, value in zip((out[0], out[1], out[3]), result, strict=True):
                target[...] = value
            out_data, out_err, count = out[0], out[1], out[3]
    flags[count == 0] = DO_NOT_USE | NON_SCIENCE
    return out_data, out_err, flags, count


@dataclass
class _Planes:
    """Planes [z0, z1) of one member's arrays: a picklable stand-in for the model in a task."""

    data: np.ndarray
    err: np.ndarray
    dq: np.ndarray


@dataclass
class _PlaneMembers:
    """The members of one block as :func:`combine_block` reads them (``.models``)."""

    models: list


@dataclass
class _PlaneFootprints:
    """Footprints of planes [z0, z1) precomputed for a task (``per_plane`` by block index)."""

    footprints: list

    def __call__(self, k):
        return self.footprints[k]


def portable_block(members, resamplers, z0, z1):
    """Picklable inputs of one block: (members' planes, resamplers indexed from the block start).

    An open model cannot be pickled (its file handle and weak references), nor can a resampler
    that evaluates a WCS plane by plane; a task for another process gets the block's planes of
    every member's SCI, ERR and DQ, and the footprints of those planes, instead.
    """
    planes = _PlaneMembers(
        [_Planes(m.data[z0:z1], m.err[z0:z1], m.dq[z0:z1]) for m in members.models]
    )
    portable = [
        r
        if r.per_plane is None
        else _Resampler(per_plane=_PlaneFootprints([r.per_plane(z) for z in range(z0, z1)]))
        for r in resamplers
    ]
    return planes, portable


def combine_planes(planes, resamplers, *, method, kernel, out_shape):
    """:func:`combine_block` over all planes of :func:`portable_block`'s inputs (a task)."""
    nplanes = planes.models[0].data.shape[0]
    return combine_block(
        planes, resamplers, 0, nplanes, method=method, kernel=kernel, out_shape=out_shape
    )


def _active_client():
    """The active ``dask.distributed`` client, or None."""
    try:
        from distributed import default_client
    except ImportError:
        return None
    try:
        return default_client()
    except ValueError:
        return None


def run_blocks(block, bounds, parallel, *, remote=None):
    """Yield ``block(z0, z1)`` for every wavelength block, serially or as dask tasks.

    With ``parallel``, blocks run on dask: the active ``dask.distributed`` client if there is
    one, threads otherwise. Blocks are independent, so the result is identical to the serial one.

    Parameters
    ----------
    block : callable
        ``block(z0, z1)`` -> the block's result; run in this process (serially or on threads).
    bounds : list of (int, int)
        Wavelength blocks.
    parallel : bool
        Run on dask.
    remote : callable, optional
        ``remote(z0, z1)`` -> ``(function, args, kwargs)`` of a task that computes the same
        result from picklable arguments (module-level function, arrays), for a distributed
        client whose workers are other processes. The arguments are scattered to the workers
        first. Without it, a distributed client is not used.
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
    client = _active_client() if remote is not None else None
    if client is None:
        tasks = [dask.delayed(block)(z0, z1) for z0, z1 in bounds]
        yield from dask.compute(*tasks, scheduler="threads")
        return
    log.info("Combining %d wavelength blocks on the dask.distributed client %s", len(bounds),
             client)
    futures = []
    for z0, z1 in bounds:
        function, args, kwargs = remote(z0, z1)
        scattered = [client.scatter(a, hash=False) for a in args]
        futures.append(client.submit(function, *scattered, pure=False, **kwargs))
    for future in futures:
        yield future.result()
        future.release()
