"""ifualign-batch on a 2-worker local cluster against the same associations one after another.

Run:

    python benchmarks/batch_speed.py [--associations 8] [--members 16] [--folder /tmp/batch]

Scenario (one run of this script, same files, same step parameters):

- ``sequential``: every association through the path strun takes
  (:func:`jwst_ifualign.scripts.batch.run_association`), one after another in this process, after
  one warm-up association (imports paid once, as one long run pays them).
- ``batch``: ``ifualign-batch`` with ``--workers=2``: starting the local cluster, the workers'
  imports and every association, as a user runs it.
- ``batch on a running cluster``: the same with ``--scheduler`` on a cluster started (and warmed
  up by one association per worker) beforehand, as on a cluster that serves many batches.

The associations are MIRI-like, ``--members`` members of 1050 x 45 x 47 each; they all list the
same member files (different product names), so that the benchmark needs one set of files.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from jwst_ifualign.scripts.batch import main as batch_main
from jwst_ifualign.scripts.batch import run_association
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


def sequential(paths, output_dir):
    """Wall time of every association one after another in this process (after a warm-up)."""
    run_association(str(paths[0]), output_dir=str(output_dir / "warmup"))
    start = time.perf_counter()
    rows = [run_association(str(p), output_dir=str(output_dir)) for p in paths]
    assert all(r["status"] == "ok" for r in rows), rows
    return time.perf_counter() - start


def batch(paths, output_dir, *extra):
    """Wall time of ifualign-batch on the associations."""
    start = time.perf_counter()
    status = batch_main([*map(str, paths), f"--output_dir={output_dir}", "--no-progress", *extra])
    assert status == 0
    return time.perf_counter() - start


def batch_on_running_cluster(paths, output_dir):
    """Wall time of ifualign-batch with --scheduler on a started, warmed-up 2-worker cluster."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        warm = [client.submit(run_association, str(paths[k]), output_dir=str(output_dir / "w"),
                              pure=False) for k in range(2)]
        client.gather(warm)
        return batch(paths, output_dir, f"--scheduler={cluster.scheduler_address}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--associations", type=int, default=8)
    parser.add_argument("--members", type=int, default=16)
    parser.add_argument("--folder", default=None, help="work folder (default: a temporary one)")
    args = parser.parse_args()
    folder = Path(args.folder or tempfile.mkdtemp(prefix="ifualign_batch_"))
    paths = make_associations(folder / "data", count=args.associations, members=args.members)
    t_seq = sequential(paths, folder / "sequential")
    t_batch = batch(paths, folder / "batch", "--workers=2")
    t_running = batch_on_running_cluster(paths, folder / "running")
    print(f"{args.associations} associations of {args.members} MIRI-like members (1050x45x47)")
    print("| run | wall time | speed-up |")
    print("|---|---|---|")
    print(f"| one after another, one process | {t_seq:.1f} s | 1 |")
    print(f"| ifualign-batch --workers=2 (cluster start included) | {t_batch:.1f} s | "
          f"{t_seq / t_batch:.2f} |")
    print(f"| ifualign-batch --scheduler (running, warmed cluster) | {t_running:.1f} s | "
          f"{t_seq / t_running:.2f} |")


if __name__ == "__main__":
    main()
