"""Accuracy of the absolute mode: cubes tied to a reference image or to a source catalog.

What it measures
----------------
For each instrument-like setup (MIRI-like cubes with a MIRI F560W-like image; NIRSpec-like cubes
with a NIRCam F444W-like image, :mod:`jwst_ifualign.testing.imaging`), each S/N and each trial,
the script simulates a 4-dither association in which EVERY member, the first (the reference)
included, carries a random pointing error drawn uniformly in +-0.15 arcsec per axis, and an image
of the same scene on the true sky (its own pixel scale, PSF, noise and position angle). The
association is aligned (:func:`~jwst_ifualign.adapter.align.align_members`, the package's
defaults but ``method``) and then tied (:func:`~jwst_ifualign.adapter.absolute.tie_to_reference`)
once to the image (``reference_image``) and once to a catalog holding the point source's true
position (``reference_catalog``). Each member's absolute offset (``ra_offset_abs``,
``dec_offset_abs``: what the offset file gives cube_build) is compared with its true correction,
its pointing error.

How to read the table
---------------------
One row per instrument, method, reference and S/N. Errors are ``measured - truth`` in
milliarcseconds on the sky, both axes of every member pooled. ``<=2sig`` is the fraction within
two reported sigma (about 0.95 when the errors are right); ``sec`` the mean time of one tie.

Usage
-----
::

    python benchmarks/accuracy_absolute.py                 # 4 trials per cell, a few minutes
    python benchmarks/accuracy_absolute.py --trials 8 --snr 5 20 100
    python benchmarks/accuracy.py --absolute               # the same table from accuracy.py
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

import numpy as np

from jwst_ifualign.adapter.absolute import (
    AbsoluteReference,
    load_reference_image,
    tie_to_reference,
)
from jwst_ifualign.adapter.align import AlignOptions, align_members
from jwst_ifualign.adapter.inputs import Members
from jwst_ifualign.adapter.outputs import build_output_model
from jwst_ifualign.testing.imaging import (
    MIRI_F560W,
    NIRCAM_F444W,
    make_reference_image,
    reference_catalog,
)
from jwst_ifualign.testing.simulate import MIRI_CH1, NIRSPEC_G395H, simulate_association

#: Instrument key -> (label, cube setup, cube shape, imager).
INSTRUMENTS = {
    "miri": ("MIRI-like + F560W", MIRI_CH1, (200, 45, 47), MIRI_F560W),
    "nirspec": ("NIRSpec-like + F444W", NIRSPEC_G395H, (200, 50, 50), NIRCAM_F444W),
}

#: Where the simulated point source is (the catalog's one entry).
SOURCE = (150.0, 2.0)


def tie_errors(instrument, method, snr, seed):
    """Simulate one association and its image, align and tie it both ways.

    Returns ``{"image": (errors, sigmas, seconds), "catalog": (...)}``: per-member absolute
    errors and reported sigmas (mas, shape (2 * nmember,)), and the time of the tie.
    """
    _, setup, shape, imager = INSTRUMENTS[instrument]
    rng = np.random.default_rng(seed)
    errors = [tuple(rng.uniform(-0.15, 0.15, 2)) for _ in range(4)]
    sim = simulate_association(
        setup=setup, shape=shape, errors_arcsec=errors, snr=snr, seed=seed, target=SOURCE
    )
    models = [m.model for m in sim.members]
    names = [m.meta.filename for m in models]
    options = AlignOptions(method=method)
    result = align_members(Members(models, names, "bench", [False] * 4), options)
    combined = build_output_model(models[0], result, options=options, names=names)
    image = make_reference_image(imager=imager, cube_setup=setup, source=SOURCE, rng=rng)
    catalog = reference_catalog([SOURCE])
    truth = np.array([m.pointing_error_arcsec for m in sim.members])
    out = {}
    for kind, reference in (
        ("image", AbsoluteReference(image=load_reference_image(image))),
        ("catalog", AbsoluteReference(catalog=catalog)),
    ):
        start = time.perf_counter()
        tied = tie_to_reference(result, combined, models, reference, options)
        seconds = time.perf_counter() - start
        got = np.array([(r.ra_offset_abs, r.dec_offset_abs) for r in tied.members])
        sig = np.array([(r.ra_offset_abs_err, r.dec_offset_abs_err) for r in tied.members])
        out[kind] = ((got - truth).ravel() * 1000, sig.ravel() * 1000, seconds)
    return out


def absolute_table(instruments, methods, snrs, trials, seed):
    """Rows of the absolute-mode table (list of str, markdown)."""
    rows = [
        "| instrument | method | reference | S/N | n | median |e| | p90 |e| | max |e| | <=2sig "
        "| sec |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for instrument in instruments:
        for method in methods:
            for snr in snrs:
                pooled = {"image": [], "catalog": []}
                for trial in range(trials):
                    cell_seed = seed + 1000 * trial + int(snr)
                    for kind, values in tie_errors(instrument, method, snr, cell_seed).items():
                        pooled[kind].append(values)
                for kind, values in pooled.items():
                    err = np.abs(np.concatenate([v[0] for v in values]))
                    sig = np.concatenate([v[1] for v in values])
                    sec = np.mean([v[2] for v in values])
                    rows.append(
                        f"| {INSTRUMENTS[instrument][0]} | {method} | {kind} | {snr:g} | "
                        f"{err.size} | {np.median(err):.1f} | {np.percentile(err, 90):.1f} | "
                        f"{err.max():.1f} | {np.mean(err <= 2 * sig):.2f} | {sec:.2f} |"
                    )
                print(rows[-2], rows[-1], sep="\n", file=sys.stderr, flush=True)
    return rows


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instruments", nargs="+", default=list(INSTRUMENTS), choices=INSTRUMENTS)
    parser.add_argument("--methods", nargs="+", default=["chi2", "dft"])
    parser.add_argument("--snr", nargs="+", type=float, default=[20.0])
    parser.add_argument("--trials", type=int, default=4, help="associations per cell")
    parser.add_argument("--seed", type=int, default=2026, help="seed of the whole run")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    logging.getLogger("jwst_ifualign").setLevel(logging.ERROR)
    logging.getLogger("stpipe").setLevel(logging.ERROR)
    start = time.perf_counter()
    rows = absolute_table(args.instruments, args.methods, args.snr, args.trials, args.seed)
    print("\n".join(rows))
    print(f"\n{time.perf_counter() - start:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
