"""ifualign-batch on a 2-worker local cluster against the same associations one after another.

Run:

    python benchmarks/batch_speed.py [--associations 8] [--members 16] [--folder /tmp/batch]

Every run below is timed in this one run of the script, on the same files with the same step
parameters; each association's outputs go to a folder of the run's own.

Whole commands, as a user types them (each a fresh process, imports and the first-file costs
of asdf and the datamodel schemas included):

- ``strun, one after another``: ``strun ifu_align ASN --output_dir=OUT`` for every association
  in turn, as a shell loop runs them.
- ``one process, one after another``: one ``python`` process that runs every association in turn
  through the path strun takes (:func:`jwst_ifualign.scripts.batch.run_association`), so that
  it pays the imports and the first-file costs once.
- ``ifualign-batch --workers=2``: the script, starting its local cluster.

Throughput once everything is started:

- ``one after another, warmed``: the associations in turn in this process, after one warm-up
  association.
- ``ifualign-batch --scheduler``: the script on a cluster started beforehand (workers as
  ifualign-batch starts them) and warmed up by one association per worker.

The associations are MIRI-like, ``--members`` members of 1050 x 45 x 47 each; they all list the
same member files (different product names), so that the benchmark needs one set of files.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from distributed import Client

from jwst_ifualign.scripts.batch import local_cluster, run_association
from jwst_ifualign.scripts.batch import main as batch_main
from jwst_ifualign.testing.simulate import (
    MIRI_CH1,
    simulate_association,
    write_association,
)


def make_associations(folder, *, count, members):
    """``count`` association files over one set of ``members`` simulated cubes."""
    sim = simulate_association(setup=MIRI_CH1, n_members=members, snr=30.0, seed=3)
    first = write_association(sim, folder, asn_name="asn_00.json")
    tree = json.loads(first.read_text())
    paths = [first]
    for k in range(1, count):
        tree["products"][0]["name"] = f"target_{k:02d}"
        path = folder / f"asn_{k:02d}.json"
        path.write_text(json.dumps(tree))
        paths.append(path)
    return paths


def timed_commands(commands):
    """Wall time (s) of running ``commands`` (argument lists) one after another."""
    start = time.perf_counter()
    for command in commands:
        subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


def strun_loop(paths, output_dir):
    strun = shutil.which("strun")
    return timed_commands(
        [[strun, "ifu_align", str(p), f"--output_dir={output_dir}"] for p in paths]
    )


def one_process(paths, output_dir):
    code = (
        "import sys\n"
        "from jwst_ifualign.scripts.batch import run_association\n"
        "rows = [run_association(p, output_dir=sys.argv[1]) for p in sys.argv[2:]]\n"
        "assert all(r['status'] == 'ok' for r in rows), rows\n"
    )
    return timed_commands([[sys.executable, "-c", code, str(output_dir), *map(str, paths)]])


def batch_command(paths, output_dir):
    script = shutil.which("ifualign-batch")
    return timed_commands(
        [[script, *map(str, paths), f"--output_dir={output_dir}", "--workers=2", "--no-progress"]]
    )


def warmed_sequential(paths, output_dir):
    """Wall time of every association one after another in this process (after a warm-up)."""
    run_association(str(paths[0]), output_dir=str(output_dir / "warmup"))
    start = time.perf_counter()
    rows = [run_association(str(p), output_dir=str(output_dir)) for p in paths]
    assert all(r["status"] == "ok" for r in rows), rows
    return time.perf_counter() - start


def batch_on_running_cluster(paths, output_dir):
    """Wall time of ifualign-batch with --scheduler on a started, warmed-up 2-worker cluster."""
    # The cluster ifualign-batch itself starts (its workers' settings included).
    with local_cluster(2) as cluster, Client(cluster) as client:
        warm = [client.submit(run_association, str(paths[k]), output_dir=str(output_dir / "w"),
                              pure=False) for k in range(2)]
        client.gather(warm)
        start = time.perf_counter()
        status = batch_main([*map(str, paths), f"--output_dir={output_dir}", "--no-progress",
                             f"--scheduler={cluster.scheduler_address}"])
        assert status == 0
        return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--associations", type=int, default=8)
    parser.add_argument("--members", type=int, default=16)
    parser.add_argument("--folder", default=None, help="work folder (default: a temporary one)")
    args = parser.parse_args()
    folder = Path(args.folder or tempfile.mkdtemp(prefix="ifualign_batch_"))
    paths = make_associations(folder / "data", count=args.associations, members=args.members)
    t_strun = strun_loop(paths, folder / "strun")
    t_process = one_process(paths, folder / "process")
    t_batch = batch_command(paths, folder / "batch")
    t_warm = warmed_sequential(paths, folder / "warm")
    t_running = batch_on_running_cluster(paths, folder / "running")
    print(f"{args.associations} associations of {args.members} MIRI-like members (1050x45x47)")
    print("| run | wall time | ifualign-batch is faster by |")
    print("|---|---|---|")
    print(f"| `strun`, one after another | {t_strun:.1f} s | {t_strun / t_batch:.2f}x |")
    print(f"| one process, one after another | {t_process:.1f} s | {t_process / t_batch:.2f}x |")
    print(f"| `ifualign-batch --workers=2` | {t_batch:.1f} s | |")
    print(f"| one after another, warmed | {t_warm:.1f} s | {t_warm / t_running:.2f}x |")
    print(f"| `ifualign-batch --scheduler` (running, warmed cluster) | {t_running:.1f} s | |")


if __name__ == "__main__":
    main()
