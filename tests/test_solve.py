"""Global least-squares solution from pairs, and the guards of the measurement."""

import logging

import numpy as np
import pytest
from helpers import members_of, offset_errors, small_association

from jwst_ifualign.adapter.align import AlignOptions, align_members
from jwst_ifualign.algorithms.offset import Offset
from jwst_ifualign.algorithms.solve import PairMeasurement, solve_pairs


def test_exact_pairs_give_exact_offsets():
    truth = np.array([[0.0, 0.0], [0.3, -0.2], [-0.5, 0.1], [0.25, 0.6]])
    pairs = [
        PairMeasurement(i, j, Offset(*(truth[j] - truth[i]), 0.01, 0.01))
        for i in range(4)
        for j in range(i + 1, 4)
    ]
    sol = solve_pairs(4, 0, pairs)
    got = np.array([(o.dx, o.dy) for o in sol.offsets])
    np.testing.assert_allclose(got, truth, atol=1e-12)
    assert sol.chi2 == pytest.approx(0, abs=1e-12) and sol.dof == 2 * (6 - 3)
    assert sol.offsets[0].dx_err == 0


def test_reference_choice_only_changes_the_zero_point():
    truth = np.array([[0.0, 0.0], [0.3, -0.2], [-0.5, 0.1]])
    pairs = [PairMeasurement(i, j, Offset(*(truth[j] - truth[i]), 0.01, 0.01)) for i, j in [(0, 1), (1, 2), (0, 2)]]
    sol = solve_pairs(3, 1, pairs)
    got = np.array([(o.dx, o.dy) for o in sol.offsets])
    np.testing.assert_allclose(got, truth - truth[1], atol=1e-12)


def test_inconsistent_pair_shows_in_residuals_and_errors():
    truth = np.array([[0.0, 0.0], [0.3, -0.2], [-0.5, 0.1]])
    pairs = [PairMeasurement(i, j, Offset(*(truth[j] - truth[i]), 0.01, 0.01)) for i, j in [(0, 1), (1, 2), (0, 2)]]
    pairs[1] = PairMeasurement(1, 2, Offset(pairs[1].offset.dx + 0.2, pairs[1].offset.dy, 0.01, 0.01))
    sol = solve_pairs(3, 0, pairs)
    assert max(abs(r[4]) for r in sol.residuals) > 5  # residuals in sigma
    assert sol.chi2 > sol.dof
    assert sol.offsets[1].dx_err > 0.05  # errors scaled by sqrt(reduced chi2)


def test_disconnected_member_raises():
    pairs = [PairMeasurement(0, 1, Offset(0.1, 0.1, 0.01, 0.01))]
    with pytest.raises(ValueError, match=r"members \[2\] are not connected"):
        solve_pairs(3, 0, pairs)


def test_noisy_reference_honest_errors_and_precise_mutual_offsets():
    """A noisy reference moves every offset's zero point; errors say so, mutual offsets stay sharp.

    The reference's noise enters every direct offset the same way (the estimators are linear in
    the images to first order), so the differences of direct offsets are sharp without any pair
    being measured: with every member overlapping the reference no pair is measured at all.
    """
    sim = small_association(snr=30.0)
    ref = sim.members[0].model
    rng = np.random.default_rng(11)
    extra = 4.0 * np.nanmedian(ref.err)
    ref.data = (ref.data + rng.normal(0, extra, ref.data.shape)).astype(np.float32)
    ref.err = np.hypot(ref.err, extra).astype(np.float32)
    result = align_members(members_of(sim), AlignOptions(solution="pairs"))
    assert result.pair_fit is None
    errors = offset_errors(result.members, sim)[1:]
    sigmas = np.array([(r.measured.dx_err, r.measured.dy_err) for r in result.members[1:]])
    assert np.all(np.abs(errors) < 3 * sigmas), (errors, sigmas)
    # Mutual offsets of the other members do not carry the reference's noise.
    measured = np.array([(r.measured.dx, r.measured.dy) for r in result.members[1:]])
    truth = np.array([(m.truth_dx, m.truth_dy) for m in sim.members[1:]])
    mutual = (measured - measured[0]) - (truth - truth[0])
    assert np.all(np.abs(mutual) < 0.02), mutual


def test_low_snr_member_is_flagged_and_combined_with_wcs(caplog):
    sim = small_association(n_members=3)
    faint = sim.members[2].model
    rng = np.random.default_rng(5)
    noise = 1e3 * np.nanmax(faint.data)
    faint.data = rng.normal(0, noise, faint.data.shape).astype(np.float32) + 0 * faint.data
    faint.err = np.where(np.isfinite(faint.data), noise, np.nan).astype(np.float32)
    with caplog.at_level(logging.WARNING, logger="jwst_ifualign"):
        result = align_members(members_of(sim), AlignOptions(min_snr=5.0))
    assert result.members[2].flag == "rejected_low_snr"
    assert result.members[2].applied.dx == 0.0
    assert "below min_snr" in caplog.text
    assert abs(result.members[1].measured.dx - sim.members[1].truth_dx) < 0.05


def test_wavelength_dependent_offset_is_warned(caplog):
    """A member whose offset drifts with wavelength: chunk offsets disagree, and the log says so."""
    sim = small_association(n_members=2, shape=(100, 35, 37), snr=200.0)
    member = sim.members[1].model
    shifted = small_association(
        n_members=2, shape=(100, 35, 37), snr=200.0, errors_arcsec=((0.0, 0.0), (0.06, 0.0))
    ).members[1].model
    member.data[50:] = shifted.data[50:]  # second half of the band moved by 0.06"
    with caplog.at_level(logging.WARNING, logger="jwst_ifualign"):
        result = align_members(members_of(sim), AlignOptions(method="chi2", error_chunks=4))
    assert result.members[1].measurement.chunk_chi2 > 4.6
    assert "chunks disagree" in caplog.text


def test_connected_to_follows_chains_and_stops_at_gaps():
    from jwst_ifualign.algorithms.solve import connected_to

    off = Offset(0.1, 0.1, 0.01, 0.01)
    pairs = [PairMeasurement(0, 1, off), PairMeasurement(2, 1, off), PairMeasurement(3, 4, off)]
    assert connected_to(0, pairs) == {0, 1, 2}
    assert connected_to(4, pairs) == {3, 4}


def test_chain_through_a_neighbour_is_solved_exactly():
    """Member 2 is measured only against member 1: it is solved through it."""
    truth = np.array([[0.0, 0.0], [0.3, -0.2], [0.7, 0.1]])
    pairs = [PairMeasurement(i, j, Offset(*(truth[j] - truth[i]), 0.01, 0.02)) for i, j in [(0, 1), (1, 2)]]
    sol = solve_pairs(3, 0, pairs)
    np.testing.assert_allclose([(o.dx, o.dy) for o in sol.offsets], truth, atol=1e-12)
    # Errors add along the chain.
    assert sol.offsets[2].dx_err == pytest.approx(np.hypot(0.01, 0.01))
    assert sol.offsets[2].dy_err == pytest.approx(np.hypot(0.02, 0.02))
    assert sol.dof == 0
