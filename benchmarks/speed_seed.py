"""The step against the seed notebook's per-slice approach, on the same in-memory data.

For each instrument-like association (``scenarios.py``) and each size ``N`` (``--members``,
default 4 and 16):

(a) ``seed``
    The seed notebook's per-slice approach on the arrays already in memory (the simulated
    models): for every wavelength plane and every non-reference member,
    ``reproject.reproject_interp((plane, member_wcs), reference_wcs, shape_out=...)`` with the
    celestial astropy WCS of each cube (built from ``meta.wcsinfo``; the script checks that it
    agrees with ``meta.wcs``), then ``image_registration.chi2_shift(reference_plane,
    reprojected, err=reference_err_plane)`` (the library replaces NaN by 0), then
    ``np.roll(np.roll(img, int(dx), 1), int(dy), 0)`` and a plain sum over the members. One
    run. It is slow, so by default it is measured only for ``N <= 4``; for larger ``N`` it is
    *extrapolated* from 4 members as ``t4 * (N - 1) / 3`` (its cost is linear in the number of
    non-reference members) and marked ``*``. ``--full`` measures it for every ``N``.
(b) ``step``
    ``IFUAlignStep.call(container)`` on an open ``jwst.datamodels.ModelContainer`` of the same
    in-memory models, default parameters, nothing saved. Best of ``--repeat`` runs.
(b0) ``stpipe alone``
    The same call with an ``IFUAlignStep`` whose ``process`` returns its input: what stpipe
    costs per call in this process (almost all of it the ``gc.collect()`` that starts every
    ``Step.run``, whose cost grows with the Python objects alive). Best of ``--repeat`` runs.

``(a)/(b)`` is the speed-up of the step over the seed notebook (target: at least 300);
``(a)/(b-b0)``, the speed-up of the step's own work, is printed for information. ``--profile``
also prints a cProfile top-10 of (b) for the smallest association (cProfile slows Python-heavy
code more than numpy-heavy code: read it as shares, not times).

Usage::

    python benchmarks/speed_seed.py --quick          # 100 planes, 4 members, 1 run
    python benchmarks/speed_seed.py                  # full size, 4 and 16 members
    python benchmarks/speed_seed.py --full           # also time (a) for 16 members: +25 min
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import gc
import pstats
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import scenarios

#: (a)/(b) at least this.
TARGET_SPEEDUP = 300.0

#: Number of members the seed approach is measured on when it is extrapolated.
SEED_BASE_MEMBERS = 4

HEADERS = [
    "case (N members)",
    "cube",
    "(a) seed s",
    "(b) step s",
    "(a)/(b)",
    "(b0) stpipe s",
    "(a)/(b-b0)",
]


# (a) The seed notebook's per-slice approach


def celestial_wcs(model):
    """Celestial (2-D) astropy WCS of an s3d cube from its ``meta.wcsinfo``.

    This is what the SCI header's RA---TAN / DEC--TAN keywords describe (``CRPIX`` 1-based,
    ``CDELT`` in degrees, PC matrix for the position angle).

    Parameters
    ----------
    model : IFUCubeModel
        A cube whose ``meta.wcsinfo`` was filled by cube_build (or the simulator).

    Returns
    -------
    astropy.wcs.WCS
        Two-axis WCS, pixel (x, y) 0-based in its ``*_values`` methods.
    """
    from astropy.wcs import WCS

    info = model.meta.wcsinfo
    wcs = WCS(naxis=2)
    wcs.wcs.crpix = [info.crpix1, info.crpix2]
    wcs.wcs.crval = [info.crval1, info.crval2]
    wcs.wcs.cdelt = [info.cdelt1, info.cdelt2]
    wcs.wcs.pc = [[info.pc1_1, info.pc1_2], [info.pc2_1, info.pc2_2]]
    wcs.wcs.ctype = [info.ctype1, info.ctype2]
    wcs.wcs.cunit = [info.cunit1 or "deg", info.cunit2 or "deg"]
    wcs.wcs.set()
    return wcs


def check_celestial_wcs(model, wcs):
    """Largest difference (mas) between ``wcs`` and the model's ``meta.wcs`` over a pixel grid.

    Parameters
    ----------
    model : IFUCubeModel
        Cube with a gwcs ``meta.wcs``.
    wcs : astropy.wcs.WCS
        Its celestial WCS (:func:`celestial_wcs`).

    Returns
    -------
    float
        Maximum over a 5 x 5 grid of pixels of the RA (times cos Dec) and Dec differences, mas.
    """
    _, ny, nx = model.data.shape
    y, x = np.meshgrid(np.linspace(0, ny - 1, 5), np.linspace(0, nx - 1, 5), indexing="ij")
    ra, dec, _ = model.meta.wcs(x, y, np.zeros_like(x), with_bounding_box=False)
    ra2, dec2 = wcs.pixel_to_world_values(x, y)
    dra = (np.asarray(ra) - ra2) * np.cos(np.deg2rad(dec2))
    ddec = np.asarray(dec) - dec2
    return float(max(np.max(np.abs(dra)), np.max(np.abs(ddec))) * 3.6e6)


def seed_notebook_align(models):
    """The seed notebook's approach over every plane: reproject, chi2_shift, roll, sum.

    Parameters
    ----------
    models : list of IFUCubeModel
        Members; the first is the reference.

    Returns
    -------
    total : ndarray, shape (nwave, ny, nx)
        Plain sum over the members of each plane (NaN outside the common footprint).
    shifts : ndarray, shape (nwave, nmember - 1, 2)
        ``(dx, dy)`` returned by ``chi2_shift`` for each plane and non-reference member.
    """
    from image_registration import chi2_shift
    from reproject import reproject_interp

    ref = models[0]
    ref_wcs = celestial_wcs(ref)
    member_wcs = [celestial_wcs(m) for m in models[1:]]
    nwave = ref.data.shape[0]
    total = np.empty(ref.data.shape, dtype=np.float64)
    shifts = np.empty((nwave, len(models) - 1, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for k in range(nwave):
            ref_slice = ref.data[k]
            ref_err = ref.err[k]
            plane = np.array(ref_slice, dtype=np.float64)
            for j, (member, wcs) in enumerate(zip(models[1:], member_wcs, strict=True)):
                reprojected, _ = reproject_interp(
                    (member.data[k], wcs), ref_wcs, shape_out=ref_slice.shape
                )
                # chi2_shift replaces NaN by 0 in both images and in err (err 0 -> pixel ignored).
                dx, dy, _, _ = chi2_shift(ref_slice, reprojected, err=ref_err)
                shifts[k, j] = dx, dy
                plane += np.roll(np.roll(reprojected, int(dx), 1), int(dy), 0)
            total[k] = plane
    return total, shifts


def time_seed(models):
    """Wall time (s) of :func:`seed_notebook_align` on ``models`` (one run)."""
    gc.collect()
    start = time.perf_counter()
    seed_notebook_align(models)
    return time.perf_counter() - start


# (b), (b0) The step, and stpipe alone


def time_step_in_memory(models, repeat):
    """Best-of-``repeat`` wall time of ``IFUAlignStep.call(container)`` on in-memory models.

    Parameters
    ----------
    models : list of IFUCubeModel
        The members (reference first).
    repeat : int
        Number of runs.

    Returns
    -------
    best : float
        Shortest wall time, s.
    runs : list of float
        All wall times, s.
    output_bytes : int
        ``data + err + dq + weightmap`` nbytes of the combined cube.
    """
    from jwst.datamodels import ModelContainer

    from jwst_ifualign import IFUAlignStep

    container = ModelContainer(list(models))
    out = {}

    def run():
        result = IFUAlignStep.call(container, configure_log=False)
        out["bytes"] = scenarios.model_nbytes(result)
        result.close()

    best, runs = scenarios.best_of(run, repeat)
    return best, runs, out["bytes"]


def _null_step():
    """``IFUAlignStep`` with a ``process`` that returns its input: stpipe's own cost per call.

    Everything stpipe does around ``process`` is kept (the configuration from the step's spec,
    no CRDS lookup, logging, the ``gc.collect()`` in ``Step.run``).
    """
    from jwst_ifualign import IFUAlignStep

    class NullStep(IFUAlignStep):
        """Returns its input unchanged."""

        def process(self, step_input):
            return step_input

    return NullStep


def time_stpipe_floor(models, repeat):
    """Best-of-``repeat`` wall time of ``NullStep.call(container)`` on the models of (b).

    The same container, process and call as (b), with a step that does nothing: stpipe's own
    cost per call (the ``gc.collect()`` at the start of ``Step.run``, the step's configuration,
    logging). It is part of (b), and of any step's run; ``(b) - (b0)`` is the step's own work.
    """
    from jwst.datamodels import ModelContainer

    container = ModelContainer(list(models))
    step = _null_step()
    best, _ = scenarios.best_of(lambda: step.call(container, configure_log=False), repeat)
    return best


def profile_step_in_memory(models):
    """cProfile statistics of one ``IFUAlignStep.call(container)`` on in-memory models."""
    from jwst.datamodels import ModelContainer

    from jwst_ifualign import IFUAlignStep

    container = ModelContainer(list(models))
    profiler = cProfile.Profile()
    profiler.enable()
    IFUAlignStep.call(container, configure_log=False).close()
    profiler.disable()
    return pstats.Stats(profiler)


def _function_label(func):
    """Short ``module:function`` name of a pstats key ``(file, line, name)``."""
    filename, line, name = func
    if filename == "~":
        return name
    for marker in ("site-packages/", "/work/main/", "/lib/python3"):
        if marker in filename:
            filename = filename.split(marker, 1)[1]
            break
    return f"{filename}:{line}({name})"


def format_top(stats, n=10):
    """Text of two top-``n`` lists of a profile: by cumulative time (this package) and own time."""
    rows = [(func, value) for func, value in stats.stats.items()]
    lines = [f"  total {stats.total_tt:.3f} s under cProfile"]
    lines.append(f"  top {n} by cumulative time, jwst_ifualign functions:")
    ours = [r for r in rows if "jwst_ifualign" in r[0][0]]
    for func, (_, nc, tt, ct, _) in sorted(ours, key=lambda r: -r[1][3])[:n]:
        lines.append(f"    {ct:8.3f} s cum {tt:8.3f} s own {nc:7d} calls  {_function_label(func)}")
    lines.append(f"  top {n} by own time, all functions:")
    for func, (_, nc, tt, ct, _) in sorted(rows, key=lambda r: -r[1][2])[:n]:
        lines.append(f"    {tt:8.3f} s own {ct:8.3f} s cum {nc:7d} calls  {_function_label(func)}")
    return "\n".join(lines)


# One case, the report


def run_case(instrument, n_members, args, folder, seed_cache):
    """(a), (b), (b0) for one association; returns a table row and (a)/(b) (or None)."""
    label = scenarios.INSTRUMENTS[instrument][0]
    scenarios.progress(f"{label}, {n_members} members: simulating")
    sim, shape = scenarios.simulate(instrument, n_members, args.nwave, folder)
    models = [m.model for m in sim.members]
    wcs_mas = max(check_celestial_wcs(m, celestial_wcs(m)) for m in models)
    if wcs_mas > 1.0:
        raise RuntimeError(f"the celestial WCS of (a) is {wcs_mas:.2g} mas off meta.wcs")

    seed_s, extrapolated = None, False
    if args.no_seed:
        pass
    elif args.full or n_members <= SEED_BASE_MEMBERS:
        scenarios.progress(f"  (a) seed per-slice approach, {shape[0]} planes")
        seed_s = time_seed(models)
        if n_members == SEED_BASE_MEMBERS:
            seed_cache[instrument] = seed_s
    else:
        if instrument not in seed_cache:
            scenarios.progress(f"  (a) on the first {SEED_BASE_MEMBERS} members, to extrapolate")
            seed_cache[instrument] = time_seed(models[:SEED_BASE_MEMBERS])
        seed_s = seed_cache[instrument] * (n_members - 1) / (SEED_BASE_MEMBERS - 1)
        extrapolated = True
    if seed_s is not None:
        scenarios.progress(f"  (a) {seed_s:.2f} s{' (extrapolated)' if extrapolated else ''}")

    step_s, runs, _ = time_step_in_memory(models, args.repeat)
    scenarios.progress(f"  (b) {scenarios.runs_text(runs)}")
    floor_s = time_stpipe_floor(models, args.repeat)
    scenarios.progress(f"  (b0) stpipe alone (a step that does nothing): {floor_s:.3f} s")
    if args.profile and n_members == min(args.members):
        title = f"(b) step on in-memory models, {label}, {n_members} members"
        PROFILES.append(title + "\n" + format_top(profile_step_in_memory(models)))
    row = [
        f"{label} {n_members}",
        "x".join(str(v) for v in shape),
        scenarios.seconds_text(seed_s, 1, extrapolated),
        scenarios.seconds_text(step_s, 3),
        scenarios.ratio_text(seed_s, step_s, extrapolated),
        scenarios.seconds_text(floor_s, 3),
        scenarios.ratio_text(seed_s, step_s - floor_s, extrapolated),
    ]
    speedup = None if seed_s is None else (seed_s / step_s, extrapolated)
    return row, speedup


#: Profile texts collected during the run, printed after the tables.
PROFILES = []


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    scenarios.add_scenario_arguments(parser)
    parser.add_argument(
        "--full",
        action="store_true",
        help="measure (a) for every association size (16 members: many minutes)",
    )
    parser.add_argument("--no-seed", action="store_true", help="skip (a)")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="print a cProfile top-10 of (b) for the smallest association",
    )
    args = scenarios.finish_scenario_arguments(parser, parser.parse_args(argv))
    scenarios.quiet_logging()
    start = time.perf_counter()
    rows, targets, seed_cache = [], [], {}
    with tempfile.TemporaryDirectory(prefix="ifualign_seed_") as tmp:
        for instrument in args.instruments:
            for n_members in args.members:
                folder = Path(tmp) / f"{instrument}{n_members}"
                row, speedup = run_case(instrument, n_members, args, folder, seed_cache)
                rows.append(row)
                if speedup is not None:
                    value, extrapolated = speedup
                    targets.append(
                        [
                            f"(a)/(b) >= {TARGET_SPEEDUP:.0f}",
                            row[0],
                            f"{value:.0f}" + (" (extrapolated)" if extrapolated else ""),
                            scenarios.verdict(value >= TARGET_SPEEDUP),
                        ]
                    )
                gc.collect()
    print()
    print(scenarios.header("ifu_align against the seed notebook", args))
    print(f"wall time {time.perf_counter() - start:.0f} s\n")
    if args.nwave is not None:
        print(f"Cubes cut to {args.nwave} planes: the target is meant for full-size cubes.\n")
    scenarios.print_tables(
        [
            (f"Timing (seconds; (b), (b0) best of {args.repeat}; * = extrapolated)", HEADERS, rows),
            ("Target", ["target", "case", "value", "verdict"], targets),
        ],
        args.markdown,
    )
    if any("*" in row[2] for row in rows):
        print(
            f"* (a) extrapolated from {SEED_BASE_MEMBERS} members as t{SEED_BASE_MEMBERS} x "
            f"(N - 1) / {SEED_BASE_MEMBERS - 1}; use --full to measure it.\n"
        )
    for text in PROFILES:
        print(text + "\n")
    return 0


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
