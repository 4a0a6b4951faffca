"""The step from the association file to its written outputs, against the I/O floor.

For each instrument-like association (``scenarios.py``) and each size ``N`` (``--members``,
default 4 and 16):

(c) ``step (files)``
    ``IFUAlignStep.call(asn_path, save_results=True, output_dir=tmpdir)`` in this process: from
    the association file to the three written outputs. Best of ``--repeat`` runs. Also one run
    of ``strun ifu_align asn.json --output_dir=...`` as a subprocess, for information: that time
    includes the interpreter and jwst start-up, reported as ``strun - (c)`` and, separately, as
    the wall time of ``strun ifu_align --help``.
(d) ``I/O floor``
    What any step must do with these files: ``stdatamodels.jwst.datamodels.open`` on each
    member, touching its arrays (sums of data, err and dq), and saving one output-sized
    IFUCubeModel (a copy of the reference) to a FITS file. Best of ``--repeat`` runs. The copy
    keeps the files' big-endian arrays, so unlike the step's output it needs no byte swap when
    written (a few hundredths of a second for these sizes).

``(c)/(d)`` is how far the end-to-end step is above the I/O floor (1.0: the step costs nothing
beyond opening and writing; target: at most 1.5 for 4 MIRI-like members). When the I/O floor
is at least half of (c), or with ``--profile``, a cProfile breakdown of (d) (on open and on save:
schema validation, YAML, ASDF, FITS, byte order, ...) is printed.

Usage::

    python benchmarks/speed_files.py --quick            # 100 planes, 4 members, 1 run
    python benchmarks/speed_files.py --members 4 --instruments miri --markdown
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scenarios

#: (c)/(d) at most this, for 4 MIRI-like members.
TARGET_IO_RATIO = 1.5

HEADERS = [
    "case (N members)",
    "cube",
    "(c) files s",
    "(d) I/O s",
    "(c)/(d)",
    "strun s",
    "strun-(c) s",
]


# (c) The step from the association file


def time_step_from_files(asn_path, output_dir, repeat):
    """Best-of-``repeat`` wall time of the step from the association file to written outputs.

    Parameters
    ----------
    asn_path : Path
        Association JSON.
    output_dir : Path
        Where the outputs go (emptied before every run).
    repeat : int
        Number of runs.

    Returns
    -------
    best : float
        Shortest wall time, s.
    runs : list of float
        All wall times, s.
    """
    from jwst_ifualign import IFUAlignStep

    def run():
        shutil.rmtree(output_dir, ignore_errors=True)
        output_dir.mkdir(parents=True)
        result = IFUAlignStep.call(
            str(asn_path), save_results=True, output_dir=str(output_dir), configure_log=False
        )
        result.close()

    best, runs = scenarios.best_of(run, repeat)
    written = sorted(p.name for p in output_dir.iterdir())
    if len(written) < 3:
        raise RuntimeError(f"The step wrote {written} in {output_dir}; expected three outputs.")
    return best, runs


def _strun():
    path = Path(sys.executable).with_name("strun")
    return str(path) if path.exists() else shutil.which("strun")


def time_strun(asn_path, output_dir):
    """Wall time (s) of one ``strun ifu_align asn.json --output_dir=...`` subprocess."""
    shutil.rmtree(output_dir, ignore_errors=True)
    output_dir.mkdir(parents=True)
    command = [_strun(), "ifu_align", str(asn_path), f"--output_dir={output_dir}"]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-2000:]}"
        )
    return elapsed


def time_strun_startup():
    """Wall time (s) of ``strun ifu_align --help``: interpreter, jwst and step start-up."""
    start = time.perf_counter()
    subprocess.run([_strun(), "ifu_align", "--help"], capture_output=True, text=True, check=True)
    return time.perf_counter() - start


# (d) The I/O floor


def _open_and_touch(paths):
    """Open every member with datamodels.open and touch data, err and dq; return the models."""
    from stdatamodels.jwst import datamodels

    models = [datamodels.open(path) for path in paths]
    for model in models:
        np.nansum(model.data)
        np.nansum(model.err)
        model.dq.sum(dtype=np.uint64)
    return models


def _save_copy(reference, out_path):
    """Save a copy of the reference (an output-sized IFUCubeModel) to a FITS file."""
    copy = reference.copy()
    copy.save(out_path, overwrite=True)
    copy.close()


def io_floor(paths, out_path):
    """Open the members, touch their arrays and save one output-sized cube (one run)."""
    models = _open_and_touch(paths)
    _save_copy(models[0], out_path)
    for model in models:
        model.close()


def time_io_floor(paths, out_path, repeat):
    """Best-of-``repeat`` wall time (s) of :func:`io_floor`, and all the wall times."""
    return scenarios.best_of(lambda: io_floor(paths, out_path), repeat)


#: Categories of the time in the (d) profile: (label, substrings of the function's file name
#: or of a builtin's name). The first match wins; time of functions matching none (built-ins,
#: the standard library) goes to the categories of their callers (see :func:`categorize`).
_IO_CATEGORIES = (
    ("schema validation (asdf jsonschema)", ("asdf/_jsonschema", "asdf/schema.py", "jsonschema/")),
    ("stdatamodels validation", ("stdatamodels/validate.py", "stdatamodels/schema.py")),
    ("YAML parsing/emitting (schemas, ASDF tree)", ("yaml/", "_yaml")),
    ("ASDF tree (tags, converters, blocks)", ("asdf/", "asdf_")),
    ("WCS objects (gwcs, astropy.modeling)", ("gwcs/", "astropy/modeling")),
    (
        "byte order / dtype conversion (byteswap, astype, FITS unsigned ints)",
        ("byteswap", "newbyteorder", "'astype'", "_convert_pseudo_integer"),
    ),
    ("FITS headers and HDUs (astropy.io.fits)", ("astropy/io/fits",)),
    ("astropy configuration lookups", ("astropy/config", "astropy/extern/configobj")),
    (
        "array bytes from/to disk (fromfile, tofile, read, write)",
        ("fromfile", "tofile", "readinto", "'read'", "'write'", "io.open", "'flush'", "fsync"),
    ),
    ("array copies (model.copy)", ("'__deepcopy__' of 'numpy",)),
    ("numpy (touching sums, other)", ("numpy", "ufunc", "ndarray")),
    ("stdatamodels (other)", ("stdatamodels/",)),
    ("jwst (datamodels, ModelContainer)", ("jwst/",)),
)

_OTHER = "other (this script, stdlib, unattributed)"


def _own_category(func):
    key = func[0] + " " + func[2]
    for label, patterns in _IO_CATEGORIES:
        if any(p in key for p in patterns):
            return label
    return None


def categorize(stats, max_depth=10):
    """Split the exclusive time of a profile into :data:`_IO_CATEGORIES`.

    A function that matches no category (a built-in such as ``isinstance``, or the standard
    library) has its own time shared among its callers' categories in proportion to the time
    spent in it from each caller, up the call graph (at most ``max_depth`` levels).

    Parameters
    ----------
    stats : pstats.Stats
        A profile.
    max_depth : int
        Deepest walk up the callers.

    Returns
    -------
    dict
        Category label -> seconds (the values sum to the profile's total time).
    """
    memo = {}

    def shares(func, depth):
        if func in memo:
            return memo[func]
        memo[func] = {_OTHER: 1.0}  # breaks cycles of recursion
        category = _own_category(func)
        callers = stats.stats[func][4] if func in stats.stats else {}
        weights = {c: v[2] for c, v in callers.items() if isinstance(v, tuple) and v[2] > 0}
        total = sum(weights.values())
        if category is not None:
            result = {category: 1.0}
        elif depth >= max_depth or total <= 0:
            result = {_OTHER: 1.0}
        else:
            result = {}
            for caller, weight in weights.items():
                for label, fraction in shares(caller, depth + 1).items():
                    result[label] = result.get(label, 0.0) + fraction * weight / total
        memo[func] = result
        return result

    totals = {}
    for func, (_, _, tottime, _, _) in stats.stats.items():
        for label, fraction in shares(func, 0).items():
            totals[label] = totals.get(label, 0.0) + tottime * fraction
    return totals


def _inclusive(stats, filename_part, name):
    """Inclusive (cumulative) time of the functions matching a file-name part and a name."""
    return sum(
        value[3]
        for func, value in stats.stats.items()
        if filename_part in func[0] and func[2] == name
    )


def profile_io_floor(paths, out_path):
    """Profile the I/O floor's open-and-touch and save phases separately.

    Returns
    -------
    dict
        ``{"open": (total_s, categories, inclusive), "save": (...)}`` where ``categories`` is
        :func:`categorize` and ``inclusive`` the cumulative time of a few key functions.
    """
    result = {}
    profiler = cProfile.Profile()
    profiler.enable()
    models = _open_and_touch(paths)
    profiler.disable()
    result["open"] = profiler
    profiler = cProfile.Profile()
    profiler.enable()
    _save_copy(models[0], out_path)
    profiler.disable()
    result["save"] = profiler
    for model in models:
        model.close()
    summary = {}
    for phase, prof in result.items():
        stats = pstats.Stats(prof)
        inclusive = {
            "asdf schema validate (incl. schema loading)": _inclusive(
                stats, "asdf/schema.py", "validate"
            ),
            "  of which loading schemas (YAML)": _inclusive(stats, "asdf/schema.py", "load_schema"),
            "ndarray.byteswap": _inclusive(
                stats, "~", "<method 'byteswap' of 'numpy.ndarray' objects>"
            ),
        }
        summary[phase] = (stats.total_tt, categorize(stats), inclusive)
    return summary


def format_io_breakdown(summary, title):
    """Text of the (d) profile breakdown (see :func:`profile_io_floor`)."""
    lines = [title]
    grand = sum(total for total, _, _ in summary.values())
    for phase, (total, categories, inclusive) in summary.items():
        lines.append(f"  on {phase}: {total:.3f} s under cProfile ({100 * total / grand:.0f}%)")
        for label, seconds in sorted(categories.items(), key=lambda kv: -kv[1]):
            if seconds >= 0.005 * total:
                lines.append(f"    {label:<68s} {seconds:7.3f} s  {100 * seconds / total:5.1f}%")
        for label, seconds in inclusive.items():
            lines.append(f"    [inclusive] {label:<56s} {seconds:7.3f} s")
    return "\n".join(lines)


# One case, the report


def run_case(instrument, n_members, args, workdir):
    """(c), strun and (d) for one association; returns a table row and (c)/(d)."""
    label = scenarios.INSTRUMENTS[instrument][0]
    scenarios.progress(f"{label}, {n_members} members: simulating")
    data_dir = workdir / "data"
    sim, shape = scenarios.simulate(instrument, n_members, args.nwave, data_dir)
    paths = [data_dir / m.model.meta.filename for m in sim.members]
    del sim

    files_s, runs = time_step_from_files(data_dir / "asn.json", workdir / "out_c", args.repeat)
    scenarios.progress(f"  (c) {scenarios.runs_text(runs)}")
    strun_s = None
    if not args.no_strun:
        strun_s = time_strun(data_dir / "asn.json", workdir / "out_strun")
        scenarios.progress(f"  strun {strun_s:.2f} s")
    floor_s, runs = time_io_floor(paths, workdir / "floor.fits", args.repeat)
    scenarios.progress(f"  (d) {scenarios.runs_text(runs)}")
    if (args.profile and n_members == min(args.members)) or floor_s >= 0.5 * files_s:
        title = (
            f"(d) I/O floor breakdown, {label}, {n_members} members (cProfile, exclusive time "
            "by category; 'inclusive' lines overlap the categories)"
        )
        PROFILES.append(format_io_breakdown(profile_io_floor(paths, workdir / "floor.fits"), title))
    row = [
        f"{label} {n_members}",
        "x".join(str(v) for v in shape),
        scenarios.seconds_text(files_s, 3),
        scenarios.seconds_text(floor_s, 3),
        scenarios.ratio_text(files_s, floor_s),
        scenarios.seconds_text(strun_s, 2),
        scenarios.seconds_text(None if strun_s is None else strun_s - files_s, 2),
    ]
    return row, files_s / floor_s


#: Profile texts collected during the run, printed after the tables.
PROFILES = []


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    scenarios.add_scenario_arguments(parser)
    parser.add_argument("--no-strun", action="store_true", help="skip the strun subprocesses")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="print the breakdown of (d) for the smallest association",
    )
    args = scenarios.finish_scenario_arguments(parser, parser.parse_args(argv))
    scenarios.quiet_logging()
    start = time.perf_counter()
    startup_s = None if args.no_strun else time_strun_startup()
    rows, targets = [], []
    with tempfile.TemporaryDirectory(prefix="ifualign_files_") as tmp:
        for instrument in args.instruments:
            for n_members in args.members:
                workdir = Path(tmp) / f"{instrument}{n_members}"
                try:
                    row, ratio = run_case(instrument, n_members, args, workdir)
                finally:
                    shutil.rmtree(workdir, ignore_errors=True)
                rows.append(row)
                if instrument == "miri" and n_members == 4:
                    targets.append(
                        [
                            f"(c)/(d) <= {TARGET_IO_RATIO}",
                            row[0],
                            f"{ratio:.2f}",
                            scenarios.verdict(ratio <= TARGET_IO_RATIO),
                        ]
                    )
    print()
    print(scenarios.header("ifu_align from files, against the I/O floor", args))
    print(f"wall time {time.perf_counter() - start:.0f} s")
    if startup_s is not None:
        print(f"strun start-up (strun ifu_align --help): {startup_s:.2f} s")
    print()
    scenarios.print_tables(
        [
            (f"Timing (seconds; (c), (d) best of {args.repeat})", HEADERS, rows),
            ("Target", ["target", "case", "value", "verdict"], targets),
        ],
        args.markdown,
    )
    for text in PROFILES:
        print(text + "\n")
    return 0


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
