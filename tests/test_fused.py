"""Both implementations of the per-voxel passes give what the numpy reference rules give.

Every test runs with ``implementation="numpy"`` and ``"compiled"`` (skipped where the compiled
kernels are not built).
``accumulate_translated`` must add to a weighted mean exactly what ``resample_cube`` (the
per-voxel reference rule) gives for a translation footprint, and ``usable_sums`` what
``collapse_sums`` gives over ``valid_voxels``, on cube_build-like cubes with NaN footprint
edges, scattered NaN and DO_NOT_USE voxels and zero errors, for shifts of both signs on odd and
even sizes, and for big-endian (FITS) arrays.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import small_association

from jwst_ifualign.adapter.results import DO_NOT_USE, NON_SCIENCE, valid_voxels
from jwst_ifualign.algorithms import kernels
from jwst_ifualign.algorithms.collapse import collapse_sums
from jwst_ifualign.algorithms.combine import WeightedMean
from jwst_ifualign.algorithms.fused import (
    accumulate_translated,
    finish_weighted_mean,
    usable_sums,
)
from jwst_ifualign.algorithms.resample import bilinear_footprint, resample_cube
from jwst_ifualign.testing.simulate import MIRI_CH1, make_cube, write_association

KEEP = np.uint32(~np.uint32(DO_NOT_USE | NON_SCIENCE))


@pytest.fixture(params=["numpy", "compiled"])
def implementation(request):
    if request.param == "compiled" and kernels.compiled_module() is None:
        pytest.skip("the compiled kernels are not built")
    return request.param


def _member(shape, seed):
    """A cube_build-like cube with the defects the kernels must handle."""
    model = make_cube(setup=MIRI_CH1, shape=shape, snr=30.0, rng=np.random.default_rng(seed))
    rng = np.random.default_rng(seed + 1)
    model.data[rng.random(shape) < 0.01] = np.nan  # scattered NaN
    model.data[5:9, shape[1] // 2, 3:7] = np.nan  # a hole over a few planes
    model.dq[rng.random(shape) < 0.01] |= DO_NOT_USE
    model.dq[rng.random(shape) < 0.02] |= 4  # a bit the output keeps (JUMP_DET-like)
    model.err[rng.random(shape) < 0.005] = 0.0  # no usable weight
    return model


def _reference_sums(model, shift, out_shape, kernel):
    """(wsum, dsum, count, flags) from the reference rule (resample_cube) and WeightedMean."""
    valid = valid_voxels(model, 0, model.data.shape[0], positive_err=True)
    yy, xx = np.mgrid[: out_shape[0], : out_shape[1]].astype(float)
    footprint = bilinear_footprint(xx + shift[0], yy + shift[1], model.data.shape[1:])
    d, e, v = resample_cube(model.data, model.err, valid, footprint, kernel=kernel)
    total = WeightedMean(d.shape)
    total.add(
        np.where(v, d, 0).astype(np.float32), np.where(v, e * e, np.inf).astype(np.float32), v
    )
    flags = np.zeros(d.shape, np.uint32)
    nearest = np.where(footprint.nearest >= 0, footprint.nearest, 0)
    dq = model.dq.reshape(model.dq.shape[0], -1)[:, nearest].reshape(d.shape)
    np.bitwise_or(flags, dq & KEEP, out=flags, where=v)
    return total, flags


def _fused_sums(members, out_shape, kernel, implementation):
    nwave = members[0][0].shape[0]
    total = WeightedMean((nwave, *out_shape))
    flags = np.zeros((nwave, *out_shape), np.uint32)
    accumulate_translated(
        members,
        total,
        flags,
        kernel=kernel,
        do_not_use=DO_NOT_USE,
        keep=KEEP,
        implementation=implementation,
    )
    return total, flags


def _assert_same(fused, reference):
    (total, flags), (ref_total, ref_flags) = fused, reference
    np.testing.assert_array_equal(total.count, ref_total.count)
    np.testing.assert_array_equal(flags, ref_flags)
    scale = np.where(ref_total.wsum > 0, ref_total.wsum, 1)
    # float32 sums in another order (rows then columns; reciprocal vs division): ~1e-6.
    np.testing.assert_allclose(total.wsum / scale, ref_total.wsum / scale, atol=1e-5)
    np.testing.assert_allclose(total.dsum / scale, ref_total.dsum / scale, atol=1e-4)


@pytest.mark.parametrize("kernel", ["bicubic", "bilinear"])
@pytest.mark.parametrize("shape", [(12, 25, 27), (12, 24, 26)])
@pytest.mark.parametrize(
    "shift", [(0.37, -1.21), (-2.6, 0.5), (1.0, -3.0), (-0.5, -0.5), (0.0, 0.0), (4.83, 2.17)]
)
def test_translation_matches_the_reference_rule(kernel, shape, shift, implementation):
    model = _member(shape, seed=3)
    out_shape = shape[1:]
    fused = _fused_sums(
        [(model.data, model.err, model.dq, shift)], out_shape, kernel, implementation
    )
    _assert_same(fused, _reference_sums(model, shift, out_shape, kernel))
    assert fused[0].count.sum() > 0.5 * np.isfinite(model.data).sum()


@pytest.mark.parametrize("kernel", ["bicubic", "bilinear"])
@pytest.mark.parametrize("shape", [(12, 25, 27), (12, 24, 26)])
@pytest.mark.parametrize("shift", [(0.37, -1.21), (-2.6, 0.5)])
def test_member_without_scattered_defects_matches_the_reference_rule(
    kernel, shape, shift, implementation
):
    """Usability constant along wavelength but for a few spaxels: the numpy path's
    translate_parts branch (the other tests' 1% scattered defects take its whole-plane one)."""
    model = make_cube(setup=MIRI_CH1, shape=shape, snr=30.0, rng=np.random.default_rng(9))
    model.data[5:9, shape[1] // 2, 3:7] = np.nan  # a hole over a few planes: 4 mixed spaxels
    model.dq[:, 2, 4] |= DO_NOT_USE
    fused = _fused_sums(
        [(model.data, model.err, model.dq, shift)], shape[1:], kernel, implementation
    )
    _assert_same(fused, _reference_sums(model, shift, shape[1:], kernel))


@pytest.mark.parametrize("out_shape", [(30, 25), (20, 33)])
def test_output_grid_of_another_size(out_shape, implementation):
    """The union grid: larger or smaller than the member, in either axis."""
    model = _member((10, 25, 27), seed=5)
    shift = (-2.3, 1.6)
    fused = _fused_sums(
        [(model.data, model.err, model.dq, shift)], out_shape, "bicubic", implementation
    )
    _assert_same(fused, _reference_sums(model, shift, out_shape, "bicubic"))


def test_identity_is_exact(implementation):
    """Shift (0, 0) returns the usable voxels themselves: weight 1/err**2, data unchanged."""
    model = _member((8, 25, 27), seed=7)
    total, flags = _fused_sums(
        [(model.data, model.err, model.dq, (0.0, 0.0))], (25, 27), "bicubic", implementation
    )
    valid = valid_voxels(model, 0, 8, positive_err=True)
    np.testing.assert_array_equal(total.count, valid)
    weight = np.float32(1) / model.err[valid] ** 2
    np.testing.assert_array_equal(total.wsum[valid], weight)
    np.testing.assert_array_equal(total.dsum[valid], weight * model.data[valid])
    np.testing.assert_array_equal(flags[valid], model.dq[valid] & KEEP)


def test_several_members_in_one_pass_equal_one_at_a_time(implementation):
    members = [
        (m.data, m.err, m.dq, s)
        for m, s in [
            (_member((10, 25, 27), seed=11), (0.0, 0.0)),
            (_member((10, 25, 27), seed=12), (0.41, -0.77)),
            (_member((10, 23, 29), seed=13), (-1.35, 2.2)),  # another input size
        ]
    ]
    together = _fused_sums(members, (25, 27), "bicubic", implementation)
    total, flags = WeightedMean((10, 25, 27)), np.zeros((10, 25, 27), np.uint32)
    for member in members:
        accumulate_translated(
            [member],
            total,
            flags,
            kernel="bicubic",
            do_not_use=DO_NOT_USE,
            keep=KEEP,
            implementation=implementation,
        )
    np.testing.assert_array_equal(together[0].wsum, total.wsum)
    np.testing.assert_array_equal(together[0].dsum, total.dsum)
    np.testing.assert_array_equal(together[0].count, total.count)
    np.testing.assert_array_equal(together[1], flags)


def test_big_endian_and_strided_inputs_give_the_same_sums(implementation):
    """FITS arrays are big-endian: read in place, with the same result as native arrays."""
    model = _member((10, 25, 27), seed=17)
    shift = (0.63, -1.42)
    native = _fused_sums(
        [(model.data, model.err, model.dq, shift)], (25, 27), "bicubic", implementation
    )
    big = [(model.data.astype(">f4"), model.err.astype(">f4"), model.dq.astype(">u4"), shift)]
    swapped = _fused_sums(big, (25, 27), "bicubic", implementation)
    doubled = np.repeat(model.data, 2, axis=0)[::2]  # a strided view
    strided = _fused_sums(
        [(doubled, model.err, model.dq, shift)], (25, 27), "bicubic", implementation
    )
    for other in (swapped, strided):
        np.testing.assert_array_equal(other[0].wsum, native[0].wsum)
        np.testing.assert_array_equal(other[0].dsum, native[0].dsum)
        np.testing.assert_array_equal(other[1], native[1])


def test_inconsistent_shapes_are_refused(implementation):
    model = _member((10, 25, 27), seed=19)
    with pytest.raises(ValueError, match="one non-empty shape"):
        _fused_sums(
            [(model.data, model.err[:9], model.dq, (0.5, 0.5))], (25, 27), "bicubic", implementation
        )
    with pytest.raises(ValueError, match="kernel must be one of"):
        _fused_sums(
            [(model.data, model.err, model.dq, (0.5, 0.5))], (25, 27), "lanczos", implementation
        )


@pytest.mark.parametrize("positive_err", [False, True])
@pytest.mark.parametrize("byte_order", ["=", ">"])
def test_usable_sums_equal_collapse_sums(positive_err, byte_order, implementation):
    model = _member((20, 24, 27), seed=23)
    nwave = model.data.shape[0]
    expected = collapse_sums(
        model.data, model.err, valid_voxels(model, 0, nwave, positive_err=positive_err)
    )
    data, err = (a.astype(byte_order + "f4") for a in (model.data, model.err))
    got = usable_sums(
        data,
        err,
        model.dq.astype(byte_order + "u4"),
        do_not_use=DO_NOT_USE,
        positive_err=positive_err,
        implementation=implementation,
    )
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_array_equal(g, e)
    assert got[2].sum() < np.isfinite(model.data).sum()  # the defects were excluded


def test_finish_equals_weighted_mean_result(implementation):
    """The one-pass finish gives WeightedMean.result bit for bit, and marks uncovered voxels."""
    members = [
        (m.data, m.err, m.dq, s)
        for m, s in [
            (_member((10, 25, 27), seed=29), (0.0, 0.0)),
            (_member((10, 25, 27), seed=31), (2.6, -1.3)),
        ]
    ]
    fused, flags = _fused_sums(members, (25, 27), "bicubic", implementation)
    reference = WeightedMean(fused.wsum.shape)
    for name in ("wsum", "dsum", "count"):
        getattr(reference, name)[...] = getattr(fused, name)
    expected = reference.result()
    fill = DO_NOT_USE | NON_SCIENCE
    got = finish_weighted_mean(fused, flags, fill=fill, implementation=implementation)
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_array_equal(g, e)
    uncovered = expected[2] == 0
    assert uncovered.any() and (~uncovered).any()
    assert np.all(flags[uncovered] == fill) and not np.any(flags[~uncovered] & DO_NOT_USE)


# Runs the step once per implementation named on the command line, in one fresh process (the
# variable set as a user would, in that process only); prints one JSON line per run.
_STEP_RUNS = """
import json, logging, os, sys
import numpy as np
from jwst_ifualign import IFUAlignStep

class Lines(logging.Handler):
    def emit(self, record):
        self.lines.append(record.getMessage())

handler = Lines()
logging.getLogger("jwst_ifualign").addHandler(handler)
logging.getLogger("jwst_ifualign").setLevel(logging.INFO)
asn, folder = sys.argv[1:3]
for choice in sys.argv[3:]:
    os.environ["JWST_IFUALIGN_KERNELS"] = choice
    handler.lines = []
    result = IFUAlignStep.call(asn, configure_log=False)
    arrays = dict(data=result.data, err=result.err, dq=result.dq, count=result.weightmap)
    np.savez(os.path.join(folder, choice + ".npz"), **arrays)
    meta = result.meta.ifu_align.instance
    log = [line for line in handler.lines if line.startswith("Per-voxel passes")]
    print(json.dumps({"kernels": meta["kernels"], "members": meta["members"], "log": log}))
"""


def test_step_gives_the_same_result_on_both_paths(tmp_path):
    """IFUAlignStep end to end with JWST_IFUALIGN_KERNELS=numpy and =compiled: the same cube,
    DQ and offsets; which path ran is logged and recorded in meta.ifu_align.kernels."""
    sim = small_association(shape=(40, 35, 37))
    rng = np.random.default_rng(41)
    for member in sim.members[1:3]:  # scattered defects: the per-voxel parts of both paths
        model = member.model
        model.data[rng.random(model.data.shape) < 0.01] = np.nan
        model.dq[rng.random(model.dq.shape) < 0.01] |= DO_NOT_USE
    asn = write_association(sim, tmp_path / "data")
    choices = ["numpy"] + (["compiled"] if kernels.compiled_module() is not None else [])
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRDS")}
    run = subprocess.run(
        [sys.executable, "-c", _STEP_RUNS, str(asn), str(tmp_path), *choices],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    runs = {}
    for choice, line in zip(choices, run.stdout.strip().splitlines()[-len(choices) :], strict=True):
        record = json.loads(line)
        assert record["kernels"] == choice
        name = "the compiled kernels" if choice == "compiled" else "numpy"
        assert len(record["log"]) == 1 and record["log"][0].startswith(
            f"Per-voxel passes ran with {name} (JWST_IFUALIGN_KERNELS={choice}"
        ), record["log"]
        runs[choice] = record, np.load(tmp_path / f"{choice}.npz")
    if len(runs) < 2:
        pytest.skip("the compiled kernels are not built: only the numpy path ran")
    (ref_record, ref), (record, got) = runs["numpy"], runs["compiled"]
    for a, b in zip(ref_record["members"], record["members"], strict=True):
        assert a["dx"] == pytest.approx(b["dx"], abs=1e-6)
        assert a["dy"] == pytest.approx(b["dy"], abs=1e-6)
    np.testing.assert_array_equal(ref["dq"], got["dq"])
    np.testing.assert_array_equal(ref["count"], got["count"])
    np.testing.assert_array_equal(np.isnan(ref["data"]), np.isnan(got["data"]))
    np.testing.assert_allclose(
        got["data"], ref["data"], rtol=1e-5, atol=1e-6 * np.nanmax(ref["data"])
    )
    np.testing.assert_allclose(got["err"], ref["err"], rtol=1e-5, equal_nan=True)


_SELECT = """
import os
from jwst_ifualign.algorithms import kernels
print(kernels.__file__)
for value in ("auto", "", "numpy", "compiled", "fast"):
    os.environ[kernels.ENVIRONMENT_VARIABLE] = value
    try:
        print(repr(value), kernels.selected())
    except (ImportError, ValueError) as error:
        print(repr(value), type(error).__name__, error)
"""


def test_selection_where_the_kernels_are_not_built(tmp_path):
    """A copy of the package without the compiled module: auto and numpy run numpy; compiled
    is an error that says how to build the kernels; an unknown value names the variable."""
    source = Path(kernels.__file__).parents[1]
    shutil.copytree(
        source,
        tmp_path / source.name,
        ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__"),
    )
    run = subprocess.run(
        [sys.executable, "-c", _SELECT],
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        cwd=tmp_path,  # not the source tree, which ``python -c`` would put first on sys.path
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    where, *rest = run.stdout.strip().splitlines()
    assert Path(where).is_relative_to(tmp_path), where  # the copy was imported
    lines = dict(line.split(" ", 1) for line in rest)
    assert lines["'auto'"] == lines["''"] == lines["'numpy'"] == "numpy"
    assert lines["'compiled'"].startswith("KernelsUnavailableError")
    assert (
        "C compiler" in lines["'compiled'"] and "JWST_IFUALIGN_KERNELS=numpy" in lines["'compiled'"]
    )
    assert (
        lines["'fast'"].startswith("ValueError")
        and "JWST_IFUALIGN_KERNELS='fast'" in lines["'fast'"]
    )


def test_implementation_keyword_is_checked():
    with pytest.raises(ValueError, match="implementation must be one of auto, compiled, numpy"):
        kernels.selected("fast")
