"""Offsets on real single-exposure cubes: un-flagged outliers, holes, striping, backgrounds.

Each artefact is added by the simulator (:class:`jwst_ifualign.testing.simulate.Artefacts`) to
otherwise clean, small cube_build-like associations with fixed seeds.
"""

from __future__ import annotations

import logging

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
from jwst_ifualign.adapter.outputs import offsets_table
from jwst_ifualign.algorithms.outliers import find_outliers
from jwst_ifualign.testing.simulate import MIRI_CH1, Artefacts, make_cube, simulate_association

#: Pointing errors of the 4 members (arcsec), both signs, sub-spaxel and beyond.
ERRORS = ((0.03, -0.05), (-0.07, 0.04), (0.11, 0.06), (-0.04, -0.12))


def _align(artefacts, *, method="chi2", snr=30.0, seed=3, **options):
    sim = small_association(errors_arcsec=ERRORS, snr=snr, seed=seed, artefacts=artefacts)
    result = align_members(members_of(sim), AlignOptions(method=method, **options))
    return sim, result


def _injected_outliers(artefacts, seed=3, snr=30.0):
    """Flat indices of the voxels the simulator made outliers in member 1."""
    dirty = small_association(errors_arcsec=ERRORS, snr=snr, seed=seed, artefacts=artefacts)
    clean = small_association(errors_arcsec=ERRORS, snr=snr, seed=seed)
    a, b = dirty.members[1].model.data, clean.members[1].model.data
    return np.flatnonzero(np.isfinite(a) & (a != b)), dirty, clean


@pytest.mark.parametrize("method", ["chi2", "dft"])
def test_outliers_do_not_move_the_offset(method):
    # 0.2% of member 1's voxels at 50x the peak: without rejection 0.05-0.2 px off.
    artefacts = {1: Artefacts(outlier_fraction=0.002, outlier_amplitude=50.0)}
    sim, result = _align(artefacts, method=method)
    _, clean = _align({}, method=method)
    errors = np.abs(offset_errors(result.members, sim))
    assert errors.max() < 0.02
    # The rejection leaves the offsets where the clean cubes put them (dft's offsets are
    # quantised to 1 / upsample_factor = 0.01 px: one step apart is allowed for it).
    diff = np.abs(offset_errors(result.members, sim) - offset_errors(clean.members, sim))
    assert diff.max() < (0.0101 if method == "dft" else 0.01)


def test_outliers_are_counted_and_kept_out_of_the_combined_cube():
    artefacts = {1: Artefacts(outlier_fraction=0.002, outlier_amplitude=50.0)}
    injected, dirty, clean = _injected_outliers(artefacts)
    result = align_members(members_of(dirty), AlignOptions())
    reference = align_members(members_of(clean), AlignOptions())
    assert result.members[1].outliers >= 0.9 * injected.size
    assert [r.outliers for i, r in enumerate(result.members) if i != 1] == [0, 0, 0]
    # Without them, the combined cube is the clean one's but for the missing voxels (noise, and
    # the bilinear fallback of the resampling around them): no spikes. An outlier left in would
    # differ by about 50 / 4 times the peak.
    peak = np.nanmax(reference.data)
    assert np.nanmax(np.abs(result.data - reference.data)) < 0.5 * peak
    table = offsets_table(result, options=AlignOptions(), names=members_of(dirty).names)
    assert list(table["outliers"]) == [r.outliers for r in result.members]
    assert set(table["error_term"]) <= {"", "noise", "chunks", "spatial", "resolution"}


def test_outlier_threshold_zero_turns_rejection_off():
    artefacts = {1: Artefacts(outlier_fraction=0.002, outlier_amplitude=50.0)}
    injected, dirty, _ = _injected_outliers(artefacts)
    result = align_members(members_of(dirty), AlignOptions(outlier_threshold=0.0))
    assert all(r.outliers == 0 for r in result.members)
    # The outliers are then in the combined cube.
    assert np.nanmax(result.data) > 10 * np.nanmax(
        align_members(members_of(dirty), AlignOptions()).data
    )


def test_input_models_are_not_modified_by_the_rejection():
    artefacts = {1: Artefacts(outlier_fraction=0.002, outlier_amplitude=50.0)}
    sim = small_association(errors_arcsec=ERRORS, seed=3, artefacts=artefacts)
    before = [m.model.dq.copy() for m in sim.members]
    align_members(members_of(sim), AlignOptions())
    for b, m in zip(before, sim.members, strict=True):
        np.testing.assert_array_equal(b, m.model.dq)


@pytest.mark.parametrize("snr", [20.0, np.inf])
def test_emission_lines_are_not_taken_for_outliers(snr):
    # The simulated blob carries an emission line 4x its continuum; add a strong line to the
    # point source too (resolved in wavelength, sampled on the sky as MIRI's PSF is).
    model = make_cube(setup=MIRI_CH1, shape=(120, 35, 37), snr=snr, rng=np.random.default_rng(4))
    data = model.data.astype(float)
    z = np.arange(data.shape[0])
    line = 30.0 * np.exp(-0.5 * ((z - 70) / 1.2) ** 2)
    inside = np.isfinite(data).all(axis=0)
    white = np.where(inside, np.nan_to_num(data).mean(axis=0), np.nan)
    peak = np.nanmax(white)
    source = white / peak  # the white-light shape, peak 1
    data += line[:, None, None] * np.nan_to_num(source)[None] * peak / 10
    assert find_outliers(data, model.err).size == 0
    # A cosmic ray on top of the line's peak is still found.
    y, x = np.unravel_index(np.nanargmax(source), source.shape)
    data[40, y, x + 3] += 50 * peak
    assert np.ravel_multi_index((40, y, x + 3), data.shape) in find_outliers(data, model.err)


@pytest.mark.parametrize("method", ["chi2", "dft"])
@pytest.mark.parametrize("where", [0, 2])
def test_hole_next_to_the_source_does_not_bias(method, where):
    # One NaN spaxel next to the source peak in the reference (0) or in a member (2): before,
    # 0.05-0.19 px on every member for a hole in the reference.
    sim, result = _align({where: Artefacts(hole_at_source=True)}, method=method, snr=np.inf)
    assert np.abs(offset_errors(result.members, sim)).max() < 0.01


@pytest.mark.parametrize("method", ["chi2", "dft"])
def test_random_holes_do_not_bias(method):
    artefacts = {i: Artefacts(hole_fraction=0.02) for i in range(4)}
    sim, result = _align(artefacts, method=method, snr=np.inf)
    assert np.abs(offset_errors(result.members, sim)).max() < 0.01


def test_striping_is_reported_as_systematic_and_covered(caplog):
    # Striping x(1 +- 0.15), its own phase per exposure: the same at every wavelength, so the
    # wavelength chunks agree and their error averages down; the spatial term must see it.
    artefacts = {i: Artefacts(stripe_amplitude=0.15) for i in range(4)}
    sim = simulate_association(
        shape=(60, 45, 47), errors_arcsec=ERRORS, snr=20.0, seed=5, artefacts=artefacts
    )
    with caplog.at_level(logging.WARNING, logger="jwst_ifualign"):
        result = align_members(members_of(sim), AlignOptions())
    errors = offset_errors(result.members, sim)[1:]
    sigma = np.array([(r.measured.dx_err, r.measured.dy_err) for r in result.members[1:]])
    assert np.all(np.abs(errors) <= 2.0 * sigma)
    assert all(r.measurement.error_term == "spatial" for r in result.members[1:])
    assert "systematic error term" in caplog.text


@pytest.mark.parametrize("method", ["chi2", "dft"])
def test_striped_members_are_measured_on_smoothed_images(method, caplog):
    # Without smoothing the largest error of these 6 striped members is 0.09-0.19 px (chi2)
    # and 0.12-0.25 px (dft); band-pass filtered (1 spaxel), 0.08-0.09 px.
    artefacts = {i: Artefacts(stripe_amplitude=0.15) for i in range(4)}
    errors, smoothed = [], []
    for seed in (5, 7):
        sim = simulate_association(
            shape=(60, 45, 47), errors_arcsec=ERRORS, snr=20.0, seed=seed, artefacts=artefacts
        )
        with caplog.at_level(logging.WARNING, logger="jwst_ifualign"):
            result = align_members(members_of(sim), AlignOptions(method=method))
        errors.append(offset_errors(result.members, sim)[1:])
        table = offsets_table(result, options=AlignOptions(method=method), names=members_of(sim).names)
        smoothed.extend(table["smoothing"][1:])
    assert np.abs(errors).max() < 0.1
    assert sum(s == 1.0 for s in smoothed) >= 5  # one member of seed 7 needs none
    assert "band-pass filtered (Gaussian sigma 1 spaxels" in caplog.text


def test_undersampled_nirspec_like_psf_is_measured_on_smoothed_images():
    # The PSF (FWHM 0.9-1.7 spaxels) differs between exposures by its sampling phase: a static
    # pattern. dft's largest error on these 6 members is 0.060 px unfiltered, 0.030 filtered.
    errors = {0.0: [], 1.0: []}
    for seed in (3, 4):
        sim = small_association(
            setup=NIRSPEC_G395H, shape=NIRSPEC_SMALL, errors_arcsec=ERRORS, snr=30.0, seed=seed
        )
        for smoothing, out in errors.items():
            result = align_members(members_of(sim), AlignOptions(method="dft", smoothing=smoothing))
            out.append(offset_errors(result.members, sim)[1:])
            assert all(r.measurement.smoothing == smoothing for r in result.members[1:])
    assert np.abs(errors[1.0]).max() < 0.04
    assert np.abs(errors[0.0]).max() > 0.055  # smoothing=0 turns it off


def test_a_static_pattern_below_the_floor_is_not_smoothed():
    # At S/N 100 a reprojected member shows a 0.004 px static residual (interpolation blur),
    # twice its noise term, but smoothing would cost more than it removes.
    sim = small_association(errors_arcsec=ERRORS, snr=100.0, seed=3, pa_deg=30.0)
    result = align_members(members_of(sim), AlignOptions())
    measurements = [r.measurement for r in result.members[1:]]
    assert any(m.systematic_dominates for m in measurements)
    assert all(m.smoothing == 0.0 for m in measurements)
    assert np.abs(offset_errors(result.members, sim)).max() < 0.005


def test_clean_cubes_do_not_warn_of_systematics(caplog):
    sim = small_association(errors_arcsec=ERRORS, snr=20.0, seed=3, shape=MIRI_SMALL)
    with caplog.at_level(logging.WARNING, logger="jwst_ifualign"):
        align_members(members_of(sim), AlignOptions())
    assert "systematic error term" not in caplog.text


def test_background_offsets_and_gradients_stay_within_errors():
    # 3 noise sigma per voxel on two members: a constant (removed) and a gradient across the
    # field, which is a static pattern in the white-light image (the spatial term covers it).
    artefacts = {1: Artefacts(background_offset=3.0), 2: Artefacts(background_gradient=3.0)}
    sim, result = _align(artefacts, snr=20.0)
    errors = offset_errors(result.members, sim)[1:]
    sigma = np.array([(r.measured.dx_err, r.measured.dy_err) for r in result.members[1:]])
    assert np.abs(errors[0]).max() < 0.02  # the constant offset
    assert np.all(np.abs(errors) <= 2.0 * sigma)
