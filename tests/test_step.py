"""The ifu_align Step as users run it: strun (offline), Step.call, parameter files, outputs."""

import sys
from pathlib import Path

import asdf
import numpy as np
import pytest
from astropy.table import Table
from helpers import file_digests, run_strun
from jwst.datamodels import ModelContainer
from stdatamodels.jwst import datamodels

from jwst_ifualign import IFUAlignStep, ParameterError
from jwst_ifualign.integration import get_steps
from jwst_ifualign.parameter_files import parameter_file_tree, step_defaults

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "config"


def product_files(folder, product="sim_ifu"):
    return {
        "cube": Path(folder) / f"{product}_ifualign.fits",
        "ecsv": Path(folder) / f"{product}_ifualign_offsets.ecsv",
        "asdf": Path(folder) / f"{product}_ifualign_offsets.asdf",
    }


def test_entry_point_lists_the_step():
    (class_path, alias, is_pipeline), *_ = get_steps()
    module, name = class_path.rsplit(".", 1)
    cls = getattr(__import__(module, fromlist=[name]), name)
    assert cls is IFUAlignStep and alias == cls.class_alias == "ifu_align" and not is_pipeline


@pytest.mark.parametrize(
    "target", ["ifu_align", "jwst_ifualign.IFUAlignStep", "jwst_ifualign::ifu_align"]
)
def test_strun_offline(target, miri_asn, miri_sim, tmp_path):
    before = file_digests(miri_asn.parent)
    done = run_strun([target, str(miri_asn), f"--output_dir={tmp_path}"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    files = product_files(tmp_path)
    assert all(p.is_file() for p in files.values())
    # The package's own log lines reach strun's output.
    assert "jwst_ifualign.adapter.align - INFO - Member" in done.stderr + done.stdout
    assert file_digests(miri_asn.parent) == before
    table = Table.read(files["ecsv"], format="ascii.ecsv")
    assert table["dx"][2] == pytest.approx(miri_sim.members[2].truth_dx, abs=0.05)


def test_strun_with_parameter_file_and_override(miri_asn, tmp_path):
    done = run_strun(
        [str(CONFIG / "ifu_align.asdf"), str(miri_asn), "--method=dft", f"--output_dir={tmp_path}"],
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    with datamodels.open(product_files(tmp_path)["cube"]) as model:
        assert model.meta.ifu_align.method == "dft"
        assert model.meta.cal_step.ifu_align == "COMPLETE"


def test_call_on_association_saves_named_outputs(miri_asn, miri_sim, tmp_path):
    result = IFUAlignStep.call(str(miri_asn), method="chi2", save_results=True, output_dir=str(tmp_path))
    files = product_files(tmp_path)
    assert all(p.is_file() for p in files.values())
    assert result.meta.cal_step.ifu_align == "COMPLETE"
    with datamodels.open(files["cube"]) as saved:
        assert isinstance(saved, datamodels.IFUCubeModel)
        assert saved.data.shape == miri_sim.members[0].model.data.shape
        members = saved.meta.ifu_align.instance["members"]
        assert members[2]["dx"] == pytest.approx(miri_sim.members[2].truth_dx, abs=0.05)
        assert saved.meta.wcsinfo.crval1 == miri_sim.members[0].model.meta.wcsinfo.crval1
    table = Table.read(files["ecsv"], format="ascii.ecsv")
    required = {"member", "dx", "dy", "dx_err", "dy_err", "ra_offset", "dec_offset"}
    assert required <= set(table.colnames)
    assert list(table["member"]) == [m.model.meta.filename for m in miri_sim.members]
    # Every flag survives the ECSV round trip (an empty string would come back masked).
    assert list(table["flag"]) == ["reference", "ok", "ok", "ok"]
    assert not getattr(table["flag"], "mask", np.zeros(1, bool)).any()
    good = table[table["flag"] == "ok"]
    assert len(good) == 3 and all(good["applied"])


def test_user_output_file_wins(miri_asn, tmp_path):
    IFUAlignStep.call(str(miri_asn), output_file="mine", output_dir=str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "mine_ifualign.fits",
        "mine_ifualign_offsets.asdf",
        "mine_ifualign_offsets.ecsv",
    ]


def test_call_without_saving_writes_nothing(miri_asn, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = IFUAlignStep.call(str(miri_asn))
    assert isinstance(result, datamodels.IFUCubeModel)
    assert list(tmp_path.iterdir()) == []


def test_call_on_models_and_container(miri_sim, miri_asn):
    models = [m.model for m in miri_sim.members]
    data_before = [m.data.copy() for m in models]
    from_list = IFUAlignStep.call(models)
    with ModelContainer(str(miri_asn)) as container:
        from_container = IFUAlignStep.call(container)
    np.testing.assert_allclose(from_list.data, from_container.data, rtol=1e-5, equal_nan=True)
    for m, d in zip(models, data_before, strict=True):
        np.testing.assert_array_equal(m.data, d)
        assert "ifu_align" not in m.meta.cal_step.instance


def test_offset_file_is_valid_for_cube_build(miri_asn, miri_sim, tmp_path):
    from jwst.cube_build import CubeBuildStep

    IFUAlignStep.call(str(miri_asn), save_results=True, output_dir=str(tmp_path))
    path = product_files(tmp_path)["asdf"]
    schema = Path(sys.modules["jwst.cube_build"].__file__).parent / "ifuoffset.schema.yaml"
    with asdf.open(path, custom_schema=schema) as af:
        assert af.tree["units"] == "arcsec"
        assert af.tree["filename"][0].endswith("_cal.fits")

    class Stub:  # the calibrated exposures cube_build would see in calwebb_spec3
        def __init__(self, name):
            self.meta = type("meta", (), {"filename": name})()

    cal = [Stub(n) for n in af_names(path)]
    offsets = CubeBuildStep(offset_file=str(path)).check_offset_file(cal)
    assert offsets["raoffset"][2].to_value("arcsec") == pytest.approx(
        miri_sim.members[2].truth_ra_offset, abs=0.005
    )
    assert offsets["decoffset"][2].to_value("arcsec") == pytest.approx(
        miri_sim.members[2].truth_dec_offset, abs=0.005
    )


def af_names(path):
    with asdf.open(path) as af:
        return list(af.tree["filename"])


def test_parameter_files_match_spec():
    """The committed config/ files are what parameter_files.py generates from the spec."""
    from jwst_ifualign.algorithms.registration import METHODS

    files = [CONFIG / "ifu_align.asdf", *(CONFIG / f"ifu_align_{m}.asdf" for m in METHODS)]
    assert all(f.is_file() for f in files)
    defaults = step_defaults()
    for path in files:
        with asdf.open(path) as af:
            tree = {k: af.tree[k] for k in ("class", "name", "parameters")}
        method = tree["parameters"]["method"]
        overrides = {} if path.name == "ifu_align.asdf" else {"method": method}
        assert tree == parameter_file_tree(**overrides), path.name
        assert set(tree["parameters"]) == set(defaults)
        step = IFUAlignStep.from_config_file(str(path))
        assert step.method == method


def test_single_member_is_passed_through_as_skipped(miri_sim):
    model = miri_sim.members[0].model
    result = IFUAlignStep.call([model])
    assert result.meta.cal_step.ifu_align == "SKIPPED"
    np.testing.assert_array_equal(result.data, model.data)
    assert result is not model
    assert not np.shares_memory(result.data, model.data)


def test_offsets_applied_as_cube_build_does_put_member_source_on_reference(tmp_path):
    """Signs of the offset file: the member's source, moved as cube_build moves it, lands on the
    reference's source (both positions measured on the data, through each cube's own WCS)."""
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    from jwst_ifualign.algorithms.quality import point_source_fwhm, white_light
    from jwst_ifualign.testing.simulate import simulate_association, write_association

    sim = simulate_association(shape=(60, 35, 37), snr=100.0, errors_arcsec=((0, 0), (0.12, -0.09)), n_members=2)
    asn = write_association(sim, tmp_path / "data")
    IFUAlignStep.call(str(asn), save_results=True, output_dir=str(tmp_path / "out"))
    with asdf.open(product_files(tmp_path / "out")["asdf"]) as af:
        ra_off, dec_off = af.tree["raoffset"][1], af.tree["decoffset"][1]

    def source_on_sky(model):
        _, x, y = point_source_fwhm(white_light(model.data))
        ra, dec, _ = model.meta.wcs(x, y, 0)
        return SkyCoord(ra * u.deg, dec * u.deg)

    ref_source = source_on_sky(sim.members[0].model)
    member_source = source_on_sky(sim.members[1].model)
    assert member_source.separation(ref_source).to_value(u.arcsec) > 0.1  # misaligned before
    moved = member_source.spherical_offsets_by(ra_off * u.arcsec, dec_off * u.arcsec)
    assert moved.separation(ref_source).to_value(u.arcsec) < 0.005  # aligned after


def test_no_state_kept_between_process_and_save(miri_asn, tmp_path):
    """process writes the side files; the cube carries what save_model needs, so another step
    instance saves it under the same name, and the step keeps no attributes of its own."""
    from jwst.stpipe import Step as BareStep

    class PassThrough(BareStep):
        spec = ""

        def process(self, x):
            return x

    bare = PassThrough()
    bare_before = set(vars(bare))
    with ModelContainer(str(miri_asn)) as container:
        bare.run(container)
    stpipe_attributes = set(vars(bare)) - bare_before

    step = IFUAlignStep(save_results=True, output_dir=str(tmp_path))
    before = set(vars(step))
    model = step.run(str(miri_asn))
    assert set(vars(step)) - before <= stpipe_attributes
    files = product_files(tmp_path)
    assert all(p.is_file() for p in files.values())

    other = tmp_path / "other"
    step = IFUAlignStep(save_results=True, output_dir=str(other))
    model = step.process(str(miri_asn))
    assert sorted(p.name for p in other.iterdir()) == [
        "sim_ifu_ifualign_offsets.asdf",
        "sim_ifu_ifualign_offsets.ecsv",
    ]
    assert model.meta.filename == "sim_ifu.fits"
    saved = IFUAlignStep(save_results=True, output_dir=str(other)).save_model(model)
    assert Path(saved) == product_files(other)["cube"]
    again = IFUAlignStep(save_results=True, output_dir=str(other)).save_model(model)
    assert again == saved  # the saved name gives back the product's


def test_output_never_takes_an_input_name(miri_sim, tmp_path):
    models = [m.model for m in miri_sim.members]
    name = models[0].meta.filename.removesuffix(".fits")
    with pytest.raises(ParameterError, match="would have the name of the input file"):
        IFUAlignStep.call(models, output_file=name, suffix="s3d", output_dir=str(tmp_path))
    assert list(tmp_path.iterdir()) == []
