"""Bad input gets one clear error naming the file or parameter; nothing is written or changed."""

import json
import shutil

import numpy as np
import pytest
from helpers import file_digests, run_strun, small_association
from stdatamodels.jwst import datamodels

from jwst_ifualign import IFUAlignStep, InputError, ParameterError
from jwst_ifualign.testing.simulate import write_association


@pytest.fixture
def asn_copy(miri_asn, tmp_path):
    """A private copy of the small association that a test may break."""
    folder = tmp_path / "data"
    shutil.copytree(miri_asn.parent, folder)
    return folder / miri_asn.name


def run_and_expect(asn, error, match, tmp_path, **params):
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    before = file_digests(asn.parent)
    with pytest.raises(error, match=match):
        IFUAlignStep.call(str(asn), save_results=True, output_dir=str(out), **params)
    assert list(out.iterdir()) == [], "no output may be written"
    assert file_digests(asn.parent) == before, "inputs must be left unchanged"


def members_of(asn):
    return json.loads(asn.read_text())["products"][0]["members"]


def rewrite(asn, members):
    tree = json.loads(asn.read_text())
    tree["products"][0]["members"] = members
    asn.write_text(json.dumps(tree))


def test_missing_member(asn_copy, tmp_path):
    name = members_of(asn_copy)[2]["expname"]
    (asn_copy.parent / name).unlink()
    run_and_expect(asn_copy, InputError, f"{name} does not exist", tmp_path)


def test_member_not_an_ifu_cube(asn_copy, tmp_path):
    image = datamodels.ImageModel(np.zeros((10, 10), np.float32))
    image.save(asn_copy.parent / "image_cal.fits")
    rewrite(asn_copy, [*members_of(asn_copy), {"expname": "image_cal.fits", "exptype": "science"}])
    run_and_expect(asn_copy, InputError, "image_cal.fits is a ImageModel, not an IFU cube", tmp_path)


def test_truncated_member(asn_copy, tmp_path):
    name = members_of(asn_copy)[1]["expname"]
    path = asn_copy.parent / name
    path.write_bytes(path.read_bytes()[:20000])
    run_and_expect(asn_copy, InputError, f"{name} cannot be read", tmp_path)


def test_different_wavelength_grids(tmp_path):
    sim = small_association(n_members=2)
    other = small_association(n_members=2, tabular=True)  # same range, other sampling
    sim.members[1] = other.members[1]
    sim.members[1].model.meta.filename = "other_s3d.fits"
    asn = write_association(sim, tmp_path / "data")
    run_and_expect(asn, InputError, "other_s3d.fits has a different wavelength grid", tmp_path)


def test_different_number_of_planes(tmp_path):
    sim = small_association(n_members=2)
    sim.members[1] = small_association(n_members=2, shape=(50, 35, 37)).members[1]
    sim.members[1].model.meta.filename = "short_s3d.fits"
    asn = write_association(sim, tmp_path / "data")
    run_and_expect(asn, InputError, "short_s3d.fits has 50 wavelength planes", tmp_path)


def test_empty_association(asn_copy, tmp_path):
    rewrite(asn_copy, [])
    run_and_expect(asn_copy, InputError, "lists no science members", tmp_path)


def test_association_not_json(asn_copy, tmp_path):
    asn_copy.write_text("{ not json")
    run_and_expect(asn_copy, InputError, "is not valid JSON", tmp_path)


def test_reference_out_of_range(asn_copy, tmp_path):
    run_and_expect(asn_copy, ParameterError, "reference=7 is out of range", tmp_path, reference=7)


def test_wavelength_range_outside_cubes(asn_copy, tmp_path):
    run_and_expect(
        asn_copy, ParameterError, "wavelength_range=.* contains no plane", tmp_path,
        wavelength_range=[20.0, 21.0],
    )


def test_slice_out_of_range(asn_copy, tmp_path):
    run_and_expect(asn_copy, ParameterError, "slice=500 is out of range", tmp_path, slice=500)


def test_output_never_overwrites_an_input(asn_copy):
    """Even with output_dir the input folder and output_file naming an input."""
    name = members_of(asn_copy)[0]["expname"]
    before = file_digests(asn_copy.parent)
    with pytest.raises(ParameterError, match="would have the name of the input file"):
        IFUAlignStep.call(
            str(asn_copy), output_dir=str(asn_copy.parent), output_file=name, suffix="s3d"
        )
    assert file_digests(asn_copy.parent) == before


def test_strun_bad_input_exits_nonzero_with_clear_message(asn_copy, tmp_path):
    name = members_of(asn_copy)[3]["expname"]
    (asn_copy.parent / name).unlink()
    before = sorted(p.name for p in tmp_path.rglob("*"))
    done = run_strun(["ifu_align", str(asn_copy)], cwd=tmp_path)
    assert done.returncode != 0
    assert f"{name} does not exist" in done.stderr + done.stdout
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_all_nan_member_is_skipped_and_flagged(miri_sim):
    from jwst_ifualign.adapter.align import AlignOptions, align_members
    from jwst_ifualign.adapter.inputs import Members

    models = [m.model.copy() for m in miri_sim.members]
    models[3].data[:] = np.nan
    members = Members(models, [m.meta.filename for m in models], "x", [False] * 4)
    result = align_members(members, AlignOptions())
    assert result.members[3].flag == "no_data"
    assert abs(result.members[2].measured.dx - miri_sim.members[2].truth_dx) < 0.05


def test_all_nan_reference_is_a_clear_error(asn_copy, tmp_path):
    from jwst_ifualign.adapter.align import AlignOptions, align_members
    from jwst_ifualign.adapter.inputs import load_members

    members = load_members(str(asn_copy))
    try:
        members.models[0].data[:] = np.nan  # in memory only
        with pytest.raises(InputError, match="reference .* has no valid data"):
            align_members(members, AlignOptions())
    finally:
        members.close()


def test_interrupted_write_leaves_no_partial_file(tmp_path):
    from jwst_ifualign.adapter.outputs import write_atomic

    target = tmp_path / "product_ifualign.fits"

    def writer(tmp):
        with open(tmp, "wb") as f:
            f.write(b"SIMPLE  = T" + b" " * 1000)
        raise KeyboardInterrupt  # as if the run were stopped half-way

    with pytest.raises(KeyboardInterrupt):
        write_atomic(target, writer)
    assert list(tmp_path.iterdir()) == []

    write_atomic(target, lambda tmp: open(tmp, "wb").write(b"complete"))
    assert target.read_bytes() == b"complete"
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


def _replace_member(asn, index, model):
    name = members_of(asn)[index]["expname"]
    model.save(asn.parent / name)
    return name


def test_member_from_another_instrument(asn_copy, tmp_path):
    name = members_of(asn_copy)[1]["expname"]
    with datamodels.open(asn_copy.parent / name) as model:
        other = model.copy()
    other.meta.instrument.name = "NIRSPEC"
    _replace_member(asn_copy, 1, other)
    run_and_expect(asn_copy, InputError, f"{name} is from NIRSPEC but the reference", tmp_path)


def test_member_with_another_spatial_scale(tmp_path):
    import dataclasses

    from jwst_ifualign.testing.simulate import MIRI_CH1

    sim = small_association(n_members=2)
    coarse = dataclasses.replace(MIRI_CH1, spaxel_arcsec=0.2)
    sim.members[1] = small_association(n_members=2, setup=coarse).members[1]
    sim.members[1].model.meta.filename = "coarse_s3d.fits"
    asn = write_association(sim, tmp_path / "data")
    run_and_expect(asn, InputError, r'coarse_s3d.fits has spaxels of 0.2000" x 0.2000"', tmp_path)


def test_member_that_is_a_spectrum(asn_copy, tmp_path):
    spectrum = datamodels.MultiSlitModel()
    spectrum.save(asn_copy.parent / "spec_x1d.fits")
    rewrite(asn_copy, [*members_of(asn_copy), {"expname": "spec_x1d.fits", "exptype": "science"}])
    run_and_expect(asn_copy, InputError, "spec_x1d.fits is a MultiSlitModel, not an IFU cube", tmp_path)


def test_member_without_overlap_is_skipped_and_flagged():
    """A member pointed 30 arcsec away shares no sky with any member: flagged, run goes on."""
    from jwst_ifualign.adapter.align import AlignOptions, align_members
    from jwst_ifualign.adapter.inputs import Members

    dithers = ((0.0, 0.0), (0.51, -0.32), (30.0, 0.0))
    sim = small_association(n_members=3, dithers_arcsec=dithers)
    models = [m.model for m in sim.members]
    result = align_members(Members(models, [m.meta.filename for m in models], "x", [False] * 3), AlignOptions())
    assert result.members[2].flag == "not_connected"
    assert result.members[2].applied.dx == 0.0
    assert result.members[1].flag == "ok"


def test_invalid_keyword_in_the_reference_is_dropped_with_a_warning(asn_copy, tmp_path, caplog):
    """Members are opened without validation (for speed); the reference's metadata becomes the
    output's, so an invalid value there is caught and dropped as stdatamodels' reader does."""
    from astropy.io import fits

    name = members_of(asn_copy)[0]["expname"]
    with fits.open(asn_copy.parent / name, mode="update") as hdul:
        hdul["SCI"].header["CDELT3"] = "garbage"
    before = file_digests(asn_copy.parent)
    out = tmp_path / "out"
    result = IFUAlignStep.call(str(asn_copy), save_results=True, output_dir=str(out))
    # stpipe routes Python warnings to its log.
    assert any("meta.wcsinfo.cdelt3" in r.getMessage() for r in caplog.records)
    assert result.meta.wcsinfo.cdelt3 != "garbage"
    assert result.meta.cal_step.ifu_align == "COMPLETE"
    assert (out / f"{result.meta.filename}").is_file()
    with datamodels.open(out / f"{result.meta.filename}") as written:
        assert written.meta.wcsinfo.cdelt3 != "garbage"
    assert file_digests(asn_copy.parent) == before


def test_reading_without_validation_skips_the_schema_reparsing(miri_asn, monkeypatch):
    """The defect worked around by ``open_for_reading``: validating on read makes asdf parse
    schema YAML again for each reference it resolves (no cache for schemas of the resource
    manager), which is about half the time to open a cube. Reading without it parses none."""
    import yaml

    from jwst_ifualign.adapter.inputs import open_for_reading

    path = miri_asn.parent / members_of(miri_asn)[0]["expname"]
    datamodels.open(path).close()  # warm every other cache
    calls = []
    original = yaml.load

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(yaml, "load", counting)
    with datamodels.open(path) as model:
        assert model.meta.wcs is not None
    validating = len(calls)
    calls.clear()
    with open_for_reading(path) as model:
        assert model.meta.wcs is not None
        assert model.data.shape[0] > 1
    assert validating > 20 and len(calls) <= 2, (validating, len(calls))
