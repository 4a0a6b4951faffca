"""Time per member of the measurement of a mosaic as it grows: 16, 36 and 64 tiles.

A mosaic member that does not overlap the reference is measured against the members it
overlaps (the overlap graph), so the work grows with the number of overlaps, about 2-3 pairs per
member on a grid, not with the number of pairs of members. Run:

    python benchmarks/mosaic_scaling.py [--planes 40] [--repeat 3]

Each scenario simulates an n x n grid of MIRI-like tiles overlapping by half along both axes
(``jwst_ifualign.testing.mosaic``), then times ``align_members`` (measurement, resampling and
combination on the reference grid, arrays in memory; best of ``--repeat``) and prints the time
per member, the number of measured pairs (direct offsets and chained pairs) and the worst offset
error against the truth.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from jwst_ifualign.adapter.align import AlignOptions, align_members
from jwst_ifualign.adapter.inputs import Members
from jwst_ifualign.testing.mosaic import grid_layout, simulate_mosaic


def measure_mosaic(side, *, planes, repeat, output_grid="reference"):
    """Best time of ``align_members`` on a side x side mosaic; returns a dict of results."""
    sim = simulate_mosaic(tiles_arcsec=grid_layout(side, side), shape=(planes, 35, 37), seed=side)
    models = [m.model for m in sim.members]
    members = Members(models, [m.meta.filename for m in models], "mosaic", [False] * len(models))
    best, result = np.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = align_members(members, AlignOptions(output_grid=output_grid))
        best = min(best, time.perf_counter() - t0)
    worst = max(
        max(abs(r.measured.dx - m.truth_dx), abs(r.measured.dy - m.truth_dy))
        for r, m in zip(result.members, sim.members, strict=True)
    )
    return {
        "members": len(models),
        "seconds": best,
        "per_member": best / len(models),
        "pairs": len(result.pair_fit.residuals) if result.pair_fit is not None else 0,
        "worst_error": worst,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--planes", type=int, default=40, help="wavelength planes per tile")
    parser.add_argument("--repeat", type=int, default=3, help="runs per mosaic (best is kept)")
    args = parser.parse_args()
    rows = [measure_mosaic(side, planes=args.planes, repeat=args.repeat) for side in (4, 6, 8)]
    print(
        "| members | align_members | per member | measured pairs | pairs / member | worst error |"
    )
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['members']} | {r['seconds']:.2f} s | {1e3 * r['per_member']:.1f} ms | "
            f"{r['pairs']} | {r['pairs'] / r['members']:.2f} | {r['worst_error']:.4f} px |"
        )


if __name__ == "__main__":
    main()
