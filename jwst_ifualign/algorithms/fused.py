"""The passes that touch every voxel of every member, compiled or in numpy.

- :func:`accumulate_translated`: translate a member's planes onto the output grid (the rule of
  :func:`~jwst_ifualign.algorithms.resample.resample_cube` for a translation: bicubic where all
  16 neighbours are usable, bilinear of the usable ones, renormalised, elsewhere; valid where the
  nearest input voxel is) and add them to a
  :class:`~jwst_ifualign.algorithms.combine.WeightedMean` and to the output DQ bits, in one pass
  and without the intermediate cubes that :func:`~jwst_ifualign.algorithms.resample.translate_parts`
  returns.
- :func:`finish_weighted_mean`: :meth:`~jwst_ifualign.algorithms.combine.WeightedMean.result`
  and the DQ of uncovered voxels in one pass.
- :func:`usable_sums`: the per-spaxel sums over wavelength of usable data, squared errors and
  usable planes (the white-light images), deciding usability voxel by voxel on the way.

A voxel is *usable* when its data and error are finite, its error is >= 0 (> 0 for the weighted
mean, whose weight is ``1 / err**2``) and its DQ lacks ``DO_NOT_USE``, as
:func:`jwst_ifualign.adapter.results.valid_voxels`. Both read float32 and uint32 arrays of either
byte order in place (FITS cubes are big-endian); other dtypes are converted first.

Each function runs the compiled kernels (``csrc/translate.c``, fused passes in float32) or the
numpy functions they were written from (:func:`~jwst_ifualign.algorithms.resample.translate_parts`,
or :func:`_translate_planes` for members with many scattered unusable voxels, with
:class:`~jwst_ifualign.algorithms.combine.WeightedMean`;
:func:`~jwst_ifualign.algorithms.collapse.collapse_sums`), as
:func:`jwst_ifualign.algorithms.kernels.selected` says (environment variable
``JWST_IFUALIGN_KERNELS``: ``auto``, ``compiled`` or ``numpy``; or the ``implementation``
keyword). The tests hold both to the reference rule
(:func:`~jwst_ifualign.algorithms.resample.resample_cube`; float32 sums in another order).
"""

from __future__ import annotations

import logging
import math
import os

import numpy as np

from . import kernels
from .collapse import collapse_sums
from .resample import (
    KERNELS,
    _masked_data_and_variance,
    _taps,
    _translation_filters,
    translate_nearest,
    translate_parts,
)

__all__ = ["accumulate_translated", "finish_weighted_mean", "implementation_in_use", "usable_sums"]

log = logging.getLogger(__name__)


def implementation_in_use():
    """``"compiled"`` or ``"numpy"``: what the passes run with by default now (logged at INFO).

    As ``JWST_IFUALIGN_KERNELS`` says; raises what
    :func:`jwst_ifualign.algorithms.kernels.selected` raises.
    """
    name = kernels.selected()
    log.info(
        "Per-voxel passes ran with %s (%s=%s; auto, compiled or numpy)",
        "the compiled kernels" if name == "compiled" else "numpy",
        kernels.ENVIRONMENT_VARIABLE,
        os.environ.get(kernels.ENVIRONMENT_VARIABLE) or "auto",
    )
    return name


def _usable(data, err, dq, do_not_use, positive_err):
    """Usable voxels: finite data and error, error > 0 (or >= 0), DQ without ``do_not_use``."""
    with np.errstate(invalid="ignore"):
        ok = (err > 0) if positive_err else (err >= 0)  # False for NaN
        ok &= err < np.inf
    ok &= np.isfinite(data)
    ok &= (dq & np.uint32(do_not_use)) == 0
    return ok


#: Fraction of a member's spaxels that are usable in some planes and not others above which
#: the numpy path translates whole planes (:func:`_translate_planes`) rather than calling
#: translate_parts (measured: per-voxel spaxels cost translate_parts about 0.4 ms each over
#: 3600 planes; whole planes cost about 2.3 times its time on a clean cube, 50 x 50 spaxels).
_MIXED_SPAXELS = 0.1


def _translate_planes(data, err, valid, shift, out_shape, *, kernel):
    """:func:`~jwst_ifualign.algorithms.resample.translate_parts` by whole-plane filters only.

    The same rule (bicubic where the 16 neighbours are usable, else bilinear of the usable ones
    renormalised; valid where the nearest input voxel is usable and the bilinear weight > 0),
    with every quantity, the usable-neighbour counts included, filtered over all planes as band
    matrix products; no per-voxel gathers, so it costs the same whatever the defects.
    """
    shift = (float(shift[0]), float(shift[1]))
    in_shape, out_shape = tuple(data.shape[1:]), tuple(out_shape)
    usable = valid.astype(np.float32)
    d, v = _masked_data_and_variance(data, err, valid)
    lin, lin_sq, _ = _translation_filters("bilinear", shift, in_shape, out_shape)
    weight = lin(usable)
    use = translate_nearest(valid, shift, out_shape, False) & (weight > 0)
    with np.errstate(divide="ignore"):
        inverse = np.where(use, np.float32(1) / weight, np.float32(0))
    data_out = lin(d)
    data_out *= inverse
    var_out = lin_sq(v)
    var_out *= inverse
    var_out *= inverse
    if kernel == "bicubic":
        cub, cub_sq, cub_count = _translation_filters("bicubic", shift, in_shape, out_shape)
        full = cub_count(usable) > 15.5
        np.copyto(data_out, cub(d), where=full)
        np.copyto(var_out, cub_sq(v), where=full)
    data_out *= use
    var_out[~use] = np.inf
    return data_out, var_out, use


def _words(array, dtype):
    """(uint32 view, swap) of ``array`` as 32-bit words of ``dtype`` (float32 or uint32)."""
    array = np.asarray(array)
    if array.dtype.newbyteorder("=") != np.dtype(dtype):
        array = array.astype(dtype)
    array = np.ascontiguousarray(array)
    return array.view(np.uint32), not array.dtype.isnative


def _cube_words(data, err, dq):
    """``(data, err, dq, swap_data, swap_err, swap_dq)`` as the kernels take them."""
    (d, swap_d), (e, swap_e), (q, swap_q) = (
        _words(data, np.float32),
        _words(err, np.float32),
        _words(dq, np.uint32),
    )
    return d, e, q, swap_d, swap_e, swap_q


def accumulate_translated(members, total, flags, *, kernel, do_not_use, keep, implementation=None):
    """Translate blocks of planes of several members and add them to running sums, in place.

    Parameters
    ----------
    members : list of tuple
        ``(data, err, dq, shift)`` per member: ``data`` and ``err`` (float32) and ``dq`` (uint32)
        of shape (nwave, ny_in, nx_in), any byte order, the same ``nwave`` as ``total``;
        ``shift = (tx, ty)``: output pixel (x, y) samples the member at (x + tx, y + ty) (the
        convention of :func:`~jwst_ifualign.algorithms.resample.translate_parts`).
    total : WeightedMean
        Running sums of shape (nwave, ny_out, nx_out); at every valid output voxel of a member,
        ``wsum += 1/var``, ``dsum += d/var`` and ``count += 1``.
    flags : ndarray of uint32, shape (nwave, ny_out, nx_out)
        Output DQ, OR-ed with ``dq & keep`` of the nearest input voxel at every valid output voxel.
    kernel : {"bicubic", "bilinear"}
    do_not_use, keep : int
        DQ bit of unusable voxels; DQ bits carried to the output.
    implementation : {"auto", "compiled", "numpy"}, optional
        Compiled kernels or numpy; None (default): as ``JWST_IFUALIGN_KERNELS`` says
        (:func:`jwst_ifualign.algorithms.kernels.selected`).
    """
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {', '.join(KERNELS)}; got {kernel!r}")
    nwave = total.wsum.shape[0]
    for data, err, dq, _ in members:
        shapes = {np.shape(data), np.shape(err), np.shape(dq)}
        shape = shapes.pop()
        if shapes or len(shape) != 3 or shape[0] != nwave or 0 in shape[1:]:
            raise ValueError(
                "data, err and dq of a member must have one non-empty shape, with the output's "
                "number of planes"
            )
    if kernels.selected(implementation) == "numpy":
        for data, err, dq, shift in members:
            valid = _usable(data, err, dq, do_not_use, positive_err=True)
            out_shape = total.wsum.shape[1:]
            # translate_parts is fastest where usability does not change with wavelength; it
            # takes a per-voxel path for the other spaxels, slower than whole planes when many.
            mixed = valid.any(axis=0) & ~valid.all(axis=0)
            translate = _translate_planes if mixed.mean() > _MIXED_SPAXELS else translate_parts
            data_out, var_out, valid_out = translate(
                data, err, valid, shift, out_shape, kernel=kernel
            )
            total.add(data_out, var_out, valid_out)
            nearest = translate_nearest(np.asarray(dq), shift, out_shape, 0)
            np.bitwise_or(flags, nearest & np.uint32(keep), out=flags, where=valid_out)
        return
    prepared = []
    for data, err, dq, shift in members:
        tx, ty = float(shift[0]), float(shift[1])
        ix, iy = math.floor(tx), math.floor(ty)
        # The taps of resample_cube's kernels at the shift's fractional part.
        (_, wx), (_, wy) = _taps("bicubic", tx - ix), _taps("bicubic", ty - iy)
        (_, lx), (_, ly) = _taps("bilinear", tx - ix), _taps("bilinear", ty - iy)
        nearest = (math.floor(tx + 0.5), math.floor(ty + 0.5))
        prepared.append((*_cube_words(data, err, dq), ix, iy, *nearest, wx, wy, lx, ly))
    kernels.compiled_module().accumulate_translations(
        prepared,
        kernel == "bicubic",
        int(do_not_use),
        int(keep),
        total.wsum,
        total.dsum,
        total.count,
        flags,
    )


def finish_weighted_mean(total, flags, *, fill, implementation=None):
    """:meth:`WeightedMean.result` and the DQ of uncovered voxels, in one pass, in place.

    Parameters
    ----------
    total : WeightedMean
        Running sums of shape (nwave, ny, nx), C-contiguous.
    flags : ndarray of uint32, shape (nwave, ny, nx)
        Output DQ; set to ``fill`` where no member contributes.
    fill : int
        DQ of uncovered voxels.
    implementation : {"auto", "compiled", "numpy"}, optional
        Compiled kernels or numpy; None (default): as ``JWST_IFUALIGN_KERNELS`` says
        (:func:`jwst_ifualign.algorithms.kernels.selected`).

    Returns
    -------
    data, err, count
        As :meth:`WeightedMean.result`: ``data`` and ``err`` are ``total.dsum`` and ``total.wsum``,
        overwritten (NaN where uncovered); call once.
    """
    arrays = (total.dsum, total.wsum, total.count, flags)
    if not all(a.flags.c_contiguous and a.shape == total.dsum.shape for a in arrays):
        raise ValueError("the running sums and flags must be C-contiguous arrays of one shape")
    if kernels.selected(implementation) == "numpy":
        result = total.result()
        flags[result[2] == 0] = fill
        return result
    kernels.compiled_module().finish(*(a.reshape(-1) for a in arrays), int(fill))
    return total.dsum, total.wsum, total.count


def usable_sums(data, err, dq, *, do_not_use, positive_err=False, implementation=None):
    """Per-spaxel sums over wavelength of usable data, squared errors and usable planes.

    The same sums as :func:`~jwst_ifualign.algorithms.collapse.collapse_sums` with
    ``valid = valid_voxels(...)``, in one pass.

    Parameters
    ----------
    data, err : ndarray of float32, shape (nwave, ny, nx)
    dq : ndarray of uint32, shape (nwave, ny, nx)
    do_not_use : int
        DQ bit of unusable voxels.
    positive_err : bool
        Require ``err > 0`` (else ``err >= 0``).
    implementation : {"auto", "compiled", "numpy"}, optional
        Compiled kernels or numpy; None (default): as ``JWST_IFUALIGN_KERNELS`` says
        (:func:`jwst_ifualign.algorithms.kernels.selected`).

    Returns
    -------
    dsum, e2sum : ndarray of float64, shape (ny, nx)
    n : ndarray of int64, shape (ny, nx)
    """
    if kernels.selected(implementation) == "numpy":
        dsum, e2sum, n = collapse_sums(data, err, _usable(data, err, dq, do_not_use, positive_err))
        return dsum, e2sum, n.astype(np.int64, copy=False)
    ny, nx = data.shape[1:]
    dsum, e2sum = np.zeros((ny, nx)), np.zeros((ny, nx))
    n = np.zeros((ny, nx), np.int64)
    kernels.compiled_module().usable_sums(
        *_cube_words(data, err, dq), int(do_not_use), bool(positive_err), dsum, e2sum, n
    )
    return dsum, e2sum, n
