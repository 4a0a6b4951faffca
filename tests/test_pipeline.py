"""calwebb_ifualign (IFUAlignPipeline) offline, and the stock calwebb_spec3 post-hook route.

No test reaches CRDS for data: extract_1d runs with override reference files made here. One test
(a canary) shows why the pipeline runs extract_1d as OfflineExtract1dStep: jwst's own
finalize_result asks CRDS for a context even when every reference file was overridden, which
exits the process offline.
"""

from pathlib import Path

import asdf
import numpy as np
import pytest
from helpers import MIRI_SMALL, file_digests, run_strun, small_association
from jwst.cube_build import CubeBuildStep
from jwst.datamodels import ModelContainer
from jwst.extract_1d import Extract1dStep
from stdatamodels.jwst import datamodels

from jwst_ifualign.pipeline import (
    PIPELINE_PARAMETER_FILE,
    IFUAlignPipeline,
    OfflineExtract1dStep,
    pipeline_parameter_tree,
    product_name,
)
from jwst_ifualign.step import IFUAlignStep
from jwst_ifualign.testing.simulate import write_association

REPO = Path(__file__).resolve().parents[1]
CONFIG_FILE = REPO / "config" / PIPELINE_PARAMETER_FILE
PIPELINE = "jwst_ifualign.pipeline.IFUAlignPipeline"
APCORR = 1.25


@pytest.fixture(scope="module")
def asn(tmp_path_factory):
    """Association of small MIRI-like cubes with DISPAXIS set, as real s3d cubes have it.

    extract_1d needs ``meta.wcsinfo.dispersion_direction`` to convert a point-source aperture
    from arcsec to spaxels.
    """
    sim = small_association()
    for member in sim.members:
        member.model.meta.wcsinfo.dispersion_direction = 2
    return write_association(sim, tmp_path_factory.mktemp("pipeline_asn"))


@pytest.fixture(scope="module")
def refs(tmp_path_factory):
    """Small EXTRACT1D (IFU) and MIRI MRS APCORR override reference files."""
    folder = tmp_path_factory.mktemp("refs")
    wave = np.linspace(4.5, 6.0, 5).astype(np.float32)
    common = {
        "telescope": "JWST",
        "author": "jwst_ifualign tests",
        "pedigree": "DUMMY",
        "useafter": "2020-01-01T00:00:00",
        "description": "test override",
    }
    x1d = datamodels.Extract1dIFUModel()
    x1d.meta.instance.update({**common, "reftype": "EXTRACT1D"})
    x1d.meta.instrument.name = "MIRI"
    x1d.meta.exposure.type = "MIR_MRS"
    x1d.meta.region_type = "target"
    x1d.meta.subtract_background = False
    x1d.meta.method = "exact"
    x1d.meta.subpixels = 10
    ones = np.ones_like(wave)
    x1d.data = {
        "wavelength": wave,
        "wavelength_units": "micron",
        "radius": 0.5 * ones,
        "radius_units": "arcsec",
        "inner_bkg": 1.0 * ones,
        "inner_bkg_units": "arcsec",
        "outer_bkg": 1.5 * ones,
        "outer_bkg_units": "arcsec",
        "axis_ratio": ones,
        "axis_pa": 0.0 * ones,
        "axis_pa_units": "deg",
    }
    apcorr = datamodels.MirMrsApcorrModel()
    apcorr.meta.instance.update({**common, "reftype": "APCORR"})
    apcorr.meta.instrument.name = "MIRI"
    apcorr.meta.exposure.type = "MIR_MRS"
    apcorr.apcorr_table = {
        "channel": "ANY",
        "band": "ANY",
        "wavelength": wave,
        "wavelength_units": "micron",
        "radius": np.repeat(np.array([[0.2], [0.5], [0.8]], np.float32), wave.size, axis=1),
        "radius_units": "arcsec",
        "apcorr": np.full((3, wave.size), APCORR, np.float32),
        "apcorr_err": np.zeros((3, wave.size), np.float32),
    }
    paths = {"extract1d": folder / "extract1d.asdf", "apcorr": folder / "apcorr.asdf"}
    # extract_1d reads the IFU table after closing the file: store arrays inline.
    x1d.save(paths["extract1d"], all_array_storage="inline")
    apcorr.save(paths["apcorr"], all_array_storage="inline")
    return paths


def offline_extract_args(refs):
    return [
        "--steps.extract_1d.skip=false",
        f"--steps.extract_1d.override_extract1d={refs['extract1d']}",
        "--steps.extract_1d.override_psf=N/A",
        "--steps.extract_1d.apply_apcorr=false",
        "--steps.extract_1d.ifu_rfcorr=false",
    ]


def test_parameter_file_matches_generator():
    with asdf.open(CONFIG_FILE) as af:
        tree = {k: af.tree[k] for k in ("class", "name", "parameters", "steps")}
    assert tree == pipeline_parameter_tree()
    pipe = IFUAlignPipeline.from_config_file(str(CONFIG_FILE))
    assert type(pipe.ifu_align) is IFUAlignStep and type(pipe.extract_1d) is OfflineExtract1dStep
    assert issubclass(OfflineExtract1dStep, Extract1dStep)
    assert pipe.extract_1d.skip is True
    assert pipe.ifu_align.method == IFUAlignStep().method


def test_product_name(asn):
    assert product_name(str(asn)) == "sim_ifu"
    with ModelContainer(str(asn)) as container:
        assert product_name(container) == "sim_ifu"
        assert product_name(list(container)) == container[0].meta.filename.removesuffix("_s3d.fits")
    assert product_name(["a/jw1_s3d.fits", "a/jw2_s3d.fits"]) == "jw1"
    assert product_name(str(asn.with_name("missing.json"))) is None


def test_reference_file_types_are_those_of_an_ifu_extraction():
    pipe = IFUAlignPipeline()
    assert sorted(pipe.reference_file_types) == ["apcorr", "extract1d", "psf"]
    pipe.extract_1d.apply_apcorr = False
    assert sorted(pipe.reference_file_types) == ["extract1d", "psf"]
    pipe.extract_1d.skip = True
    assert pipe.reference_file_types == []


def test_strun_offline_extract_1d_skipped_substep_parameter(asn, tmp_path):
    before = file_digests(asn.parent)
    done = run_strun(
        [
            PIPELINE,
            str(asn),
            "--steps.extract_1d.skip=true",
            "--steps.ifu_align.method=dft",
            f"--output_dir={tmp_path}",
        ],
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "sim_ifu_ifualign.fits",
        "sim_ifu_ifualign_offsets.asdf",
        "sim_ifu_ifualign_offsets.ecsv",
    ]
    with datamodels.open(tmp_path / "sim_ifu_ifualign.fits") as cube:
        assert cube.meta.ifu_align.method == "dft"
        assert cube.meta.cal_step.ifu_align == "COMPLETE"
    log = done.stderr + done.stdout
    assert "jwst_ifualign.pipeline - INFO - Starting calwebb_ifualign" in log
    assert "jwst_ifualign.adapter.align - INFO - Member" in log
    assert file_digests(asn.parent) == before


def test_strun_parameter_file_runs_offline(asn, tmp_path):
    done = run_strun([str(CONFIG_FILE), str(asn), f"--output_dir={tmp_path}"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "sim_ifu_ifualign.fits").is_file()
    assert not (tmp_path / "sim_ifu_x1d.fits").exists()


def test_strun_extract_1d_with_override_reference_files(asn, refs, tmp_path):
    done = run_strun(
        [str(CONFIG_FILE), str(asn), *offline_extract_args(refs), f"--output_dir={tmp_path}"],
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "sim_ifu_ifualign.fits").is_file()
    with datamodels.open(tmp_path / "sim_ifu_x1d.fits") as x1d:
        assert isinstance(x1d, datamodels.MRSMultiSpecModel)
        assert x1d.meta.cal_step.extract_1d == "COMPLETE"
        assert x1d.meta.cal_step.ifu_align == "COMPLETE"  # provenance carried by the pipeline
        assert x1d.meta.ifu_align.instance["members"][2]["dx"] == pytest.approx(0.65, abs=0.05)
        assert x1d.meta.ref_file.extract1d.name == str(refs["extract1d"])
        assert x1d.meta.ref_file.crds.context_used is None
        flux = np.asarray(x1d.spec[0].spec_table["FLUX"])
        assert flux.size == MIRI_SMALL[0] and np.all(np.isfinite(flux)) and np.all(flux > 0)


def test_call_applies_override_aperture_correction(asn, refs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    common = {
        "override_extract1d": str(refs["extract1d"]),
        "override_psf": "N/A",
        "override_apcorr": str(refs["apcorr"]),
        "ifu_set_srctype": "POINT",
        "ifu_rfcorr": False,
    }
    flux = {}
    for apply in (False, True):
        x1d = IFUAlignPipeline.call(
            str(asn), steps={"extract_1d": {**common, "apply_apcorr": apply}}
        )
        assert isinstance(x1d, datamodels.MRSMultiSpecModel)
        assert x1d.spec[0].source_type == "POINT"
        flux[apply] = np.asarray(x1d.spec[0].spec_table["FLUX"], float)
    np.testing.assert_allclose(flux[True] / flux[False], APCORR, rtol=1e-5)
    assert list(tmp_path.iterdir()) == []  # Step.call does not save by default


def test_user_output_file_wins_and_is_not_kept(asn, tmp_path):
    pipe = IFUAlignPipeline(output_dir=str(tmp_path), save_results=True)
    pipe.extract_1d.skip = True
    result = pipe.run(str(asn))
    assert isinstance(result, datamodels.IFUCubeModel)
    assert result.meta.cal_step.extract_1d == "SKIPPED"
    assert pipe.output_file is None  # the product name is not kept for the next run
    IFUAlignPipeline.call(
        str(asn),
        output_file="mine",
        output_dir=str(tmp_path),
        steps={"extract_1d": {"skip": True}},
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "mine_ifualign.fits",
        "mine_ifualign_offsets.asdf",
        "mine_ifualign_offsets.ecsv",
        "sim_ifu_ifualign.fits",
        "sim_ifu_ifualign_offsets.asdf",
        "sim_ifu_ifualign_offsets.ecsv",
    ]


def test_offline_without_overrides_fails_before_any_work(asn, tmp_path):
    done = run_strun([PIPELINE, str(asn), f"--output_dir={tmp_path}"], cwd=tmp_path)
    assert done.returncode != 0
    log = done.stderr + done.stdout
    assert "--steps.extract_1d.skip=true" in log and "override_extract1d" in log
    assert list(tmp_path.iterdir()) == []


def test_canary_stock_extract_1d_asks_crds_even_with_overrides(asn, refs):
    """jwst 3.0: JwstStep.finalize_result asks CRDS for its context whenever a reference file
    was used, overridden or not; offline that exits. If this test fails, jwst has stopped doing
    so and the pipeline's OfflineExtract1dStep can be replaced by jwst's Extract1dStep."""
    with ModelContainer(str(asn)) as container:
        cube = container[0]
        step = Extract1dStep(
            override_extract1d=str(refs["extract1d"]),
            override_psf="N/A",
            apply_apcorr=False,
            ifu_rfcorr=False,
        )
        with pytest.raises(SystemExit):
            step.run(cube)


# The stock calwebb_spec3 route: ifu_align as a post-hook of cube_build. spec3 itself cannot run
# offline (CRDS references for every step, and cal files with assign_wcs WCS), so these tests run
# the hook exactly as stpipe builds it from --steps.cube_build.post_hooks.


def test_post_hook_from_string_parentage():
    cube_build = CubeBuildStep(
        output_dir="spec3_out",
        post_hooks=[
            "jwst_ifualign.step.IFUAlignStep",
            "jwst_ifualign.step.IFUAlignStep(method='dft')",
        ],
    )
    by_class, with_args = cube_build._post_hooks
    # A class path gets cube_build as parent: it inherits output_dir (and output_file).
    assert isinstance(by_class, IFUAlignStep) and by_class.parent is cube_build
    assert by_class.search_attr("output_dir") == "spec3_out"
    # "Class(arguments)" is instantiated without a parent: nothing is inherited.
    assert isinstance(with_args, IFUAlignStep) and with_args.parent is None
    assert with_args.method == "dft" and with_args.search_attr("output_dir") is None


def test_post_hook_result_is_not_what_spec3_indexes(asn):
    """spec3 does ``result = cube_build.run(...)`` then ``result[0].meta.cal_step.cube_build``;
    a post-hook's non-None return replaces cube_build's ModelContainer."""
    cube_build = CubeBuildStep(post_hooks=["jwst_ifualign.step.IFUAlignStep"])
    hook = cube_build._post_hooks[0]
    with ModelContainer(str(asn)) as container:
        # Per-exposure cubes (what spec2 writes): aligned, but an IFUCubeModel, not a container.
        combined = hook.run(container)
        assert isinstance(combined, datamodels.IFUCubeModel)
        assert not isinstance(combined, ModelContainer)
        assert combined.meta.cal_step.ifu_align == "COMPLETE"
        # What spec3's cube_build gives the hook: one cube per band, already drizzled from all
        # exposures. Nothing to align: passed through as SKIPPED.
        one_band = hook.run(ModelContainer([container[0]]))
        assert one_band.meta.cal_step.ifu_align == "SKIPPED"
