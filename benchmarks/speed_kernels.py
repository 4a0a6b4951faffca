"""Compiled kernels against the numpy path, end to end: ``IFUAlignStep.call`` on both.

The two passes over every voxel (a translated member added to the weighted mean, and the
white-light sums) run either as compiled kernels or in numpy
(:mod:`jwst_ifualign.algorithms.kernels`; environment variable ``JWST_IFUALIGN_KERNELS``). For
each instrument-like association (``scenarios.py``), this script times
``IFUAlignStep.call(container)`` on the open, in-memory members with default parameters and
nothing saved, with ``JWST_IFUALIGN_KERNELS=compiled`` and ``=numpy`` (the runs alternate, best of
``--repeat`` each), and checks that both give the same offsets and combined cube.

Target: the numpy path at most 4 times slower than the compiled one.

``--scattered F`` also sets a fraction ``F`` of the voxels of every member but the reference to
NaN (scattered defects, as hot pixels leave in real cubes), where the numpy path translates whole
planes instead of taking translate_parts' per-voxel path.

Usage::

    python benchmarks/speed_kernels.py                  # 4 members, full size, best of 3
    python benchmarks/speed_kernels.py --quick          # 100 planes, 1 run
    python benchmarks/speed_kernels.py --members 4,16 --markdown
    python benchmarks/speed_kernels.py --scattered 0.01  # 1% scattered NaN voxels
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scenarios

from jwst_ifualign.algorithms import kernels

#: numpy time / compiled time, end to end, at most this.
TARGET_NUMPY_RATIO = 4.0

HEADERS = [
    "case (N members)",
    "cube",
    "compiled s",
    "numpy s",
    "numpy/compiled",
    "max offset diff. px",
    "max rel. diff. data",
]


def time_step(container, implementation, repeat):
    """Best wall time (s) and the last result of ``IFUAlignStep.call`` with one implementation.

    The implementation is chosen as a user would: ``JWST_IFUALIGN_KERNELS`` in this process.
    """
    from jwst_ifualign import IFUAlignStep

    os.environ[kernels.ENVIRONMENT_VARIABLE] = implementation
    out = {}

    def run():
        out["result"] = IFUAlignStep.call(container, configure_log=False)

    best, _ = scenarios.best_of(run, repeat)
    return best, out["result"]


def compare(compiled, numpy_result):
    """(largest offset difference in px, largest data difference relative to the data's peak)."""
    a = compiled.meta.ifu_align.instance["members"]
    b = numpy_result.meta.ifu_align.instance["members"]
    offsets = max(max(abs(x["dx"] - y["dx"]), abs(x["dy"] - y["dy"])) for x, y in zip(a, b))
    if not np.array_equal(np.isnan(compiled.data), np.isnan(numpy_result.data)):
        raise RuntimeError("the two paths cover different voxels")
    if not np.array_equal(compiled.dq, numpy_result.dq):
        raise RuntimeError("the two paths give different DQ")
    peak = np.nanmax(np.abs(numpy_result.data))
    return offsets, float(np.nanmax(np.abs(compiled.data - numpy_result.data)) / peak)


def run_case(instrument, n_members, args, folder):
    """Both paths on one simulated association; returns a table row and the ratio."""
    from jwst.datamodels import ModelContainer

    label = scenarios.INSTRUMENTS[instrument][0]
    scenarios.progress(f"{label}, {n_members} members: simulating")
    sim, shape = scenarios.simulate(instrument, n_members, args.nwave, folder)
    rng = np.random.default_rng(7)
    for member in sim.members[1:]:
        data = member.model.data
        data[rng.random(data.shape) < args.scattered] = np.nan
    container = ModelContainer([m.model for m in sim.members])
    best = {"compiled": float("inf"), "numpy": float("inf")}
    results = {}
    for _ in range(args.repeat):  # alternate, so that both see the same machine load
        for implementation in best:
            seconds, results[implementation] = time_step(container, implementation, 1)
            best[implementation] = min(best[implementation], seconds)
    scenarios.progress(f"  compiled {best['compiled']:.3f} s, numpy {best['numpy']:.3f} s")
    offsets, data = compare(results["compiled"], results["numpy"])
    ratio = best["numpy"] / best["compiled"]
    row = [
        f"{label} {n_members}",
        "x".join(str(v) for v in shape),
        scenarios.seconds_text(best["compiled"], 3),
        scenarios.seconds_text(best["numpy"], 3),
        f"{ratio:.2f}",
        f"{offsets:.1e}",
        f"{data:.1e}",
    ]
    return row, ratio


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    scenarios.add_scenario_arguments(parser, members="4")
    parser.add_argument(
        "--scattered",
        type=float,
        default=0.0,
        help="fraction of NaN voxels scattered in the members but the reference",
    )
    args = scenarios.finish_scenario_arguments(parser, parser.parse_args(argv))
    if kernels.compiled_module() is None:
        parser.error("the compiled kernels are not built: nothing to compare the numpy path with")
    scenarios.quiet_logging()
    start = time.perf_counter()
    rows, targets = [], []
    with tempfile.TemporaryDirectory(prefix="ifualign_kernels_") as tmp:
        for instrument in args.instruments:
            for n_members in args.members:
                row, ratio = run_case(
                    instrument, n_members, args, Path(tmp) / f"{instrument}{n_members}"
                )
                rows.append(row)
                targets.append(
                    [
                        f"numpy/compiled <= {TARGET_NUMPY_RATIO:g}",
                        row[0],
                        f"{ratio:.2f}",
                        scenarios.verdict(ratio <= TARGET_NUMPY_RATIO),
                    ]
                )
    print()
    print(scenarios.header("ifu_align: compiled kernels vs numpy, end to end", args))
    print(f"wall time {time.perf_counter() - start:.0f} s")
    print(f"scattered NaN voxels in the members but the reference: {args.scattered:g}\n")
    scenarios.print_tables(
        [
            (
                f"IFUAlignStep.call on in-memory members (seconds, best of {args.repeat})",
                HEADERS,
                rows,
            ),
            ("Target", ["target", "case", "value", "verdict"], targets),
        ],
        args.markdown,
    )
    return 0


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
