"""``ifualign-batch``: run ``ifu_align`` on many associations, one task each, on dask.distributed.

::

    ifualign-batch obs1_asn.json obs2_asn.json folder_of_asn/ --output_dir=out --method=dft
    ifualign-batch folder/ --config my_ifu_align.asdf --scheduler tcp://host:8786 --output_dir=out

Each association runs as one task exactly as ``strun ifu_align ASN --output_dir=OUT [options]``
(or ``strun CONFIG ASN ...`` with ``--config``) would run it: the same stpipe command-line code
parses the step's parameters and writes the same files into ``--output_dir``. Tasks run on the
scheduler at ``--scheduler`` or on a local cluster of one single-threaded worker process per
core (``--workers``). A failing association is reported and the others go on. The script ends
with one row per association (members, worst offset error, flags, time, status) and exits with 1
if any association failed.

Every option that is not the script's own (``--method=dft``, ``--reference=2``,
``--save_diagnostics=true``, ...) is passed on to every association's step.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

__all__ = ["main", "find_associations", "run_association", "local_cluster"]

#: Summary columns, in order.
COLUMNS = ("association", "members", "worst_error_px", "flags", "seconds", "status")


def find_associations(inputs):
    """Association files named in ``inputs``: files as given, folders expanded to their ``*.json``.

    Raises
    ------
    SystemExit
        (via the caller's parser) when an input does not exist; see :func:`main`.
    """
    found = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found.extend(sorted(p for p in path.glob("*.json") if p.is_file()))
        elif path.is_file():
            found.append(path)
        else:
            raise FileNotFoundError(f"{item} is neither an association file nor a folder")
    return found


def _product_name(asn_path):
    """``products[0].name`` of an association, or None when it cannot be read."""
    try:
        return json.loads(Path(asn_path).read_text())["products"][0]["name"]
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return None


def _strun_arguments(asn_path, *, config, output_dir, step_args):
    """The ``strun`` arguments of one association (without the program name)."""
    first = str(config) if config else "ifu_align"
    return [first, str(asn_path), f"--output_dir={output_dir}", *step_args]


def _summary_of(step, asn_path, output_dir):
    """(members, worst offset error in px, flags) from the offsets table the step wrote."""
    from astropy.table import Table

    base = Path(step.output_file).stem if step.output_file else _product_name(asn_path)
    suffix = step.suffix or "ifualign"
    table_path = Path(output_dir) / f"{base}_{suffix}_offsets.ecsv"
    if not table_path.is_file():
        return None, None, ""
    table = Table.read(table_path, format="ascii.ecsv")
    flags = Counter(str(f) for f in table["flag"] if str(f) not in ("ok", "reference"))
    errors = [
        max(float(ex), float(ey))
        for ex, ey, flag in zip(table["dx_err"], table["dy_err"], table["flag"], strict=True)
        if str(flag) != "reference"
    ]
    finite = [e for e in errors if e == e]
    return len(table), (max(finite) if finite else None), ", ".join(
        f"{name} x{n}" for name, n in sorted(flags.items())
    )


def run_association(asn_path, *, config=None, output_dir=".", step_args=()):
    """Run ``ifu_align`` on one association as ``strun`` does; never raises.

    Returns
    -------
    dict
        Keys of :data:`COLUMNS`: the association's path, its number of members, the largest
        1-sigma offset error of a member (reference pixels), the flags of members other than the
        reference, the wall time (s) and ``ok`` or ``failed: <error>``.
    """
    # The command-line path strun itself takes (stpipe's _cmdline.step_from_cmdline): the same
    # parsing of parameters and parameter files, the same logging and output naming.
    from stpipe import _cmdline
    from stpipe.exceptions import StpipeExitException

    start = time.perf_counter()
    row = dict.fromkeys(COLUMNS)
    row["association"] = str(asn_path)
    args = _strun_arguments(asn_path, config=config, output_dir=output_dir, step_args=step_args)
    try:
        step = _cmdline.step_from_cmdline(args)
        row["members"], row["worst_error_px"], row["flags"] = _summary_of(
            step, asn_path, output_dir
        )
        row["status"] = "ok"
    except StpipeExitException as exc:
        row["status"] = "ok" if exc.exit_status == 0 else f"failed: exit {exc.exit_status}"
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - one failure must not stop the batch
        row["status"] = f"failed: {type(exc).__name__}: {exc}".splitlines()[0]
    row["seconds"] = time.perf_counter() - start
    return row


def _format_table(rows):
    """The summary as an aligned text table (associations relative to their common folder)."""
    folders = [str(Path(r["association"]).parent) for r in rows]
    common = Path(os.path.commonpath(folders)) if folders else Path()

    def cell(key, value):
        if value is None:
            return "-"
        if key == "worst_error_px":
            return f"{value:.4f}"
        if key == "seconds":
            return f"{value:.1f}"
        if key == "association":
            return str(Path(value).relative_to(common))
        return str(value) if value != "" else "-"

    cells = [[cell(k, r[k]) for k in COLUMNS] for r in rows]
    widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(COLUMNS)]
    lines = ["  ".join(k.ljust(w) for k, w in zip(COLUMNS, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def _parser():
    parser = argparse.ArgumentParser(
        prog="ifualign-batch",
        description="Run ifu_align on many associations, one dask.distributed task each. "
        "Options not listed here (--method=dft, ...) are passed on to the step.",
    )
    parser.add_argument("inputs", nargs="+", help="association JSON files or folders of them")
    parser.add_argument(
        "--output_dir", required=True, help="folder for every association's outputs"
    )
    parser.add_argument("--config", help="step parameter file (ASDF), as strun's first argument")
    parser.add_argument("--scheduler", help="address of a running dask scheduler (tcp://host:port)")
    parser.add_argument(
        "--workers", type=int, default=None,
        help="local cluster: worker processes (default: one per core)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _check_products(associations, parser):
    """Refuse associations whose outputs would take one another's names."""
    by_product = {}
    for path in associations:
        by_product.setdefault(_product_name(path), []).append(path)
    clashes = {p: paths for p, paths in by_product.items() if p is not None and len(paths) > 1}
    if clashes:
        listed = "; ".join(f"{p}: {', '.join(map(str, paths))}" for p, paths in clashes.items())
        parser.error(
            f"associations with one product name would overwrite each other's outputs in "
            f"--output_dir ({listed}); give them distinct products[0].name or run them apart."
        )


def _local_cluster_config():
    """dask settings of the local cluster's workers that differ from dask's defaults.

    - ``MALLOC_TRIM_THRESHOLD_`` is not set (dask's ``distributed.nanny.pre-spawn-environ`` sets
      it to 65536 so that workers return freed memory at once). Setting it also switches off
      glibc's dynamic mmap threshold, so that every cube-sized array is a fresh mmap whose pages
      fault in again: an association then took 1.3-1.6x as long as in a plain process. Without
      it glibc's default applies, as under ``strun``.
    - No statistical profiler (``distributed.worker.profile``): it samples the task's stack every
      10 ms for a dashboard this cluster does not serve, and cost about a tenth of a task's time.
    """
    return {
        "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
        "distributed.worker.profile.enabled": False,
    }


def local_cluster(n_workers):
    """The local cluster ifualign-batch runs on: ``n_workers`` single-threaded worker processes.

    Its workers start with :func:`_local_cluster_config`'s settings; the settings are scoped to
    the cluster's creation (the nannies take them then) and leave this process's dask config
    as it was.
    """
    import dask
    from distributed import LocalCluster

    with dask.config.set(_local_cluster_config()):
        return LocalCluster(
            n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None
        )


def _client(args):
    from distributed import Client

    if args.scheduler:
        return Client(args.scheduler), None
    cluster = local_cluster(args.workers or os.cpu_count() or 1)
    return Client(cluster), cluster


def main(argv=None):
    """Entry point of ``ifualign-batch``; returns the exit status (0: all associations ok)."""
    parser = _parser()
    args, step_args = parser.parse_known_args(argv)
    try:
        associations = find_associations(args.inputs)
    except FileNotFoundError as exc:
        parser.error(str(exc))
    if not associations:
        parser.error("no association file (*.json) found in the inputs")
    _check_products(associations, parser)
    try:
        import distributed
    except ImportError:
        parser.error('ifualign-batch needs dask.distributed: pip install "jwst_ifualign[dask]"')
    # Absolute paths: the workers of a remote scheduler do not share this folder's name.
    output_dir = str(Path(args.output_dir).resolve())
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    associations = [p.resolve() for p in associations]
    client, cluster = _client(args)
    try:
        futures = [
            client.submit(
                run_association,
                str(path),
                config=args.config,
                output_dir=output_dir,
                step_args=list(step_args),
                key=f"ifu_align-{k}-{path.name}",
                pure=False,
            )
            for k, path in enumerate(associations)
        ]
        if not args.no_progress:
            distributed.progress(futures)
            print(file=sys.stderr)
        rows = []
        for path, future in zip(associations, futures, strict=True):
            try:
                rows.append(future.result())
            except Exception as exc:  # noqa: BLE001 - a lost worker fails one association
                row = dict.fromkeys(COLUMNS)
                row.update(association=str(path), status=f"failed: {type(exc).__name__}: {exc}")
                rows.append(row)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    print(_format_table(rows))
    failed = sum(not r["status"].startswith("ok") for r in rows)
    print(f"{len(rows) - failed} of {len(rows)} associations ok; outputs in {output_dir}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
