"""Accuracy benchmark of the offset measurement, on simulated MIRI-like and NIRSpec-like cubes.

What it measures
----------------
For each instrument-like setup (:data:`jwst_ifualign.testing.simulate.MIRI_CH1` and
:data:`~jwst_ifualign.testing.simulate.NIRSPEC_G395H`), each per-voxel S/N, each *geometry* (odd or even
spatial size, linear ``WAVE`` or tabular ``WAVE-TAB`` wavelength axis, position angle 0 or 30
degrees) and each trial, the script simulates a 4-dither association with
:func:`~jwst_ifualign.testing.simulate.simulate_association`. Every member (the reference too) gets a
random pointing error drawn uniformly in +-0.15 arcsec per axis, and every association has its
own noise seed; everything derives from ``--seed``, so a run is reproducible.

Each association is then aligned with :func:`~jwst_ifualign.adapter.align.align_members` once per
registration method (:data:`~jwst_ifualign.algorithms.registration.METHODS`), with the
package's default :class:`~jwst_ifualign.adapter.align.AlignOptions` apart from ``method``: white-light
measurement over all planes, member 0 as the reference, and the defaults of every other option,
so the benchmark follows the package's defaults as they change. The measured offset
``(dx, dy, dx_err, dy_err)`` of every non-reference member is compared with the simulator's
truth ``(truth_dx, truth_dy)``, in reference pixels (a feature at reference pixel ``(x, y)``
appears at ``(x + dx, y + dy)`` in the member).

How to read the table
---------------------
One table per method; one row per instrument and S/N, and a row ``>=5`` pooling every S/N of
at least 5. Errors are ``measured - truth`` in reference pixels, both axes pooled (each member
contributes ``|dx - truth_dx|`` and ``|dy - truth_dy|``) unless the column says x or y.

``n``
    Number of axis measurements in the row (2 per non-reference member).
``fail``
    Members without a measured offset (NaN: not measured, or rejected before measuring, e.g.
    for low S/N); left out of every other column. ``--json`` keeps each member's flag.
``rej``
    Members flagged ``rejected_max_shift`` (measured, but beyond ``max_shift`` so not applied;
    their measurement is kept in the statistics).
``med|e|``, ``p90|e|``
    Median and 90th percentile of the absolute error, px.
``bias_x``, ``bias_y``
    Mean signed error along x and y, px.
``<=2sig``
    Fraction of axis measurements with ``|error| <= 2 * reported sigma``; about 0.95 when the
    reported uncertainties are right, much less when they are too small.
``max|e|``
    Largest absolute error, px.
``psf med``, ``psf max``
    Median and largest absolute error of a point-source fit on the native pixels of the same
    cubes (a Gaussian fitted to each cube's white-light image, carried onto the reference grid
    by the member's WCS: no resampling, no registration), the yardstick for artefacts that a
    good measurement cannot remove (striping).
``spatial``
    Fraction of members whose reported error is set by the spatial (residual) term.
``sec``
    Mean wall time of one ``align_members`` call (measure and combine the 4 members), s.

With ``--artefacts`` every association is also simulated with each named artefact of a real
single-exposure cube (`ARTEFACTS`: background offsets and gradients, un-flagged outliers,
random holes, a hole next to the source in the reference or a member, striping), the same
pointing errors and noise for all, and each gets its own rows.

With ``--breakdown`` a second table per method pools S/N >= 5 per instrument and splits it by
one geometry factor at a time (size parity, wavelength axis, position angle), which shows
which condition a bias comes from. ``--json PATH`` writes every measurement for further study.

Usage
-----
::

    python benchmarks/accuracy.py --quick          # 8 associations, 1-2 minutes on 2 cores
    python benchmarks/accuracy.py                  # full grid, 64 associations: 5-12 minutes
    python benchmarks/accuracy.py --trials 3 --breakdown --json results.json
    python benchmarks/accuracy.py --methods chi2 dft --instruments miri --snr 5 20 --trials 5
    python benchmarks/accuracy.py --methods chi2 dft --snr 20 --geometries 4 \
        --artefacts clean background outliers holes hole_ref hole_member striping
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass

import numpy as np
from scipy.optimize import curve_fit

from jwst_ifualign.adapter.align import AlignOptions, align_members
from jwst_ifualign.adapter.inputs import Members
from jwst_ifualign.algorithms.registration import METHODS
from jwst_ifualign.testing.simulate import (
    MIRI_CH1,
    NIRSPEC_G395H,
    Artefacts,
    simulate_association,
)

#: Instrument key -> (label, simulator setup, {"odd": (ny, nx), "even": (ny, nx)}).
INSTRUMENTS = {
    "miri": ("MIRI-like", MIRI_CH1, {"odd": (45, 47), "even": (44, 46)}),
    "nirspec": ("NIRSpec-like", NIRSPEC_G395H, {"odd": (51, 51), "even": (50, 50)}),
}

#: Per-voxel S/N of the brightest spaxel of each plane.
DEFAULT_SNR = (1.0, 5.0, 20.0, 100.0)

#: The 8 geometries (size parity, tabular wavelength axis, position angle in degrees), ordered
#: so that every aligned block of 2 or 4 holds each level of each factor equally often (the
#: first 4 are a half fraction of the 2**3 design, consecutive pairs are complements).
GEOMETRIES = (
    ("odd", False, 0.0),
    ("even", True, 30.0),
    ("odd", True, 30.0),
    ("even", False, 0.0),
    ("odd", False, 30.0),
    ("even", True, 0.0),
    ("odd", True, 0.0),
    ("even", False, 30.0),
)

#: Members per simulated association (member 0 is the reference).
N_MEMBERS = 4

#: Largest pointing error per axis, arcsec.
MAX_POINTING_ERROR = 0.15

#: S/N from which a row pools conditions in the ``>=5`` rows.
POOLED_SNR_MIN = 5.0

DEFAULT_TRIALS = 1
DEFAULT_NWAVE = 200

#: Artefacts of real single-exposure cubes (``--artefacts``): name -> {member index: Artefacts}.
#: Amplitudes as in issue 14: backgrounds of 3 noise sigma on two members, 0.1% outliers at 50x
#: the peak in one member, 2% random holes in every member, one hole next to the source in the
#: reference or in a member, and a striping x(1 +- 0.15) with its own phase per exposure.
ARTEFACTS = {
    "clean": {},
    "background": {
        1: Artefacts(background_offset=3.0),
        2: Artefacts(background_gradient=3.0),
    },
    "outliers": {1: Artefacts(outlier_fraction=0.001, outlier_amplitude=50.0)},
    "holes": {i: Artefacts(hole_fraction=0.02) for i in range(N_MEMBERS)},
    "hole_ref": {0: Artefacts(hole_at_source=True)},
    "hole_member": {2: Artefacts(hole_at_source=True)},
    "striping": {i: Artefacts(stripe_amplitude=0.15) for i in range(N_MEMBERS)},
}


@dataclass(frozen=True)
class Case:
    """One simulated association of the benchmark grid.

    Attributes
    ----------
    instrument : str
        Key of `INSTRUMENTS`.
    snr : float
        Per-voxel S/N.
    parity : str
        "odd" or "even" spatial size.
    tabular : bool
        Tabular (``WAVE-TAB``) wavelength axis.
    pa_deg : float
        Position angle of every cube, degrees.
    trial : int
        Trial number.
    nwave : int
        Number of wavelength planes.
    artefact : str
        Key of `ARTEFACTS` ("clean" for none).
    seed_key : tuple of int
        Spawn key of this case's random streams under the run's seed: instrument, S/N (x1000),
        geometry and trial, so a case draws the same numbers whatever else the run holds.
    """

    instrument: str
    snr: float
    parity: str
    tabular: bool
    pa_deg: float
    trial: int
    nwave: int
    seed_key: tuple
    artefact: str = "clean"


def make_cases(instruments, snrs, trials, nwave, geometries_per_cell, artefacts=("clean",)):
    """List the simulated associations of a run.

    Parameters
    ----------
    instruments : sequence of str
        Keys of `INSTRUMENTS`.
    snrs : sequence of float
        Per-voxel S/N values.
    trials : int
        Trials per instrument, S/N and geometry.
    nwave : int
        Wavelength planes per cube.
    geometries_per_cell : int
        How many of the 8 `GEOMETRIES` each (instrument, S/N, trial) cell simulates: 8 for the
        full design, 4 or 2 for a balanced subset that rotates through the 8 from cell to cell.
    artefacts : sequence of str
        Keys of `ARTEFACTS`; each artefact gets the same associations (pointing errors, noise),
        so the columns differ by the artefact alone.

    Returns
    -------
    list of Case
    """
    if geometries_per_cell not in (1, 2, 4, 8):
        raise ValueError("geometries_per_cell must be 1, 2, 4 or 8")
    cases = []
    for inst in instruments:
        i_inst = list(INSTRUMENTS).index(inst)
        cell = 0
        for trial in range(trials):
            for snr in snrs:
                start = (cell * geometries_per_cell) % len(GEOMETRIES)
                cell += 1
                for k in range(geometries_per_cell):
                    i_geom = (start + k) % len(GEOMETRIES)
                    parity, tabular, pa_deg = GEOMETRIES[i_geom]
                    for artefact in artefacts:
                        cases.append(
                            Case(
                                instrument=inst,
                                snr=float(snr),
                                parity=parity,
                                tabular=tabular,
                                pa_deg=pa_deg,
                                trial=trial,
                                nwave=nwave,
                                seed_key=(i_inst, round(1000 * snr), i_geom, trial),
                                artefact=artefact,
                            )
                        )
    return cases


def simulate_case(case, seed):
    """Simulate the association of one case.

    Parameters
    ----------
    case : Case
        The case.
    seed : int
        The run's seed; the case's pointing errors and noise come from independent streams
        spawned from it with ``case.seed_key``.

    Returns
    -------
    SimulatedAssociation
    """
    errors_seq, noise_seq = np.random.SeedSequence(seed, spawn_key=case.seed_key).spawn(2)
    errors = np.random.default_rng(errors_seq).uniform(
        -MAX_POINTING_ERROR, MAX_POINTING_ERROR, (N_MEMBERS, 2)
    )
    _, setup, sizes = INSTRUMENTS[case.instrument]
    return simulate_association(
        setup=setup,
        shape=(case.nwave, *sizes[case.parity]),
        n_members=N_MEMBERS,
        errors_arcsec=[tuple(e) for e in errors],
        pa_deg=case.pa_deg,
        tabular=case.tabular,
        snr=case.snr,
        seed=int(noise_seq.generate_state(1)[0]),
        artefacts=ARTEFACTS[case.artefact],
    )


def _gaussian2d(coords, amplitude, x0, y0, sigma, background):
    x, y = coords
    return amplitude * np.exp(-((x - x0) ** 2 + (y - y0) ** 2) / (2 * sigma**2)) + background


def point_source_position(model, half=3):
    """(x, y) of the point source on the cube's native pixels: a circular Gaussian plus a
    constant fitted to the white-light image (mean over wavelength) in a (2 half + 1)**2 box
    around its brightest spaxel; NaN spaxels are left out of the fit."""
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        image = np.nanmean(np.where(model.dq & 1, np.nan, model.data), axis=0)
    ny, nx = image.shape
    yp, xp = np.unravel_index(np.nanargmax(image), image.shape)
    y0, y1 = max(0, yp - half), min(ny, yp + half + 1)
    x0, x1 = max(0, xp - half), min(nx, xp + half + 1)
    yy, xx = np.mgrid[y0:y1, x0:x1]
    box = image[y0:y1, x0:x1]
    ok = np.isfinite(box)
    start = (box[ok].max() - np.median(box[ok]), xp, yp, 1.0, np.median(box[ok]))
    popt, _ = curve_fit(_gaussian2d, (xx[ok], yy[ok]), box[ok], p0=start, maxfev=4000)
    return float(popt[1]), float(popt[2])


def point_source_offsets(sim):
    """(dx, dy) of every member from point-source fits on the native pixels of each cube.

    The member's fitted position is carried through its own WCS onto the reference grid (which
    is where the reprojected member shows it), and the reference's fitted position subtracted:
    the step's convention, without any resampling or registration.
    """
    ref = sim.members[0].model
    z = ref.data.shape[0] // 2
    xr, yr = point_source_position(ref)
    out = []
    for m in sim.members:
        x, y = point_source_position(m.model)
        ra, dec, lam = m.model.meta.wcs(x, y, z, with_bounding_box=False)
        xm, ym, _ = ref.meta.wcs.invert(ra, dec, lam, with_bounding_box=False)
        out.append((float(xm) - xr, float(ym) - yr))
    return out


def run_case(case, methods, seed):
    """Simulate one case and measure it with every method.

    Parameters
    ----------
    case : Case
        The case.
    methods : sequence of str
        Registration methods.
    seed : int
        The run's seed.

    Returns
    -------
    list of dict
        One record per method and non-reference member: the case's fields, ``method``,
        ``member``, ``truth_dx``, ``truth_dy``, ``dx``, ``dy``, ``dx_err``, ``dy_err``, ``flag``
        and ``seconds`` (time of the method's ``align_members`` call).
    """
    sim = simulate_case(case, seed)
    n = len(sim.members)
    members = Members(
        models=[m.model for m in sim.members],
        names=[m.model.meta.filename for m in sim.members],
        product_name="benchmark",
        opened_here=[False] * n,
    )
    base = asdict(case)
    base["seed_key"] = list(case.seed_key)
    try:
        psf = point_source_offsets(sim)
    except (RuntimeError, ValueError):  # the fit did not converge
        psf = [(np.nan, np.nan)] * n
    records = []
    for method in methods:
        t0 = time.perf_counter()
        result = align_members(members, AlignOptions(method=method))
        seconds = time.perf_counter() - t0
        for i, (res, truth) in enumerate(zip(result.members, sim.members, strict=True)):
            if i == 0:  # the reference (AlignOptions.reference == 0)
                continue
            m = res.measured
            records.append(
                {
                    **base,
                    "method": method,
                    "member": i,
                    "truth_dx": float(truth.truth_dx),
                    "truth_dy": float(truth.truth_dy),
                    "dx": float(m.dx),
                    "dy": float(m.dy),
                    "dx_err": float(m.dx_err),
                    "dy_err": float(m.dy_err),
                    "flag": res.flag,
                    "error_term": "" if res.measurement is None else res.measurement.error_term,
                    "psf_dx": psf[i][0],
                    "psf_dy": psf[i][1],
                    "seconds": seconds,
                }
            )
    return records


def _quiet_worker():
    """Silence the package's per-member log messages in a worker process."""
    logging.getLogger("jwst_ifualign").setLevel(logging.ERROR)
    logging.getLogger("stpipe").setLevel(logging.ERROR)


def run_cases(cases, methods, seed, jobs, progress=True):
    """Run every case, in ``jobs`` processes.

    Returns
    -------
    list of dict
        The records of every case (see `run_case`), in case order.
    """
    records = []
    done = 0
    t0 = time.perf_counter()

    def report():
        nonlocal done
        done += 1
        if progress:
            print(
                f"\r  {done}/{len(cases)} associations, {time.perf_counter() - t0:6.0f} s",
                end="",
                file=sys.stderr,
                flush=True,
            )

    if jobs <= 1:
        _quiet_worker()
        for case in cases:
            records.extend(run_case(case, methods, seed))
            report()
    else:
        with ProcessPoolExecutor(max_workers=jobs, initializer=_quiet_worker) as pool:
            futures = [pool.submit(run_case, case, methods, seed) for case in cases]
            for future in futures:
                records.extend(future.result())
                report()
    if progress:
        print(file=sys.stderr)
    return records


def summarize(records):
    """Statistics of a group of records (one method).

    Parameters
    ----------
    records : list of dict
        Records of `run_case`.

    Returns
    -------
    dict
        ``n`` (axis measurements), ``fail`` and ``rej`` (members), ``median``, ``p90``,
        ``bias_x``, ``bias_y``, ``within`` (fraction within 2 sigma) and ``sec`` (mean time of an
        ``align_members`` call); NaN where there is nothing to summarize.
    """
    ok = [r for r in records if np.isfinite(r["dx"]) and np.isfinite(r["dy"])]
    ex = np.array([r["dx"] - r["truth_dx"] for r in ok])
    ey = np.array([r["dy"] - r["truth_dy"] for r in ok])
    sx = np.array([r["dx_err"] for r in ok])
    sy = np.array([r["dy_err"] for r in ok])
    err = np.abs(np.concatenate([ex, ey]))
    sig = np.concatenate([sx, sy])
    calls = {
        (tuple(r["seed_key"]), r.get("artefact", "clean"), r["method"]): r["seconds"]
        for r in records
    }
    psf = np.abs(
        np.concatenate(
            [
                [r["psf_dx"] - r["truth_dx"] for r in ok if np.isfinite(r.get("psf_dx", np.nan))],
                [r["psf_dy"] - r["truth_dy"] for r in ok if np.isfinite(r.get("psf_dy", np.nan))],
            ]
        )
    )
    nan = float("nan")
    with np.errstate(invalid="ignore"):
        within = err <= 2.0 * sig  # False where sigma is NaN
    return {
        "n": int(err.size),
        "fail": len(records) - len(ok),
        "rej": sum(r["flag"] == "rejected_max_shift" for r in records),
        "median": float(np.median(err)) if err.size else nan,
        "p90": float(np.percentile(err, 90)) if err.size else nan,
        "max": float(np.max(err)) if err.size else nan,
        "psf_median": float(np.median(psf)) if psf.size else nan,
        "psf_max": float(np.max(psf)) if psf.size else nan,
        "spatial": float(np.mean([r.get("error_term") == "spatial" for r in ok])) if ok else nan,
        "bias_x": float(np.mean(ex)) if ex.size else nan,
        "bias_y": float(np.mean(ey)) if ey.size else nan,
        "within": float(np.mean(within)) if err.size else nan,
        "sec": float(np.mean(list(calls.values()))) if calls else nan,
    }


#: Columns of the summary tables: (header, summary key, format).
_COLUMNS = (
    ("n", "n", "{:>5d}"),
    ("fail", "fail", "{:>4d}"),
    ("rej", "rej", "{:>4d}"),
    ("med|e|", "median", "{:>8.4f}"),
    ("p90|e|", "p90", "{:>8.4f}"),
    ("max|e|", "max", "{:>8.4f}"),
    ("bias_x", "bias_x", "{:>+8.4f}"),
    ("bias_y", "bias_y", "{:>+8.4f}"),
    ("<=2sig", "within", "{:>6.2f}"),
    ("psf med", "psf_median", "{:>8.4f}"),
    ("psf max", "psf_max", "{:>8.4f}"),
    ("spatial", "spatial", "{:>7.2f}"),
    ("sec", "sec", "{:>5.2f}"),
)


def format_table(title, label_headers, rows):
    """Format summaries as a fixed-width plain-text table.

    Parameters
    ----------
    title : str
        Line printed above the table.
    label_headers : sequence of str
        Headers of the leading label columns.
    rows : list of (tuple of str, dict)
        Labels and the `summarize` output of each row.

    Returns
    -------
    str
    """
    widths = [
        max(len(h), *(len(labels[j]) for labels, _ in rows)) if rows else len(h)
        for j, h in enumerate(label_headers)
    ]
    value_widths = [len(fmt.format(0 if "d" in fmt else 0.0)) for _, _, fmt in _COLUMNS]
    head = "  ".join(h.ljust(w) for h, w in zip(label_headers, widths, strict=True))
    head += "  " + "  ".join(
        h.rjust(w) for (h, _, _), w in zip(_COLUMNS, value_widths, strict=True)
    )
    lines = [title, head, "-" * len(head)]
    for labels, summary in rows:
        cells = [lab.ljust(w) for lab, w in zip(labels, widths, strict=True)]
        for (_, key, fmt), w in zip(_COLUMNS, value_widths, strict=True):
            value = summary[key]
            if isinstance(value, float) and not np.isfinite(value):
                cells.append("-".rjust(w))
            else:
                cells.append(fmt.format(value))
        lines.append("  ".join(cells))
    return "\n".join(lines)


def _snr_label(snr):
    return f"{snr:g}"


def method_table(records, method, instruments, snrs, artefacts=("clean",)):
    """The main table of one method: rows per instrument (and artefact) and S/N, plus the
    S/N >= 5 pool."""
    rows = []
    with_artefacts = tuple(artefacts) != ("clean",)
    for inst in instruments:
        label = INSTRUMENTS[inst][0]
        for artefact in artefacts:
            mine = [
                r
                for r in records
                if r["method"] == method
                and r["instrument"] == inst
                and r.get("artefact", "clean") == artefact
            ]
            labels = (label, artefact) if with_artefacts else (label,)
            for snr in snrs:
                subset = [r for r in mine if r["snr"] == snr]
                rows.append(((*labels, _snr_label(snr)), summarize(subset)))
            pooled = [r for r in mine if r["snr"] >= POOLED_SNR_MIN]
            if pooled and sum(s >= POOLED_SNR_MIN for s in snrs) > 1:
                rows.append(((*labels, f">={POOLED_SNR_MIN:g}"), summarize(pooled)))
    headers = ("instrument", "artefact", "S/N") if with_artefacts else ("instrument", "S/N")
    return format_table(f"method = {method}", headers, rows)


def breakdown_table(records, method, instruments):
    """One method's S/N >= 5 measurements split by size parity, wavelength axis and PA."""
    factors = (
        ("size", "parity", lambda v: v),
        ("wave axis", "tabular", lambda v: "tabular" if v else "linear"),
        ("PA", "pa_deg", lambda v: f"{v:g} deg"),
    )
    rows = []
    for inst in instruments:
        label = INSTRUMENTS[inst][0]
        mine = [
            r
            for r in records
            if r["method"] == method and r["instrument"] == inst and r["snr"] >= POOLED_SNR_MIN
        ]
        for name, key, show in factors:
            for level in sorted({r[key] for r in mine}, key=str):
                subset = [r for r in mine if r[key] == level]
                rows.append(((label, name, show(level)), summarize(subset)))
    return format_table(
        f"method = {method}, S/N >= {POOLED_SNR_MIN:g}, by geometry factor",
        ("instrument", "factor", "level"),
        rows,
    )


def parse_args(argv=None):
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--trials",
        type=int,
        default=None,
        help=f"trials per instrument, S/N and geometry (default {DEFAULT_TRIALS}; 1 with --quick)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke test: one trial and one of the 8 geometries per instrument and S/N, "
        "rotating through a balanced half of them (8 associations)",
    )
    parser.add_argument(
        "--geometries",
        type=int,
        choices=(1, 2, 4, 8),
        default=None,
        help="geometries (size parity x wavelength axis x PA) per instrument, S/N and trial; "
        "fewer than 8 rotate through a balanced subset (default 8; 1 with --quick)",
    )
    parser.add_argument(
        "--methods", nargs="+", choices=METHODS, default=list(METHODS), help="methods to run"
    )
    parser.add_argument(
        "--instruments",
        nargs="+",
        choices=tuple(INSTRUMENTS),
        default=list(INSTRUMENTS),
        help="instrument-like setups to simulate",
    )
    parser.add_argument(
        "--snr", nargs="+", type=float, default=list(DEFAULT_SNR), help="per-voxel S/N values"
    )
    parser.add_argument("--nwave", type=int, default=DEFAULT_NWAVE, help="wavelength planes")
    parser.add_argument(
        "--artefacts",
        nargs="+",
        choices=tuple(ARTEFACTS),
        default=["clean"],
        help="artefacts of real single-exposure cubes to add (one table row group each, on "
        "the same associations); default clean only",
    )
    parser.add_argument("--seed", type=int, default=2024, help="seed of the whole run")
    parser.add_argument(
        "--jobs",
        type=int,
        default=min(2, os.cpu_count() or 1),
        help="worker processes (default: 2, or 1 on a single core)",
    )
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="also print S/N >= 5 statistics split by size parity, wavelength axis and PA",
    )
    parser.add_argument("--json", metavar="PATH", help="write every measurement to this file")
    parser.add_argument(
        "--absolute",
        action="store_true",
        help="print the absolute-mode table instead (members tied to an image and to a catalog; "
        "benchmarks/accuracy_absolute.py)",
    )
    args = parser.parse_args(argv)
    if args.trials is None:
        args.trials = 1 if args.quick else DEFAULT_TRIALS
    if args.geometries is None:
        args.geometries = 1 if args.quick else len(GEOMETRIES)
    if args.trials < 1 or args.nwave < 10 or args.jobs < 1:
        parser.error("--trials and --jobs must be >= 1 and --nwave >= 10")
    return args


def main(argv=None):
    """Run the benchmark and print its tables; returns the process exit code."""
    args = parse_args(argv)
    if args.absolute:
        # The absolute mode's table (cubes tied to an image or catalog): accuracy_absolute.py.
        from accuracy_absolute import absolute_table

        methods = [m for m in args.methods if m in ("chi2", "dft")] or ["chi2", "dft"]
        rows = absolute_table(args.instruments, methods, args.snr, args.trials, args.seed)
        print("\n".join(rows))
        return 0
    snrs = sorted(set(args.snr))
    cases = make_cases(
        args.instruments, snrs, args.trials, args.nwave, args.geometries, args.artefacts
    )
    print(
        f"jwst_ifualign accuracy benchmark: {len(cases)} associations of {N_MEMBERS} members "
        f"(nwave={args.nwave}, {args.trials} trial(s), {args.geometries}/8 geometries per "
        f"cell, pointing errors up to +-{MAX_POINTING_ERROR:g}\" per axis, seed={args.seed}, "
        f"jobs={args.jobs})"
    )
    options = {k: v for k, v in vars(AlignOptions()).items() if k != "method"}
    print(f"Other options (package defaults): {options}")
    t0 = time.perf_counter()
    records = run_cases(cases, args.methods, args.seed, args.jobs)
    elapsed = time.perf_counter() - t0
    print("Errors are measured - truth in reference pixels (module docstring).\n")
    for method in args.methods:
        print(method_table(records, method, args.instruments, snrs, args.artefacts))
        print()
        if args.breakdown:
            print(breakdown_table(records, method, args.instruments))
            print()
    print(f"Wall time {elapsed:.0f} s.")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "arguments": vars(args),
                    "align_options": options,
                    "wall_seconds": elapsed,
                    "records": records,
                },
                f,
                indent=1,
                default=repr,
            )
        print(f"Raw results written to {args.json}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
