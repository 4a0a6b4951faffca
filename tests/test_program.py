"""Several settings in one association: one cube per setting, one offsets table and offset file."""

import logging

import asdf
import numpy as np
import pytest
from astropy.table import Table
from helpers import members_of, run_strun
from jwst.cube_build import CubeBuildStep

from jwst_ifualign import InputError
from jwst_ifualign.adapter.align import AlignOptions
from jwst_ifualign.adapter.inputs import check_names, exposure_id
from jwst_ifualign.adapter.program import align_program, program_table
from jwst_ifualign.testing.program import simulate_program
from jwst_ifualign.testing.simulate import write_association


@pytest.fixture(scope="module")
def program(tmp_path_factory):
    """4 dithers x 2 MIRI detectors, written as one association, and one strun run on it."""
    folder = tmp_path_factory.mktemp("program")
    sim = simulate_program()
    asn = write_association(sim, folder / "data")
    out = folder / "out"
    run = run_strun(["ifu_align", str(asn), f"--output_dir={out}"], cwd=folder)
    assert run.returncode == 0, run.stderr[-2000:]
    return sim, out


class Named:
    def __init__(self, name):
        self.meta = type("meta", (), {"filename": name})()


def test_one_strun_run_writes_a_cube_per_setting_and_one_offset_file(program):
    sim, out = program
    assert sorted(p.name for p in out.iterdir()) == [
        "sim_program_ch1-short_ifualign.fits",
        "sim_program_ch3-short_ifualign.fits",
        "sim_program_ifualign_offsets.asdf",
        "sim_program_ifualign_offsets.ecsv",
    ]
    with asdf.open(out / "sim_program_ifualign_offsets.asdf") as af:
        names = list(af.tree["filename"])
    cal = sorted(m.model.meta.filename.replace("_s3d", "_cal") for m in sim.members)
    assert sorted(names) == cal  # the 8 _cal files, once each
    offsets = CubeBuildStep(offset_file=str(out / "sim_program_ifualign_offsets.asdf"))
    checked = offsets.check_offset_file([Named(n) for n in cal])
    assert len(checked["filename"]) == 8


def test_every_offset_is_within_005_px_of_the_truth_on_its_own_grid(program):
    sim, out = program
    table = Table.read(out / "sim_program_ifualign_offsets.ecsv")
    assert list(table["setting"]) == ["ch1-short"] * 4 + ["ch3-short"] * 4
    truth = {m.model.meta.filename: m for m in sim.members}
    for row in table:
        m = truth[row["member"]]
        assert row["exposure"] == exposure_id(row["member"])
        assert abs(row["dx"] - m.truth_dx) < 0.05 and abs(row["dy"] - m.truth_dy) < 0.05, row
        assert abs(row["ra_offset"] - m.truth_ra_offset) < 0.01


def test_the_cubes_of_one_exposure_get_one_sky_offset(program):
    _, out = program
    table = Table.read(out / "sim_program_ifualign_offsets.ecsv")
    for exposure in set(table["exposure"]):
        rows = table[table["exposure"] == exposure]
        assert len(rows) == 2 and len(set(rows["setting"])) == 2
        assert rows["ra_offset"][0] == rows["ra_offset"][1]
        assert rows["dec_offset"][0] == rows["dec_offset"][1]


def test_disagreeing_cubes_of_one_exposure_are_warned_about_and_tied(caplog):
    sim = simulate_program()
    errors = ((0.0, 0.0), (0.0, 0.0), (0.185, -0.055), (0.085, -0.055))
    moved = simulate_program(errors_arcsec=errors)
    sim.members[6] = moved.members[6]  # channel 3 of exposure 3 pointed 0.1" elsewhere
    with caplog.at_level(logging.WARNING, logger="jwst_ifualign"):
        settings = align_program(members_of(sim), AlignOptions())
    assert "disagree beyond their errors" in caplog.text
    ch1, ch3 = (s.result.members for s in settings)
    assert ch1[2].ra_offset == ch3[2].ra_offset  # tied
    assert 0.085 < ch1[2].ra_offset < 0.185


def test_tie_exposures_false_keeps_each_measurement():
    sim = simulate_program()
    settings = align_program(members_of(sim), AlignOptions(tie_exposures=False))
    ch1, ch3 = (s.result.members for s in settings)
    assert ch1[2].ra_offset != ch3[2].ra_offset
    assert abs(ch1[2].ra_offset - ch3[2].ra_offset) < 0.01
    np.testing.assert_allclose(ch1[2].ra_offset, 0.085, atol=0.01)


def test_cubes_of_different_settings_may_share_a_cal_file():
    """One _cal behind a channel 1 and a channel 2 cube: allowed across settings only."""
    two = [
        "jw01234001001_01101_00001_mirifushort_s3d.fits",
        "jw01234001001_01101_00001_mirifushort_cal.fits",
    ]
    check_names(two, settings=["ch1-short", "ch2-short"])
    with pytest.raises(InputError, match="share a _cal name"):
        check_names(two, settings=["ch1-short", "ch1-short"])


BAND = (0.03, -0.02)  # arcsec: channel 3 exposures pointed elsewhere by the grating wheel


@pytest.fixture(scope="module")
def two_bands():
    """Channel 1 and channel 3 from different exposures: no exposure is shared."""
    return simulate_program(
        shared_pointing=False, band_offset_arcsec=BAND, shapes=((100, 35, 37), (100, 35, 33))
    )


def test_settings_without_a_shared_exposure_are_tied_by_the_compact_source(two_bands):
    settings = align_program(members_of(two_bands), AlignOptions())
    ch1, ch3 = settings
    assert ch3.setting_offset["tied"]
    for k, r in zip(ch3.indices, ch3.result.members, strict=True):
        m = two_bands.members[k]
        # Within 0.05 channel-3 spaxels (10 mas) of the truth against the channel-1 reference.
        assert abs(r.ra_offset - (m.truth_ra_offset + BAND[0])) < 0.01, r
        assert abs(r.dec_offset - (m.truth_dec_offset + BAND[1])) < 0.01, r
    for k, r in zip(ch1.indices, ch1.result.members, strict=True):
        assert abs(r.ra_offset - two_bands.members[k].truth_ra_offset) < 0.01
    table = program_table(settings)
    assert table.meta["setting_offset_ch3-short"]["tied"]


def test_tie_settings_false_keeps_the_wcs_relation(two_bands):
    settings = align_program(members_of(two_bands), AlignOptions(tie_settings=False))
    ch3 = settings[1].result.members
    assert ch3[0].ra_offset == 0.0 and ch3[0].flag == "reference"
