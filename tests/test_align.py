"""align_members on realistic simulated cubes: offsets, combination, and input safety."""

import numpy as np
import pytest
from helpers import (
    MIRI_SMALL,
    NIRSPEC_G395H,
    NIRSPEC_SMALL,
    members_of,
    offset_errors,
    small_association,
)

from jwst_ifualign.adapter.align import AlignOptions, align_members
from jwst_ifualign.algorithms.quality import point_source_fwhm, white_light
from jwst_ifualign.algorithms.registration import METHODS

TOLERANCE = {"chi2": 0.05, "dft": 0.05, "cross_correlation": 0.1, "centroid": 0.1}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(
    "case",
    [
        {"shape": MIRI_SMALL},
        {"shape": (60, 34, 36)},
        {"shape": MIRI_SMALL, "tabular": True, "pa_deg": 30.0},
        {"setup": NIRSPEC_G395H, "shape": NIRSPEC_SMALL},
    ],
    ids=["miri-odd-wave", "miri-even-wave", "miri-odd-wavetab-pa30", "nirspec-even"],
)
def test_offsets_recovered(method, case):
    sim = small_association(**case)
    result = align_members(members_of(sim), AlignOptions(method=method))
    errors = offset_errors(result.members, sim)
    assert np.all(np.abs(errors) < TOLERANCE[method]), errors
    assert result.members[0].flag == "reference"
    for r, m in zip(result.members, sim.members, strict=True):
        for measured, truth in ((r.measured.dx, m.truth_dx), (r.measured.dy, m.truth_dy)):
            if abs(truth) > 0.1:
                assert np.sign(measured) == np.sign(truth)
    for r, m in zip(result.members, sim.members, strict=True):
        assert r.ra_offset == pytest.approx(m.truth_ra_offset, abs=0.01)
        assert r.dec_offset == pytest.approx(m.truth_dec_offset, abs=0.01)


@pytest.mark.parametrize("sign", [1, -1])
def test_both_signs_of_pointing_error(sign):
    errors = ((0.0, 0.0), (sign * 0.06, -sign * 0.04), (-sign * 0.1, sign * 0.02))
    sim = small_association(n_members=3, errors_arcsec=errors)
    result = align_members(members_of(sim), AlignOptions(method="chi2"))
    assert np.all(np.abs(offset_errors(result.members, sim)) < 0.05)
    assert np.sign(result.members[1].measured.dx) == np.sign(sim.members[1].truth_dx)


def test_reference_choice_changes_frame():
    sim = small_association()
    result = align_members(members_of(sim), AlignOptions(reference=2))
    assert result.members[2].flag == "reference"
    # Member 0 now shows the opposite offset of what member 2 showed against member 0.
    assert result.members[0].measured.dx == pytest.approx(-sim.members[2].truth_dx, abs=0.05)
    assert result.data.shape == sim.members[2].model.data.shape


def test_inputs_not_modified(miri_sim):
    before = [(m.model.data.copy(), m.model.err.copy(), m.model.dq.copy()) for m in miri_sim.members]
    wcsinfo = [m.model.meta.wcsinfo.instance.copy() for m in miri_sim.members]
    align_members(members_of(miri_sim), AlignOptions())
    for m, (d, e, q), w in zip(miri_sim.members, before, wcsinfo, strict=True):
        np.testing.assert_array_equal(m.model.data, d)
        np.testing.assert_array_equal(m.model.err, e)
        np.testing.assert_array_equal(m.model.dq, q)
        assert m.model.meta.wcsinfo.instance == w


def test_surface_brightness_preserved(miri_sim):
    """A mean, not a sum: the combined cube has the reference's brightness where both exist."""
    result = align_members(members_of(miri_sim), AlignOptions())
    ref = miri_sim.members[0].model.data
    both = np.isfinite(ref) & np.isfinite(result.data)
    ratio = np.nansum(result.data[both]) / np.nansum(ref[both])
    assert ratio == pytest.approx(1.0, abs=0.01)


def test_union_of_footprints_kept(miri_sim):
    result = align_members(members_of(miri_sim), AlignOptions())
    ref_cover = np.isfinite(miri_sim.members[0].model.data[0]).sum()
    comb_cover = np.isfinite(result.data[0]).sum()
    assert comb_cover > 1.3 * ref_cover
    assert result.count.max() == 4
    # DQ: voxels no member covers are DO_NOT_USE | NON_SCIENCE, covered ones are not.
    none = result.count == 0
    assert np.all(result.dq[none] & 1) and np.all(result.dq[none] & 512)
    assert not np.any(result.dq[~none] & 1)


def test_combined_point_source_as_sharp_as_reference():
    sim = small_association(shape=(120, 35, 37), snr=50.0)
    aligned = align_members(members_of(sim), AlignOptions())
    wcs_only = align_members(members_of(sim), AlignOptions(max_shift=0.0))
    fwhm_ref = point_source_fwhm(white_light(sim.members[0].model.data))[0]
    fwhm_aligned = point_source_fwhm(white_light(aligned.data))[0]
    fwhm_wcs = point_source_fwhm(white_light(wcs_only.data))[0]
    assert fwhm_aligned < 1.04 * fwhm_ref
    assert fwhm_aligned < fwhm_wcs


def test_max_shift_rejects_and_flags(miri_sim):
    result = align_members(members_of(miri_sim), AlignOptions(max_shift=0.3))
    flagged = [r for r in result.members if r.flag == "rejected_max_shift"]
    assert {r.name for r in flagged} == {miri_sim.members[i].model.meta.filename for i in (2, 3)}
    for r in flagged:
        assert r.applied.dx == 0.0 and r.ra_offset == 0.0
        assert r.measured.dx > 0.3  # the measurement is still reported


@pytest.mark.parametrize("combine", ["weighted_mean", "mean", "median"])
def test_combine_methods_run_and_agree(miri_sim, combine):
    result = align_members(members_of(miri_sim), AlignOptions(combine=combine))
    ref = align_members(members_of(miri_sim), AlignOptions(combine="mean"))
    both = np.isfinite(result.data) & np.isfinite(ref.data)
    assert np.nanmedian(np.abs(result.data[both] - ref.data[both])) < 0.1 * np.nanmedian(
        np.abs(ref.data[both])
    )


@pytest.mark.parametrize("grid", ["reference", "union"])
def test_serial_chunked_and_dask_parallel_agree(miri_sim, grid):
    """Processing wavelength in blocks, serially or on dask threads, changes nothing."""
    serial = align_members(members_of(miri_sim), AlignOptions(output_grid=grid))
    chunked = align_members(members_of(miri_sim), AlignOptions(output_grid=grid, chunk_size=7))
    for other in [chunked]:
        np.testing.assert_array_equal(serial.data, other.data)
        np.testing.assert_array_equal(serial.err, other.err)
        np.testing.assert_array_equal(serial.dq, other.dq)
    pytest.importorskip("dask")
    parallel = align_members(
        members_of(miri_sim), AlignOptions(output_grid=grid, chunk_size=7, parallel=True)
    )
    np.testing.assert_allclose(parallel.data, serial.data, rtol=1e-6, equal_nan=True)
    np.testing.assert_allclose(parallel.err, serial.err, rtol=1e-6, equal_nan=True)
    np.testing.assert_array_equal(parallel.dq, serial.dq)
    np.testing.assert_array_equal(parallel.count, serial.count)


def test_wavelength_range_and_slice(miri_sim):
    waves = align_members(members_of(miri_sim), AlignOptions()).wavelengths
    lo, hi = float(waves[10]), float(waves[40])
    result = align_members(members_of(miri_sim), AlignOptions(wavelength_range=(lo, hi)))
    assert result.measure_planes == (10, 41)
    assert np.all(np.abs(offset_errors(result.members, miri_sim)) < 0.05)
    one = align_members(members_of(miri_sim), AlignOptions(slice=30, method="chi2"))
    assert one.measure_planes == (30, 31)
    assert np.all(np.abs(offset_errors(one.members, miri_sim)) < 0.15)


def test_union_grid_keeps_every_covered_spaxel():
    """Tight, cube_build-like cubes: the union grid holds every member spaxel, the reference not."""
    sim = small_association(shape=(20, 31, 33), pa_deg=30.0)
    from jwst_ifualign.adapter.outputs import build_output_model

    lost = {}
    for grid in ("reference", "union"):
        options = AlignOptions(output_grid=grid)
        result = align_members(members_of(sim), options)
        names = [m.model.meta.filename for m in sim.members]
        model = build_output_model(sim.members[0].model, result, options=options, names=names)
        ny, nx = result.data.shape[1:]
        lost[grid] = 0
        for m, r in zip(sim.members, result.members, strict=True):
            yy, xx = np.nonzero(np.isfinite(m.model.data[0]))
            ra, dec, lam = m.model.meta.wcs(xx.astype(float), yy.astype(float), np.zeros(xx.size))
            xo, yo, _ = model.meta.wcs.invert(ra, dec, lam, with_bounding_box=False)
            xi = np.floor(xo - r.applied.dx + 0.5).astype(int)
            yi = np.floor(yo - r.applied.dy + 0.5).astype(int)
            inside = (xi >= 0) & (yi >= 0) & (xi < nx) & (yi < ny)
            kept = np.zeros(xi.size, bool)
            kept[inside] = np.isfinite(result.data[0][yi[inside], xi[inside]])
            lost[grid] += int((~kept).sum())
        if grid == "union":
            assert result.data.shape[1:] != sim.members[0].model.data.shape[1:]
            assert model.meta.ifu_align.grid_origin != [0, 0]
    assert lost["reference"] > 50
    assert lost["union"] == 0
