"""The built-in example: simulate the seed notebook's 4-dither MIRI MRS association and align it.

``ifualign-example [FOLDER]`` writes the simulated s3d cubes and their association into
``FOLDER/data``, runs ``strun ifu_align`` on them with the shipped parameter file, writes the
combined cube and the offsets into ``FOLDER/output``, and prints the measured offsets against the
injected ones and the sharpness of the point source. Exposures 1 and 2 (observation 1) are
aligned; 3 and 4 (observation 2) are aligned with each other but offset by (85, -55) mas.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from astropy.table import Table
from stdatamodels.jwst import datamodels
from stdatamodels.jwst.datamodels.dqflags import pixel as dq_flags

from ..algorithms.quality import point_source_fwhm, white_light
from ..parameter_files import write_parameter_files
from ..testing.simulate import MIRI_CH1, simulate_association, write_association

__all__ = ["main"]


def _find_parameter_file(folder, given):
    if given:
        return Path(given)
    shipped = Path("config") / "ifu_align.asdf"
    if shipped.is_file():
        return shipped
    print("config/ifu_align.asdf not found here; writing the default parameter file.")
    return write_parameter_files(folder / "config")[0]


def _strun():
    # The strun of this interpreter's environment first: another one on PATH may not see us.
    here = Path(sys.executable).with_name("strun")
    exe = str(here) if here.is_file() else shutil.which("strun") or str(here)
    return exe


def _print_offsets(table, sim):
    print("\nMeasured against injected offsets (reference-grid pixels; arcsec on the sky):")
    header = (
        f"{'member':<48} {'inj dx':>7} {'inj dy':>7} {'dx':>8} {'dy':>8} {'err':>6} "
        f"{'|d - inj|':>9} {'RA off':>7} {'Dec off':>7} flag"
    )
    print(header)
    print("-" * len(header))
    worst = 0.0
    for row, truth in zip(table, sim.truth_table(), strict=True):
        diff = float(np.hypot(row["dx"] - truth["dx"], row["dy"] - truth["dy"]))
        worst = max(worst, diff)
        err = float(np.hypot(row["dx_err"], row["dy_err"]))
        print(
            f"{row['member']:<48} {truth['dx']:+7.3f} {truth['dy']:+7.3f} {row['dx']:+8.4f} "
            f"{row['dy']:+8.4f} {err:6.4f} {diff:9.4f} {row['ra_offset']:+7.4f} "
            f"{row['dec_offset']:+7.4f} {row['flag']}"
        )
    return worst


def main(argv=None):
    """Run the example; returns the process exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", default="example_run", help="output folder")
    parser.add_argument("--config", help="parameter file (default: config/ifu_align.asdf)")
    parser.add_argument(
        "--nwave", type=int, default=MIRI_CH1.shape[0], help="wavelength planes per cube"
    )
    parser.add_argument("--snr", type=float, default=20.0, help="per-voxel S/N of the peak")
    args = parser.parse_args(argv)

    folder = Path(args.folder)
    sim = simulate_association(shape=(args.nwave, *MIRI_CH1.shape[1:]), snr=args.snr)
    asn = write_association(sim, folder / "data")
    config = _find_parameter_file(folder, args.config)
    out_dir = folder / "output"
    cmd = [_strun(), str(config), str(asn), f"--output_dir={out_dir}", "--save_diagnostics=true"]
    print("Running:", " ".join(cmd))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRDS")}
    done = subprocess.run(cmd, env=env, check=False)
    if done.returncode != 0:
        print(f"strun failed with exit code {done.returncode}", file=sys.stderr)
        return done.returncode

    product = sim.product_name
    table = Table.read(out_dir / f"{product}_ifualign_offsets.ecsv", format="ascii.ecsv")
    worst = _print_offsets(table, sim)
    with datamodels.open(out_dir / f"{product}_ifualign.fits") as combined:
        image = white_light(combined.data, dq=combined.dq, do_not_use=dq_flags["DO_NOT_USE"])
        fwhm_comb = point_source_fwhm(image)[0]
        covered = int(np.isfinite(combined.data).any(axis=0).sum())
    fwhm_ref = point_source_fwhm(white_light(sim.members[0].model.data))[0]
    print(
        f"\nPoint source FWHM: reference member {fwhm_ref:.3f} px, combined cube "
        f"{fwhm_comb:.3f} px; spaxels covered: {covered}"
    )
    print(f"Largest offset error: {worst:.4f} px")
    diagnostics = out_dir / f"{product}_ifualign_diagnostics.png"
    if diagnostics.is_file():
        print(f"Diagnostic plot (white-light images before/after, offsets): {diagnostics}")
    else:
        print("No diagnostic plot: install matplotlib (pip install '.[plot]') to get it.")
    print(f"Outputs in {out_dir}: {', '.join(sorted(p.name for p in out_dir.iterdir()))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
