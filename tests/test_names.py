"""Every member needs its own name and its own _cal name: cube_build looks offsets up by name."""

import shutil

import pytest
from helpers import file_digests, small_association

from jwst_ifualign import IFUAlignStep, InputError
from jwst_ifualign.adapter.inputs import check_names
from jwst_ifualign.testing.simulate import write_association


def call_and_expect(step_input, match, tmp_path):
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    with pytest.raises(InputError, match=match):
        IFUAlignStep.call(step_input, save_results=True, output_dir=str(out))
    assert list(out.iterdir()) == [], "no output may be written"


def test_in_memory_models_sharing_a_file_name(tmp_path):
    models = [m.model for m in small_association(n_members=4).members]
    models[2].meta.filename = models[0].meta.filename
    name = models[0].meta.filename
    call_and_expect(
        models,
        rf"share a file name: 0 \({name}\) and 2 \({name}\).*meta\.filename",
        tmp_path,
    )
    assert models[2].meta.filename == name  # input untouched


@pytest.mark.parametrize("missing", [None, "", "   "])
def test_in_memory_model_without_a_name(tmp_path, missing):
    models = [m.model for m in small_association(n_members=3).members]
    models[1].meta.filename = missing
    call_and_expect(models, r"Member 1 \(0-based.*has no file name.*meta\.filename", tmp_path)


def test_two_s3d_names_of_one_cal_file(tmp_path):
    """Distinct s3d names that map to one _cal (another suffix) are refused too."""
    models = [m.model for m in small_association(n_members=3).members]
    stem = models[0].meta.filename.removesuffix("_s3d.fits")
    models[1].meta.filename = f"{stem}_crf.fits"  # a known jwst suffix: same _cal
    call_and_expect(models, rf"share a _cal name: 0 .* and 1 .* -> {stem}_cal\.fits", tmp_path)


def test_association_listing_one_file_twice(tmp_path, miri_asn):
    folder = tmp_path / "data"
    shutil.copytree(miri_asn.parent, folder)
    sim = small_association(n_members=3)
    sim.members[2].model.meta.filename = sim.members[0].model.meta.filename
    asn = write_association(sim, folder, asn_name="twice.json")
    before = file_digests(folder)
    call_and_expect(str(asn), r"share a file name: 0 .* and 2 .*list each s3d cube once", tmp_path)
    assert file_digests(folder) == before


def test_unique_names_pass():
    check_names(["a_s3d.fits", "b_s3d.fits", "c_s3d.fits"], in_memory=[True] * 3)
