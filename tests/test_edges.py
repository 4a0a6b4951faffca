"""Edges: lost planes, bad ERR, tiny cubes, one plane, big offsets, high declination, RA = 0.

Each test asserts what the step must do, on simulated associations with a known truth
(:func:`jwst_ifualign.testing.simulate.simulate_association`).
"""

import warnings

import numpy as np
import pytest
from helpers import file_digests, offset_errors, small_association
from jwst.assign_wcs.pointing import create_fitswcs
from stdatamodels.jwst.datamodels import dqflags

from jwst_ifualign import IFUAlignError, IFUAlignStep
from jwst_ifualign.adapter.align import AlignOptions, align_members
from jwst_ifualign.adapter.inputs import Members
from jwst_ifualign.adapter.wcs_mapping import reference_to_member_pixels
from jwst_ifualign.testing.simulate import simulate_association, write_association

DO_NOT_USE = dqflags.pixel["DO_NOT_USE"]
NON_SCIENCE = dqflags.pixel["NON_SCIENCE"]

#: Offsets must be recovered to this (px) wherever the data allow it (as in test_align.py).
TOLERANCE = 0.05


def members_of(sim_or_models):
    if hasattr(sim_or_models, "members"):
        models = [m.model for m in sim_or_models.members]
    else:
        models = list(sim_or_models)
    return Members(models, [m.meta.filename for m in models], "edges", [False] * len(models))


def assert_finite_where_covered(data, err, count):
    covered = np.asarray(count) > 0
    assert covered.any(), "nothing covered"
    assert np.all(np.isfinite(data[covered])), "combined SCI not finite where covered"
    assert np.all(np.isfinite(err[covered])), "combined ERR not finite where covered"
    assert np.all(np.isnan(data[~covered])), "combined SCI must be NaN where nothing covers"


def crop(model, ny, nx):
    """A valid, smaller cube: the central ny x nx spaxels, crpix and meta.wcs moved with them."""
    nwave, ny0, nx0 = model.data.shape
    y0, x0 = (ny0 - ny) // 2, (nx0 - nx) // 2
    out = model.copy()
    for attr in ("data", "err", "dq", "weightmap"):
        cut = getattr(model, attr)[:, y0 : y0 + ny, x0 : x0 + nx]
        setattr(out, attr, np.ascontiguousarray(cut))
    out.meta.wcsinfo.crpix1 -= x0
    out.meta.wcsinfo.crpix2 -= y0
    out.meta.wcs = create_fitswcs(out)
    out.meta.wcs.bounding_box = ((0, nx - 1), (0, ny - 1), (0, nwave - 1))
    return out


# --------------------------------------------------------------------------------------------
# Wavelength planes that are NaN or flagged DO_NOT_USE


@pytest.mark.parametrize("fraction", [0.25, 0.6], ids=["quarter-of-planes", "most-planes"])
@pytest.mark.parametrize("which", [0, 2], ids=["in-reference", "in-member"])
@pytest.mark.parametrize("kind", ["nan", "do_not_use"])
def test_lost_planes_keep_offsets(kind, which, fraction):
    """Whole wavelength planes lost in one member: offsets still right, those planes not used."""
    sim = small_association(n_members=3, shape=(40, 35, 37), snr=50.0)
    nwave = 40
    planes = np.sort(np.random.default_rng(5).choice(nwave, int(fraction * nwave), replace=False))
    model = sim.members[which].model
    if kind == "nan":
        model.data[planes] = np.nan
    else:
        model.dq[planes] |= DO_NOT_USE
    result = align_members(members_of(sim), AlignOptions())
    assert [r.flag for r in result.members] == ["reference", "ok", "ok"]
    errors = offset_errors(result.members, sim)
    assert np.all(np.abs(errors) < TOLERANCE), errors
    assert_finite_where_covered(result.data, result.err, result.count)
    # The lost planes of that member contribute nowhere, the others do.
    assert result.count[planes].max() <= 2
    kept = np.setdiff1d(np.arange(nwave), planes)
    assert result.count[kept].max() == 3


@pytest.mark.parametrize("kind", ["nan", "do_not_use"])
def test_planes_lost_in_every_member(kind):
    """Planes lost in all members: NaN and DO_NOT_USE | NON_SCIENCE in the output, offsets right."""
    sim = small_association(n_members=3, shape=(30, 35, 37), snr=50.0)
    planes = np.array([0, 7, 8, 9, 29])
    for m in sim.members:
        if kind == "nan":
            m.model.data[planes] = np.nan
        else:
            m.model.dq[planes] |= DO_NOT_USE
    result = align_members(members_of(sim), AlignOptions())
    assert np.all(np.abs(offset_errors(result.members, sim)) < TOLERANCE)
    assert np.all(result.count[planes] == 0)
    assert np.all(np.isnan(result.data[planes]))
    assert np.all(result.dq[planes] & DO_NOT_USE) and np.all(result.dq[planes] & NON_SCIENCE)
    assert_finite_where_covered(result.data, result.err, result.count)


# --------------------------------------------------------------------------------------------
# Zero or negative ERR


@pytest.mark.parametrize("bad", ["zero", "negative"])
def test_bad_err_voxels_are_not_weighted(bad):
    """ERR <= 0 on a block of a member: no crash, offset right, and with weighted_mean that member
    does not contribute there: the combined cube is the reference alone."""
    sim = small_association(n_members=2, shape=(30, 35, 37), snr=50.0)
    m0, m1 = (m.model for m in sim.members)
    # A 10 x 10 block of extended emission, away from the point source at the centre.
    block = (slice(None), slice(4, 14), slice(22, 32))
    m1.err[block] = 0.0 if bad == "zero" else -np.abs(m1.err[block])

    result = align_members(members_of(sim), AlignOptions(combine="weighted_mean"))
    assert [r.flag for r in result.members] == ["reference", "ok"]
    assert np.all(np.abs(offset_errors(result.members, sim)) < TOLERANCE)
    assert_finite_where_covered(result.data, result.err, result.count)
    assert np.all(result.err[result.count > 0] > 0)

    applied = result.members[1].applied
    xm, ym = reference_to_member_pixels(m0, m1, shift=(applied.dx, applied.dy))
    # Reference spaxels whose whole bicubic neighbourhood lies inside member 1's bad block.
    interior = (xm >= 24) & (xm <= 29) & (ym >= 6) & (ym <= 11)
    assert interior.sum() >= 16
    ref_valid = np.isfinite(m0.data[:, interior]) & (m0.dq[:, interior] & DO_NOT_USE == 0)
    assert ref_valid.any()
    np.testing.assert_array_equal(result.count[:, interior], ref_valid.astype(int))
    for attr in ("data", "err"):
        np.testing.assert_allclose(
            getattr(result, attr)[:, interior][ref_valid],
            getattr(m0, attr)[:, interior][ref_valid],
            rtol=1e-5,
        )


@pytest.mark.parametrize("combine", ["weighted_mean", "mean", "median"])
def test_bad_err_voxels_no_crash_through_the_step(combine, tmp_path):
    sim = small_association(n_members=3, shape=(20, 35, 37), snr=50.0)
    rng = np.random.default_rng(2)
    for m in sim.members[1:]:
        err = m.model.err
        mask = rng.random(err.shape) < 0.1
        err[mask] = np.where(rng.random(mask.sum()) < 0.5, 0.0, -1.0)
    asn = write_association(sim, tmp_path / "data")
    before = file_digests(asn.parent)
    out = tmp_path / "out"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = IFUAlignStep.call(
            str(asn), combine=combine, save_results=True, output_dir=str(out)
        )
    records = result.meta.ifu_align.instance["members"]
    for rec, m in zip(records, sim.members, strict=True):
        assert rec["flag"] in ("reference", "ok")
        assert abs(rec["dx"] - m.truth_dx) < TOLERANCE and abs(rec["dy"] - m.truth_dy) < TOLERANCE
    assert_finite_where_covered(result.data, result.err, result.weightmap)
    assert len(list(out.iterdir())) == 3
    assert file_digests(asn.parent) == before


# --------------------------------------------------------------------------------------------
# Tiny cubes and a single wavelength plane


@pytest.mark.parametrize("spatial", [(7, 7), (5, 5), (3, 3), (1, 1), (2, 9)])
def test_tiny_cubes_give_a_correct_result_or_a_clear_error(spatial, tmp_path):
    sim = simulate_association(
        shape=(5, 21, 21),
        n_members=3,
        dithers_arcsec=((0.0, 0.0), (0.03, -0.02), (-0.02, 0.03)),
        errors_arcsec=((0.0, 0.0), (0.04, -0.03), (-0.05, 0.02)),
        snr=200.0,
        seed=4,
    )
    models = [crop(m.model, *spatial) for m in sim.members]
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            result = IFUAlignStep.call(models, save_results=True, output_dir=str(tmp_path))
    except IFUAlignError as exc:
        assert str(exc), "the error must say what is wrong"
        assert list(tmp_path.iterdir()) == [], "no output after an error"
        return
    assert result.data.shape == (5, *spatial)
    assert_finite_where_covered(result.data, result.err, result.weightmap)
    records = result.meta.ifu_align.instance["members"]
    npix = spatial[0] * spatial[1]
    for rec, m in zip(records[1:], sim.members[1:], strict=True):
        measured = rec["flag"] in ("ok", "rejected_max_shift")
        if npix >= 25:  # enough spaxels to measure: the offset must be measured, and right
            assert measured, rec
        if measured:
            assert abs(rec["dx"] - m.truth_dx) < 0.1 and abs(rec["dy"] - m.truth_dy) < 0.1, rec
        else:  # not measurable: flagged and combined with its WCS alone
            assert rec["flag"] == "not_measured" or rec["flag"].startswith("rejected"), rec
            assert not rec["applied"], rec


def test_single_wavelength_plane(tmp_path):
    sim = small_association(n_members=3, shape=(1, 35, 37), snr=100.0)
    result = align_members(members_of(sim), AlignOptions())
    assert np.all(np.abs(offset_errors(result.members, sim)) < TOLERANCE)
    assert result.data.shape == (1, 35, 37)
    assert_finite_where_covered(result.data, result.err, result.count)

    asn = write_association(sim, tmp_path / "data")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = IFUAlignStep.call(str(asn), save_results=True, output_dir=str(tmp_path / "out"))
    assert model.data.shape == (1, 35, 37)
    assert model.meta.cal_step.ifu_align == "COMPLETE"
    assert len(list((tmp_path / "out").iterdir())) == 3


# --------------------------------------------------------------------------------------------
# A very large offset


def test_very_large_offset_is_rejected_by_max_shift_not_fatal(tmp_path):
    """A 1.5 arcsec (11.5 spaxel) pointing error: flagged rejected_max_shift, the run completes."""
    errors = ((0.0, 0.0), (0.0, 0.0), (1.5, 0.0))
    sim = simulate_association(
        shape=(30, 45, 47), n_members=3, errors_arcsec=errors, snr=50.0,
        dithers_arcsec=((0.0, 0.0), (0.26, -0.13), (-0.13, 0.26)),
    )
    asn = write_association(sim, tmp_path / "data")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = IFUAlignStep.call(str(asn), save_results=True, output_dir=str(tmp_path / "out"))
    records = result.meta.ifu_align.instance["members"]
    assert [r["flag"] for r in records] == ["reference", "ok", "rejected_max_shift"]
    big = records[2]
    assert not big["applied"] and big["ra_offset"] == 0.0 and big["dec_offset"] == 0.0
    assert np.hypot(big["dx"], big["dy"]) > 3.0  # the measurement is still reported
    assert abs(records[1]["dx"] - sim.members[1].truth_dx) < TOLERANCE
    assert result.meta.cal_step.ifu_align == "COMPLETE"
    assert_finite_where_covered(result.data, result.err, result.weightmap)
    assert len(list((tmp_path / "out").iterdir())) == 3


# --------------------------------------------------------------------------------------------
# High declination and RA = 0/360


@pytest.mark.parametrize(
    "target", [(150.0, 85.0), (150.0, -89.5), (10.0, 89.9)], ids=["dec+85", "dec-89.5", "dec+89.9"]
)
def test_offsets_at_high_declination(target):
    sim = small_association(n_members=4, target=target, shape=(40, 35, 37), snr=50.0)
    result = align_members(members_of(sim), AlignOptions())
    assert [r.flag for r in result.members] == ["reference", "ok", "ok", "ok"]
    assert np.all(np.abs(offset_errors(result.members, sim)) < TOLERANCE), offset_errors(
        result.members, sim
    )
    for r, m in zip(result.members, sim.members, strict=True):
        assert r.ra_offset == pytest.approx(m.truth_ra_offset, abs=0.01)
        assert r.dec_offset == pytest.approx(m.truth_dec_offset, abs=0.01)


RA_WRAP_DITHERS = ((0.0, 0.0), (0.9, -0.3), (-0.5, 0.4), (1.2, 0.5))


def rotate_ra(sim, delta):
    """Move every member by ``delta`` degrees of RA (a rotation about the pole).

    Pixels, data and the truth (pixel offsets and arcsec corrections) are unchanged; only the
    WCS moves, so an association simulated away from RA = 0 can be put across it.
    """
    for m in sim.members:
        model = m.model
        model.meta.wcsinfo.crval1 = (model.meta.wcsinfo.crval1 + delta) % 360.0
        model.meta.target.ra = (model.meta.target.ra + delta) % 360.0
        nwave, ny, nx = model.data.shape
        model.meta.wcs = create_fitswcs(model)
        model.meta.wcs.bounding_box = ((0, nx - 1), (0, ny - 1), (0, nwave - 1))
    return sim


def check_ra_wrap_result(result, sim):
    assert [r.flag for r in result.members] == ["reference", "ok", "ok", "ok"]
    errors = offset_errors(result.members, sim)
    assert np.all(np.abs(errors) < TOLERANCE), errors
    for r, m in zip(result.members, sim.members, strict=True):
        assert r.ra_offset == pytest.approx(m.truth_ra_offset, abs=0.01)
        assert r.dec_offset == pytest.approx(m.truth_dec_offset, abs=0.01)
    # The union of footprints is kept across RA = 0 (no member lost to a wrap-around).
    assert result.count.max() == 4
    assert_finite_where_covered(result.data, result.err, result.count)


@pytest.mark.parametrize("dec", [0.0, -30.0, 70.0])
def test_simulated_cubes_across_ra_zero(dec):
    """The simulator itself, with the target at RA 359.9999 and dithers either side of RA = 0."""
    sim = small_association(
        n_members=4, target=(359.9999, dec), dithers_arcsec=RA_WRAP_DITHERS,
        shape=(40, 35, 37), snr=50.0,
    )
    crval1 = [m.model.meta.wcsinfo.crval1 for m in sim.members]
    assert min(crval1) < 1.0 and max(crval1) > 359.0, crval1  # the dithers straddle RA = 0
    for m in sim.members:
        assert np.isfinite(m.model.data).any(), f"{m.model.meta.filename}: simulated cube all NaN"
        assert np.isfinite([m.truth_dx, m.truth_dy]).all()
    result = align_members(members_of(sim), AlignOptions())
    check_ra_wrap_result(result, sim)


@pytest.mark.parametrize("dec", [0.0, -30.0, 70.0])
def test_offsets_across_ra_zero(dec, tmp_path):
    """Target at RA 359.9999 deg with dithers either side of RA = 0 (simulated at RA 10 deg and
    rotated there, which leaves pixels and truth unchanged)."""
    sim = small_association(
        n_members=4, target=(10.0, dec), dithers_arcsec=RA_WRAP_DITHERS,
        shape=(40, 35, 37), snr=50.0,
    )
    rotate_ra(sim, 359.9999 - 10.0)
    crval1 = [m.model.meta.wcsinfo.crval1 for m in sim.members]
    assert min(crval1) < 1.0 and max(crval1) > 359.0, crval1  # the dithers straddle RA = 0
    result = align_members(members_of(sim), AlignOptions())
    check_ra_wrap_result(result, sim)

    asn = write_association(sim, tmp_path / "data")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = IFUAlignStep.call(str(asn), save_results=True, output_dir=str(tmp_path / "out"))
    records = model.meta.ifu_align.instance["members"]
    for rec, m in zip(records, sim.members, strict=True):
        assert rec["ra_offset"] == pytest.approx(m.truth_ra_offset, abs=0.01)
        assert rec["dec_offset"] == pytest.approx(m.truth_dec_offset, abs=0.01)


def _rotated_member_association(member_pa_deg, *, seed=3):
    """Reference at PA 0 and two members at ``member_pa_deg`` (not translations of the reference
    grid), with known pointing errors; the truth in reference pixels as the simulator gives it."""
    from jwst_ifualign.testing import simulate

    errors = ((0.0, 0.0), (0.09, -0.06), (-0.05, 0.08))
    sim = small_association(n_members=3, errors_arcsec=errors, snr=50.0, seed=seed)
    rng = np.random.default_rng(seed + 1)
    ref = sim.members[0]
    for i, member in enumerate(sim.members[1:], start=1):
        old = member.model
        info = old.meta.wcsinfo
        member.model = simulate.make_cube(
            shape=old.data.shape,
            pointing=(info.crval1, info.crval2),
            source=(150.0, 2.0),
            pointing_error_arcsec=member.pointing_error_arcsec,
            pa_deg=member_pa_deg,
            snr=50.0,
            rng=rng,
            filename=old.meta.filename,
        )
        member.truth_dx, member.truth_dy = simulate._truth_pixels(
            ref.model, member.pointing_error_arcsec, ref.pointing_error_arcsec
        )
        assert i and member.truth_dx != 0.0
    return sim


def test_rotated_members_placed_by_reproject_are_measured():
    """Members at PA 25 deg against a PA 0 reference: not translations, so their white-light
    images are put on the reference grid by reproject_interp; offsets within 0.03 px, and the
    combined cube keeps the source sharp."""
    from jwst_ifualign.adapter.measurement import placement
    from jwst_ifualign.adapter.wcs_mapping import Reprojection
    from jwst_ifualign.algorithms.quality import point_source_fwhm, white_light

    sim = _rotated_member_association(25.0)
    ref = sim.members[0].model
    for m in sim.members[1:]:
        place, varies = placement(ref, m.model)
        assert place.translation is None and isinstance(place.footprint, Reprojection)
        assert not varies
    result = align_members(members_of(sim), AlignOptions())
    assert [r.flag for r in result.members] == ["reference", "ok", "ok"]
    errors = offset_errors(result.members, sim)
    assert np.all(np.abs(errors) < 0.03), errors
    assert not any(r.measurement.native_grid for r in result.members[1:])
    fwhm_ref = point_source_fwhm(white_light(ref.data))[0]
    fwhm_out = point_source_fwhm(white_light(result.data))[0]
    assert fwhm_out < 1.1 * fwhm_ref


def test_find_optimal_celestial_wcs_is_not_a_whole_pixel_extension():
    """Why output_grid="union" is not reproject's find_optimal_celestial_wcs: for a rotated
    reference it returns a North-up grid, and for a North-up one a grid whose pixels are offset
    from the reference's by a fraction of a pixel (so the reference itself would be
    interpolated, and the compiled translation path lost). The union grid here is the
    reference's, extended by whole pixels."""
    from astropy.coordinates import SkyCoord
    from reproject.mosaicking import find_optimal_celestial_wcs

    from jwst_ifualign.adapter.wcs_mapping import celestial_wcs

    def optimal(ref_wcs, inputs):
        return find_optimal_celestial_wcs(
            inputs,
            frame="icrs",
            projection="TAN",
            resolution=abs(ref_wcs.proj_plane_pixel_scales()[1]),
            reference=SkyCoord(*ref_wcs.wcs.crval, unit="deg"),
            negative_lon_cdelt=True,
        )

    rotated = small_association(shape=(10, 31, 33), pa_deg=30.0, n_members=2)
    ref_wcs = celestial_wcs(rotated.members[0].model)
    grid, _ = optimal(ref_wcs, [((31, 33), ref_wcs)])
    assert not np.allclose(grid.pixel_scale_matrix, ref_wcs.pixel_scale_matrix, atol=1e-9)
    assert np.allclose(grid.wcs.pc, np.eye(2)) and grid.wcs.cdelt[0] < 0  # North up

    sim = small_association(shape=(10, 31, 33), n_members=2, errors_arcsec=((0, 0), (0.0, 0.0)))
    ref, member = (m.model for m in sim.members)
    ref_wcs = celestial_wcs(ref)
    shifted = celestial_wcs(member, shift=(-0.65, 0.0))  # a member aligned 0.65 px away
    grid, _ = optimal(ref_wcs, [((31, 33), ref_wcs), ((31, 33), shifted)])
    offset = ref_wcs.wcs.crpix - grid.wcs.crpix
    assert abs(offset[0] - np.round(offset[0])) > 0.1  # not whole pixels
