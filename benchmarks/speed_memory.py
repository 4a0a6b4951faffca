"""Peak memory of the step beyond its loaded inputs, each run in a fresh subprocess.

For each instrument-like association (``scenarios.py``) and each size ``N`` (``--members``,
default 4 and 16), a fresh subprocess of this script opens the association as a ModelContainer,
touches every array, records its RSS (the *baseline*, which holds the inputs), resets the
kernel's high-water mark (``/proc/self/clear_refs``; ``ru_maxrss`` if that is not possible) and
runs the step alone. ``peak`` is the high-water RSS minus the baseline: the memory the step needs
on top of its already-loaded inputs. The same subprocess then runs the step again under
``tracemalloc`` (numpy allocations are traced) as a cross-check. ``inputs`` is the sum of
``data + err + dq + weightmap`` nbytes over the members, ``output`` the same for the combined
cube. For ``N >= 16`` the step is also measured with ``chunk_size=64`` (``--memory-chunk``).

Targets: peak < 2 x (inputs + output) with the default ``chunk_size``; for ``N >= 16`` with a
set ``chunk_size``, peak < 1.5 x inputs.

Usage::

    python benchmarks/speed_memory.py --quick           # 100 planes, 4 members
    python benchmarks/speed_memory.py --markdown        # full size, 4 and 16 members
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scenarios

TARGET_PEAK_IN_OUT = 2.0  # peak < this * (inputs + output)
TARGET_PEAK_CHUNKED = 1.5  # peak < this * inputs, N >= 16 with a set chunk_size

HEADERS = [
    "case (N members)",
    "chunk_size",
    "inputs MB",
    "output MB",
    "baseline MB",
    "peak MB",
    "tracemalloc MB",
    "peak/(in+out)",
    "peak/in",
    "step s",
]


@dataclass
class MemoryResult:
    """Peak memory of one step run in a fresh subprocess.

    Attributes
    ----------
    chunk_size : int or None
        ``chunk_size`` passed to the step (None: the step's default).
    input_bytes, output_bytes : int
        ``data + err + dq + weightmap`` nbytes of all members, and of the combined cube.
    baseline_bytes : int
        RSS after opening the inputs and touching their arrays.
    peak_bytes : int
        High-water RSS during the step minus ``baseline_bytes``.
    tracemalloc_bytes : int or None
        Peak of the memory traced by ``tracemalloc`` during a second run of the step.
    source : str
        Where the high-water mark came from (``VmHWM`` after a reset, or ``ru_maxrss``).
    seconds : float
        Wall time of the (untraced) step run.
    """

    chunk_size: int | None
    input_bytes: int
    output_bytes: int
    baseline_bytes: int
    peak_bytes: int
    tracemalloc_bytes: int | None
    source: str
    seconds: float


def _proc_status_kb(key):
    """A ``/proc/self/status`` value in kB (``VmRSS``, ``VmHWM``), or None."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss():
    """Reset the kernel's RSS high-water mark (VmHWM); True if it worked."""
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
    except OSError:
        return False
    return _proc_status_kb("VmHWM") is not None


def memory_worker(asn_path, chunk_size, trace=True):
    """Measure the step's peak memory on a fresh load; runs in its own subprocess.

    Parameters
    ----------
    asn_path : str
        Association JSON.
    chunk_size : int or None
        ``chunk_size`` for the step; None for its default.
    trace : bool
        Also run the step a second time under tracemalloc.

    Returns
    -------
    dict
        The fields of :class:`MemoryResult`.
    """
    # Import what the step uses before the baseline, so imports are not counted as its memory.
    import scipy.ndimage  # noqa: F401
    import scipy.stats  # noqa: F401
    from astropy.table import Table  # noqa: F401
    from jwst.datamodels import ModelContainer

    import jwst_ifualign.adapter.align  # noqa: F401
    import jwst_ifualign.adapter.outputs  # noqa: F401
    from jwst_ifualign import IFUAlignStep

    kwargs = {} if chunk_size is None else {"chunk_size": int(chunk_size)}
    container = ModelContainer(asn_path)
    input_bytes = 0
    for model in container:
        for name in ("data", "err", "dq", "weightmap"):
            np.sum(getattr(model, name))  # make sure every array is read into memory
        input_bytes += scenarios.model_nbytes(model)
    gc.collect()
    baseline_kb = _proc_status_kb("VmRSS")
    reset = _reset_peak_rss()
    start = time.perf_counter()
    result = IFUAlignStep.call(container, configure_log=False, **kwargs)
    seconds = time.perf_counter() - start
    if reset:
        peak_kb, source = _proc_status_kb("VmHWM"), "VmHWM"
    else:
        peak_kb, source = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "ru_maxrss"
    output_bytes = scenarios.model_nbytes(result)
    result.close()
    del result
    gc.collect()
    traced = None
    if trace:
        tracemalloc.start()
        IFUAlignStep.call(container, configure_log=False, **kwargs).close()
        traced = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return {
        "chunk_size": chunk_size,
        "input_bytes": int(input_bytes),
        "output_bytes": int(output_bytes),
        "baseline_bytes": int(baseline_kb * 1024),
        "peak_bytes": int((peak_kb - baseline_kb) * 1024),
        "tracemalloc_bytes": None if traced is None else int(traced),
        "source": source,
        "seconds": seconds,
    }


def measure_memory(asn_path, chunk_size, trace=True):
    """Run :func:`memory_worker` in a fresh subprocess of this script; return a MemoryResult."""
    command = [sys.executable, str(Path(__file__).resolve()), "--memory-worker", str(asn_path)]
    if chunk_size is not None:
        command += ["--worker-chunk-size", str(chunk_size)]
    if not trace:
        command.append("--no-tracemalloc")
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"memory worker failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return MemoryResult(**json.loads(done.stdout.strip().splitlines()[-1]))


def rows_and_targets(case, results):
    """Table rows and target rows of one case's :class:`MemoryResult` list."""
    rows, targets = [], []
    mb = scenarios.MB
    for m in results:
        rows.append(
            [
                case,
                "default" if m.chunk_size is None else str(m.chunk_size),
                f"{m.input_bytes / mb:.0f}",
                f"{m.output_bytes / mb:.0f}",
                f"{m.baseline_bytes / mb:.0f}",
                f"{m.peak_bytes / mb:.0f}",
                "-" if m.tracemalloc_bytes is None else f"{m.tracemalloc_bytes / mb:.0f}",
                f"{m.peak_bytes / (m.input_bytes + m.output_bytes):.2f}",
                f"{m.peak_bytes / m.input_bytes:.2f}",
                f"{m.seconds:.2f}",
            ]
        )
        if m.chunk_size is None:
            ratio = m.peak_bytes / (m.input_bytes + m.output_bytes)
            targets.append(
                [
                    f"peak < {TARGET_PEAK_IN_OUT:g} x (inputs + output)",
                    case,
                    f"{ratio:.2f} x",
                    scenarios.verdict(ratio < TARGET_PEAK_IN_OUT),
                ]
            )
        else:
            ratio = m.peak_bytes / m.input_bytes
            targets.append(
                [
                    f"peak < {TARGET_PEAK_CHUNKED:g} x inputs (chunk_size={m.chunk_size})",
                    case,
                    f"{ratio:.2f} x",
                    scenarios.verdict(ratio < TARGET_PEAK_CHUNKED),
                ]
            )
    return rows, targets


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    scenarios.add_scenario_arguments(parser)
    parser.add_argument(
        "--memory-chunk",
        type=int,
        default=64,
        help="chunk_size of the extra measurement of 16+ members",
    )
    parser.add_argument(
        "--no-tracemalloc", action="store_true", help="skip the tracemalloc cross-check"
    )
    # Internal: the subprocess that measures.
    parser.add_argument("--memory-worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--worker-chunk-size", type=int, default=None, help=argparse.SUPPRESS)
    args = scenarios.finish_scenario_arguments(parser, parser.parse_args(argv))
    scenarios.quiet_logging()
    if args.memory_worker:
        result = memory_worker(args.memory_worker, args.worker_chunk_size, not args.no_tracemalloc)
        print(json.dumps(result))
        return 0
    start = time.perf_counter()
    rows, targets = [], []
    with tempfile.TemporaryDirectory(prefix="ifualign_memory_") as tmp:
        for instrument in args.instruments:
            for n_members in args.members:
                label = f"{scenarios.INSTRUMENTS[instrument][0]} {n_members}"
                scenarios.progress(f"{label} members: simulating")
                folder = Path(tmp) / f"{instrument}{n_members}"
                sim, _ = scenarios.simulate(instrument, n_members, args.nwave, folder)
                del sim
                gc.collect()
                chunks = [None] + ([args.memory_chunk] if n_members >= 16 else [])
                results = []
                for chunk in chunks:
                    scenarios.progress(f"  chunk_size={'default' if chunk is None else chunk}")
                    results.append(
                        measure_memory(folder / "asn.json", chunk, not args.no_tracemalloc)
                    )
                case_rows, case_targets = rows_and_targets(label, results)
                rows += case_rows
                targets += case_targets
    print()
    print(scenarios.header("ifu_align peak memory", args))
    print(f"wall time {time.perf_counter() - start:.0f} s\n")
    scenarios.print_tables(
        [
            (
                "Peak memory of the step (fresh subprocess; "
                "peak = high-water RSS - RSS after loading)",
                HEADERS,
                rows,
            ),
            ("Targets", ["target", "case", "value", "verdict"], targets),
        ],
        args.markdown,
    )
    return 0


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
