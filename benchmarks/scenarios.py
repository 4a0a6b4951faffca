"""What the speed benchmarks share: the simulated associations, the timer, logging, tables.

The benchmarks (``speed_seed.py``, ``speed_files.py``, ``speed_memory.py``,
``speed_kernels.py``) import this module from their own folder; run them as scripts
(``python benchmarks/speed_seed.py``). Each simulates the same associations:

- ``miri``: :data:`jwst_ifualign.testing.simulate.MIRI_CH1`, 1050 x 45 x 47;
- ``nirspec``: :data:`~jwst_ifualign.testing.simulate.NIRSPEC_G395H`, 3600 x 50 x 50;

with ``N`` members (``--members``; for ``N > 4`` the simulator draws random pointing errors for
the extra members), written to a temporary folder with
:func:`~jwst_ifualign.testing.simulate.write_association`.
"""

from __future__ import annotations

import gc
import logging
import os
import platform
import sys
import time
import warnings

import numpy as np

__all__ = [
    "INSTRUMENTS",
    "MB",
    "QUICK_NWAVE",
    "add_scenario_arguments",
    "best_of",
    "finish_scenario_arguments",
    "format_table",
    "header",
    "loadavg",
    "model_nbytes",
    "print_tables",
    "progress",
    "quiet_logging",
    "ratio_text",
    "runs_text",
    "seconds_text",
    "simulate",
    "verdict",
]

#: Instrument key -> (label, name of the setup in jwst_ifualign.testing.simulate).
INSTRUMENTS = {
    "miri": ("MIRI-like", "MIRI_CH1"),
    "nirspec": ("NIRSpec-like", "NIRSPEC_G395H"),
}

#: Planes per cube with --quick.
QUICK_NWAVE = 100

MB = 1024.0**2


def simulate(instrument, n_members, nwave, folder):
    """Simulate and write one association.

    Parameters
    ----------
    instrument : str
        Key of :data:`INSTRUMENTS`.
    n_members : int
        Number of members.
    nwave : int or None
        Planes per cube; None for the setup's full size.
    folder : Path
        Destination of the cubes and ``asn.json``.

    Returns
    -------
    sim : SimulatedAssociation
        The association, ``sim.asn_path`` set; its models stay in memory.
    shape : tuple of int
        ``(nwave, ny, nx)`` of each cube.
    """
    from jwst_ifualign.testing import simulate as simulate_module

    setup = getattr(simulate_module, INSTRUMENTS[instrument][1])
    shape = setup.shape if nwave is None else (int(nwave), *setup.shape[1:])
    sim = simulate_module.simulate_association(setup=setup, shape=shape, n_members=n_members)
    simulate_module.write_association(sim, folder)
    return sim, tuple(shape)


def best_of(function, repeat):
    """Call ``function()`` ``repeat`` times; return (best wall time, all wall times), seconds."""
    times = []
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times), times


def model_nbytes(model):
    """Sum of the nbytes of ``data``, ``err``, ``dq`` and ``weightmap`` of a cube model."""
    total = 0
    for name in ("data", "err", "dq", "weightmap"):
        if model.hasattr(name):
            array = getattr(model, name)
            if array is not None:
                total += array.nbytes
    return int(total)


def progress(message):
    """Print a progress line on stderr (the tables go to stdout)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class _OnceFilter(logging.Filter):
    """Let each distinct log message through once (the step runs many times on the same data)."""

    def __init__(self):
        super().__init__()
        self._seen = set()

    def filter(self, record):
        key = (record.name, record.levelno, record.getMessage())
        if key in self._seen:
            return False
        self._seen.add(key)
        return True


def quiet_logging():
    """Warnings of jwst, stpipe and this package once each (the step logs INFO per member)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(_OnceFilter())
    for name in ("stpipe", "jwst", "jwst_ifualign", "stdatamodels", "stcal", "CRDS"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=DeprecationWarning)


def loadavg():
    """The load averages as text (other processes change the times)."""
    try:
        return "load average %.2f, %.2f, %.2f" % os.getloadavg()
    except OSError:
        return "load average unavailable"


def header(title, args):
    """The first lines of a report: what ran, on what, and how busy the machine was."""
    return (
        f"{title} ({'quick, ' if args.quick else ''}repeat={args.repeat})\n"
        f"python {platform.python_version()}, numpy {np.__version__}, {os.cpu_count()} CPUs; "
        f"{loadavg()}"
    )


def add_scenario_arguments(parser, *, members="4,16"):
    """The options every benchmark takes: --instruments, --members, --repeat, --quick,
    --nwave, --markdown."""
    parser.add_argument(
        "--instruments",
        nargs="+",
        default=list(INSTRUMENTS),
        choices=list(INSTRUMENTS),
        help="instrument-like setups (default: all)",
    )
    parser.add_argument(
        "--members",
        default=None,
        help=f"comma-separated association sizes (default {members}; 4 with --quick)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=None,
        help="runs of each timing, the best kept (default 3; 1 with --quick)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke run: {QUICK_NWAVE} wavelength planes per cube, and unless given, "
        "--members 4 --repeat 1",
    )
    parser.add_argument(
        "--nwave", type=int, default=None, help="planes per cube (overrides --quick)"
    )
    parser.add_argument("--markdown", action="store_true", help="also print the tables as Markdown")
    parser.set_defaults(default_members=members)


def finish_scenario_arguments(parser, args):
    """Apply the defaults of :func:`add_scenario_arguments` that depend on --quick; check."""
    if args.members is None:
        args.members = "4" if args.quick else args.default_members
    if args.repeat is None:
        args.repeat = 1 if args.quick else 3
    args.members = sorted({int(v) for v in str(args.members).split(",") if v.strip()})
    if any(n < 2 for n in args.members):
        parser.error("--members: every association needs at least 2 members")
    if args.nwave is None and args.quick:
        args.nwave = QUICK_NWAVE
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


def format_table(headers, rows, markdown=False):
    """Fixed-width (or Markdown) table of strings; numeric columns are right-aligned."""
    numeric = [all(r[i][:1].isdigit() or r[i] == "-" for r in rows) for i in range(len(headers))]
    if markdown:
        lines = ["| " + " | ".join(headers) + " |"]
        lines.append("|" + "|".join("---:" if n else "---" for n in numeric) + "|")
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def fmt(row):
        cells = zip(row, widths, numeric, strict=True)
        return "  ".join(c.rjust(w) if n else c.ljust(w) for c, w, n in cells).rstrip()

    return "\n".join([fmt(headers), "  ".join("-" * w for w in widths), *map(fmt, rows)])


def print_tables(tables, markdown):
    """Print ``(title, headers, rows)`` tables (and their Markdown versions)."""
    for title, headers, rows in tables:
        if rows:
            print(title)
            print(format_table(headers, rows))
            print()
    if markdown:
        print("Markdown\n")
        for title, headers, rows in tables:
            if rows:
                print(f"**{title}**\n")
                print(format_table(headers, rows, markdown=True))
                print()


def seconds_text(value, digits=2, extrapolated=False):
    """A time in seconds for a table (``-`` when not measured, ``*`` when extrapolated)."""
    if value is None:
        return "-"
    text = f"{value:.{digits}f}" if value < 100 else f"{value:.0f}"
    return text + ("*" if extrapolated else "")


def ratio_text(num, den, extrapolated=False):
    """A ratio for a table (``-`` when either side is missing)."""
    if num is None or den is None or den == 0:
        return "-"
    ratio = num / den
    text = f"{ratio:.0f}" if ratio >= 10 else f"{ratio:.2f}"
    return text + ("*" if extrapolated else "")


def runs_text(runs):
    """``best 0.123 s of [0.130, 0.123, ...]``."""
    return "best %.3f s of [%s]" % (min(runs), ", ".join(f"{t:.3f}" for t in runs))


def verdict(ok):
    """``met`` or ``MISSED``."""
    return "met" if ok else "MISSED"
