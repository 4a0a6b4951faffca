"""Mosaics: members are measured along the overlap graph and solved through their neighbours."""

import numpy as np
import pytest
from helpers import members_of

from jwst_ifualign.adapter.align import AlignOptions, align_members
from jwst_ifualign.testing.mosaic import grid_layout, simulate_mosaic

#: Small tiles: few planes keep the simulation and the measurement fast.
TILE = (12, 35, 37)


def direct_members(fit, ref=0):
    """Members measured against the reference (edges of the graph that touch it)."""
    edges = [(i, j) for i, j, *_ in fit.residuals]
    return sorted({j for i, j in edges if i == ref} | {i for i, j in edges if j == ref})


@pytest.fixture(scope="module")
def chained():
    """A 3 x 2 mosaic (the two tiles at x = 3.2" do not overlap the reference) and, 30" away,
    two tiles that overlap each other but nothing else."""
    tiles = [*grid_layout(3, 2, (1.6, 1.4)), (30.0, 0.0), (31.6, 0.0)]
    sim = simulate_mosaic(tiles_arcsec=tiles, shape=TILE, seed=3)
    return sim, align_members(members_of(sim), AlignOptions())


def test_chained_members_are_solved_through_their_neighbours(chained):
    sim, result = chained
    assert direct_members(result.pair_fit) == [1, 3, 4]  # 2 and 5 reach it only via others
    for k in range(6):
        r, m = result.members[k], sim.members[k]
        assert r.flag in ("ok", "reference"), (k, r.flag)
        assert abs(r.measured.dx - m.truth_dx) < 0.05 and abs(r.measured.dy - m.truth_dy) < 0.05
        assert r.applied == r.measured
    for k in (2, 5):  # chained members have a real error and an offset on the sky
        r = result.members[k]
        assert 0 < r.measured.dx_err < 0.05 and 0 < r.measured.dy_err < 0.05
        assert abs(r.ra_offset - sim.members[k].truth_ra_offset) < 0.05 * 0.13


def test_a_component_that_does_not_reach_the_reference_is_flagged(chained):
    sim, result = chained
    for k in (6, 7):
        r = result.members[k]
        assert r.flag == "not_connected"
        assert r.applied.dx == 0.0 and r.applied.dy == 0.0 and r.ra_offset == 0.0
        assert np.isnan(r.measured.dx)


def test_solution_reference_does_not_chain(chained):
    sim, _ = chained
    result = align_members(members_of(sim), AlignOptions(solution="reference"))
    assert [r.flag for r in result.members] == [
        "reference", "ok", "not_connected", "ok", "ok", "not_connected", "not_connected", "not_connected"
    ]
    assert result.pair_fit is None


def test_union_grid_holds_the_whole_mosaic(chained):
    sim, _ = chained
    models = members_of(sim)
    models.models, models.names = models.models[:6], models.names[:6]
    models.opened_here = models.opened_here[:6]
    result = align_members(models, AlignOptions(output_grid="union"))
    ny, nx = result.data.shape[1:]
    ref_ny, ref_nx = sim.members[0].model.data.shape[1:]
    assert nx > ref_nx + 20 and ny > ref_ny + 8  # 3.2" and 1.4" more: 25 and 11 spaxels
    covered = (result.count > 0).any(axis=0)
    # Every tile's centre is covered in the mosaic.
    x0, y0 = result.grid_origin
    for m, r in zip(sim.members[:6], result.members, strict=True):
        w = m.model.meta.wcs
        cx, cy = (np.array(m.model.data.shape[1:][::-1]) - 1) / 2
        ra, dec, lam = w(cx, cy, 0)
        x, y, _ = sim.members[0].model.meta.wcs.invert(ra, dec, lam, with_bounding_box=False)
        assert covered[int(round(y - r.applied.dy - y0)), int(round(x - r.applied.dx - x0))]


def test_members_at_another_position_angle_chain_too():
    """Tile 1 (PA 30 deg) overlaps only tile 2: the pair is measured on tile 1's rotated grid
    and converted into reference pixels."""
    tiles = [(0.0, 0.0), (3.2, 0.0), (1.6, 0.0)]
    sim = simulate_mosaic(tiles_arcsec=tiles, pa_deg=(0.0, 30.0, 0.0), shape=TILE, seed=5)
    result = align_members(members_of(sim), AlignOptions())
    assert direct_members(result.pair_fit) == [2]
    for r, m in zip(result.members, sim.members, strict=True):
        assert r.flag in ("ok", "reference")
        assert abs(r.measured.dx - m.truth_dx) < 0.05 and abs(r.measured.dy - m.truth_dy) < 0.05


def test_6x6_mosaic_measures_at_most_4n_pairs():
    sim = simulate_mosaic(tiles_arcsec=grid_layout(6, 6), shape=(6, 35, 37), seed=2)
    result = align_members(members_of(sim), AlignOptions())
    n = len(sim.members)
    measured_pairs = len(result.pair_fit.residuals)  # direct offsets and chained pairs
    assert n - 1 <= measured_pairs <= 4 * n
    assert all(r.flag in ("ok", "reference") for r in result.members)
    worst = max(
        max(abs(r.measured.dx - m.truth_dx), abs(r.measured.dy - m.truth_dy))
        for r, m in zip(result.members, sim.members, strict=True)
    )
    assert worst < 0.05
