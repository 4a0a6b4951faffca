"""Speed and memory benchmark of ``ifu_align`` on simulated MIRI-like and NIRSpec-like cubes.

What is timed
-------------
For each instrument-like setup (:data:`jwst_ifualign.testing.simulate.MIRI_CH1`, 1050 x 45 x 47, and
:data:`~jwst_ifualign.testing.simulate.NIRSPEC_G395H`, 3600 x 50 x 50) and each association size
``N`` (``--members``, default 4 and 16), the script simulates an association with
:func:`~jwst_ifualign.testing.simulate.simulate_association` (for ``N > 4`` the simulator draws random
pointing errors for the extra members), writes it with
:func:`~jwst_ifualign.testing.simulate.write_association` to a temporary folder, and measures:

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
    non-reference members) and marked ``*`` / "extrapolated". ``--full`` measures it for every
    ``N``.
(b) ``step (memory)``
    ``IFUAlignStep.call(container)`` on an open ``jwst.datamodels.ModelContainer`` of the same
    in-memory models, default parameters, nothing saved. Best of ``--repeat`` runs.
(b0) ``stpipe alone``
    The same call with ``IFUAlignStep`` whose ``process`` returns its input: what stpipe costs
    per call in this process, whatever the step does. Best of ``--repeat`` runs.
(c) ``step (files)``
    ``IFUAlignStep.call(asn_path, save_results=True, output_dir=tmpdir)`` in this process: from
    the association file to the three written outputs. Best of ``--repeat`` runs. Also one run of
    ``strun ifu_align asn.json --output_dir=...`` as a subprocess, for information: that time
    includes the interpreter and jwst start-up, reported as ``strun - (c)`` and, separately, as
    the wall time of ``strun ifu_align --help``.
(d) ``I/O floor``
    What any step must do with these files: ``stdatamodels.jwst.datamodels.open`` on each member,
    touching its arrays (sums of data, err and dq), and saving one output-sized IFUCubeModel (a
    copy of the reference) to a FITS file. Best of ``--repeat`` runs. The copy keeps the files'
    big-endian arrays, so unlike the step's output it needs no byte swap when written (a few
    hundredths of a second for these sizes).

Memory: each measurement runs in a fresh subprocess that opens the association as a
ModelContainer, touches every array, records its RSS (the *baseline*, which holds the inputs),
resets the kernel's high-water mark (``/proc/self/clear_refs``; ``ru_maxrss`` if that is not
possible) and runs the step alone. ``peak`` is the high-water RSS minus the baseline: the memory
the step needs on top of its already-loaded inputs (the ratios ``peak/(in+out)`` and ``peak/in``
use this). The same subprocess then runs the step again under
``tracemalloc`` (numpy allocations are traced) as a cross-check. ``inputs`` is the sum of
``data + err + dq + weightmap`` nbytes over the members, ``output`` the same for the combined
cube. For ``N >= 16`` the step is also measured with ``chunk_size=64``
(``--memory-chunk``).

How to read the output
----------------------
Times are wall-clock seconds. Times (b) and (c) include stpipe's own overhead (``Step.run``
starts with a full ``gc.collect()``, whose cost grows with the Python objects alive in the
process). ``(b0)`` measures that overhead: the same call as (b) with a step that does nothing
(``process`` returns its input), in the same process, best of ``--repeat``; ``(b) - (b0)`` is
the step's own work, and ``(a)/(b-b0)`` is printed for information (the target is on (b)).
``(a)/(b)`` is the speed-up of the step over the seed notebook on
the same in-memory data; ``(c)/(d)`` is how far the end-to-end step is above the I/O floor
(1.0 means the step costs nothing beyond opening and writing). Peak memory is compared with the
input and output sizes. A final table lists each target, the measured value and whether it is
met. When the I/O floor is at least half of (c), or with ``--profile``, a cProfile breakdown of
(d) (on open and on save: schema validation, YAML, ASDF, FITS, byte order, ...) is printed;
``--profile`` also prints a cProfile top-10 of (b). cProfile slows Python-heavy code more than
numpy-heavy code, so read those as shares, not times.

Other processes on the machine change the times: the script prints the load averages before
and after the run.

Usage
-----
::

    python benchmarks/speed.py --quick              # 100 planes, 4 members, 1 run: about a minute
    python benchmarks/speed.py --quick --members 4,16   # the same with 16 members: a few minutes
    python benchmarks/speed.py                      # full size, 4 and 16 members: ~11 min
    python benchmarks/speed.py --members 4 --instruments miri --markdown
    python benchmarks/speed.py --full               # also time (a) for 16 members: +25 min
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import gc
import json
import logging
import os
import platform
import pstats
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: Instrument key -> (label, name of the setup in jwst_ifualign.testing.simulate).
INSTRUMENTS = {
    "miri": ("MIRI-like", "MIRI_CH1"),
    "nirspec": ("NIRSpec-like", "NIRSPEC_G395H"),
}

#: Number of members the seed approach is measured on when it is extrapolated.
SEED_BASE_MEMBERS = 4

#: Targets.
TARGET_SPEEDUP = 300.0  # (a)/(b) >= this
TARGET_IO_RATIO = 1.5  # (c)/(d) <= this, 4 MIRI members
TARGET_PEAK_IN_OUT = 2.0  # peak < this * (inputs + output)
TARGET_PEAK_CHUNKED = 1.5  # peak < this * inputs, N >= 16 with a set chunk_size

#: Planes per cube in --quick mode.
QUICK_NWAVE = 100

_MB = 1024.0**2

#: Profile texts collected during the run, printed after the tables.
PROFILES = []


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


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


@dataclass
class CaseResult:
    """Everything measured for one (instrument, number of members).

    Times are seconds; ``seed_s`` is extrapolated when ``seed_extrapolated`` is True.
    """

    instrument: str
    label: str
    n_members: int
    shape: tuple
    seed_s: float | None = None
    seed_extrapolated: bool = False
    step_memory_s: float | None = None
    step_memory_runs: list = field(default_factory=list)
    stpipe_floor_s: float | None = None
    step_files_s: float | None = None
    step_files_runs: list = field(default_factory=list)
    strun_s: float | None = None
    io_floor_s: float | None = None
    io_floor_runs: list = field(default_factory=list)
    input_bytes: int = 0
    output_bytes: int = 0
    wcs_check_mas: float | None = None
    memory: list = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


def _progress(message):
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


def _quiet_logging():
    """Show warnings of jwst, stpipe and this package once each (the step logs INFO per member)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(_OnceFilter())
    for name in ("stpipe", "jwst", "jwst_ifualign", "stdatamodels", "stcal", "CRDS"):
        logging.getLogger(name).setLevel(logging.WARNING)


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


def _loadavg():
    try:
        return "load average %.2f, %.2f, %.2f" % os.getloadavg()
    except OSError:
        return "load average unavailable"


# --------------------------------------------------------------------------------------------
# Simulation
# --------------------------------------------------------------------------------------------


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
    from jwst_ifualign import simulate as simulate_module

    setup = getattr(simulate_module, INSTRUMENTS[instrument][1])
    shape = setup.shape if nwave is None else (int(nwave), *setup.shape[1:])
    sim = simulate_module.simulate_association(setup=setup, shape=shape, n_members=n_members)
    simulate_module.write_association(sim, folder)
    return sim, tuple(shape)


# --------------------------------------------------------------------------------------------
# (a) The seed notebook's per-slice approach
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# (b), (c): the step
# --------------------------------------------------------------------------------------------


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
        out["bytes"] = model_nbytes(result)
        result.close()

    best, runs = best_of(run, repeat)
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
    best, _ = best_of(lambda: step.call(container, configure_log=False), repeat)
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

    best, runs = best_of(run, repeat)
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
    subprocess.run(
        [_strun(), "ifu_align", "--help"], capture_output=True, text=True, check=True
    )
    return time.perf_counter() - start


# --------------------------------------------------------------------------------------------
# (d) The I/O floor
# --------------------------------------------------------------------------------------------


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
    return best_of(lambda: io_floor(paths, out_path), repeat)


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


# --------------------------------------------------------------------------------------------
# Memory (fresh subprocess)
# --------------------------------------------------------------------------------------------


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
    # Import what the step uses before the baseline, so imports are not counted as its memory
    # (jwst_ifualign.adapter.align imports image_registration the step's way, without matplotlib.pyplot).
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
        input_bytes += model_nbytes(model)
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
    output_bytes = model_nbytes(result)
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


# --------------------------------------------------------------------------------------------
# One case
# --------------------------------------------------------------------------------------------


def run_case(instrument, n_members, args, workdir, seed_cache):
    """Simulate one association and measure (a)-(d) and memory.

    Parameters
    ----------
    instrument : str
        Key of :data:`INSTRUMENTS`.
    n_members : int
        Association size.
    args : argparse.Namespace
        Command-line options.
    workdir : Path
        Scratch folder (removed at the end of the case).
    seed_cache : dict
        Instrument -> seed time measured on :data:`SEED_BASE_MEMBERS` members, for
        extrapolation; filled here.

    Returns
    -------
    CaseResult
    """
    label = INSTRUMENTS[instrument][0]
    _progress(f"{label}, {n_members} members: simulating")
    data_dir = workdir / "data"
    sim, shape = simulate(instrument, n_members, args.nwave, data_dir)
    models = [m.model for m in sim.members]
    paths = [data_dir / m.meta.filename for m in models]
    case = CaseResult(instrument, label, n_members, shape)
    case.input_bytes = sum(model_nbytes(m) for m in models)
    case.wcs_check_mas = max(check_celestial_wcs(m, celestial_wcs(m)) for m in models)

    # (a)
    measure_seed = args.full or n_members <= SEED_BASE_MEMBERS
    if args.no_seed:
        pass
    elif measure_seed:
        _progress(f"{label}, {n_members} members: (a) seed per-slice approach, {shape[0]} planes")
        case.seed_s = time_seed(models)
        if n_members == SEED_BASE_MEMBERS:
            seed_cache[instrument] = case.seed_s
    else:
        if instrument not in seed_cache:
            _progress(f"{label}: (a) on the first {SEED_BASE_MEMBERS} members, to extrapolate")
            seed_cache[instrument] = time_seed(models[:SEED_BASE_MEMBERS])
        case.seed_s = seed_cache[instrument] * (n_members - 1) / (SEED_BASE_MEMBERS - 1)
        case.seed_extrapolated = True
    if case.seed_s is not None:
        note = " (extrapolated)" if case.seed_extrapolated else ""
        _progress(f"  (a) {case.seed_s:.2f} s{note}")

    # (b)
    _progress(f"{label}, {n_members} members: (b) step on in-memory models x{args.repeat}")
    case.step_memory_s, case.step_memory_runs, case.output_bytes = time_step_in_memory(
        models, args.repeat
    )
    _progress(f"  (b) {_runs(case.step_memory_runs)}")
    case.stpipe_floor_s = time_stpipe_floor(models, args.repeat)
    _progress(f"  (b0) stpipe alone (a step that does nothing): {case.stpipe_floor_s:.3f} s")

    # (c)
    _progress(f"{label}, {n_members} members: (c) step from asn to files x{args.repeat}")
    case.step_files_s, case.step_files_runs = time_step_from_files(
        sim.asn_path, workdir / "out_c", args.repeat
    )
    _progress(f"  (c) {_runs(case.step_files_runs)}")
    if not args.no_strun:
        case.strun_s = time_strun(sim.asn_path, workdir / "out_strun")
        _progress(f"  strun {case.strun_s:.2f} s")

    # (d)
    _progress(f"{label}, {n_members} members: (d) I/O floor x{args.repeat}")
    case.io_floor_s, case.io_floor_runs = time_io_floor(paths, workdir / "floor.fits", args.repeat)
    _progress(f"  (d) {_runs(case.io_floor_runs)}")

    profile_here = args.profile and n_members == min(args.members)
    if profile_here or case.io_floor_s >= 0.5 * case.step_files_s:
        title = (
            f"(d) I/O floor breakdown, {label}, {n_members} members (cProfile, exclusive time "
            "by category; 'inclusive' lines overlap the categories)"
        )
        case_breakdown = format_io_breakdown(profile_io_floor(paths, workdir / "floor.fits"), title)
        PROFILES.append(case_breakdown)
    if profile_here:
        stats = profile_step_in_memory(models)
        title = f"(b) step on in-memory models, {label}, {n_members} members"
        PROFILES.append(title + "\n" + format_top(stats))

    # Memory, each in a fresh subprocess.
    del sim, models
    gc.collect()
    if not args.no_memory:
        chunks = [None]
        if n_members >= 16:
            chunks.append(args.memory_chunk)
        for chunk in chunks:
            _progress(
                f"{label}, {n_members} members: peak memory, chunk_size="
                f"{'default' if chunk is None else chunk} (fresh subprocess)"
            )
            mem = measure_memory(sim_asn(workdir), chunk, trace=not args.no_tracemalloc)
            case.memory.append(mem)
            _progress(
                f"  peak {mem.peak_bytes / _MB:.0f} MB over a baseline of "
                f"{mem.baseline_bytes / _MB:.0f} MB ({mem.source}); inputs "
                f"{mem.input_bytes / _MB:.0f} MB"
            )
    return case


def sim_asn(workdir):
    """Path of the association JSON written by :func:`simulate` under ``workdir``."""
    return workdir / "data" / "asn.json"


def _runs(runs):
    return "best %.3f s of [%s]" % (min(runs), ", ".join(f"{t:.3f}" for t in runs))


# --------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------


def format_table(headers, rows, markdown=False):
    """Fixed-width (or Markdown) table of strings; numeric columns are right-aligned."""
    numeric = [
        all(r[i][:1].isdigit() or r[i] == "-" for r in rows) for i in range(len(headers))
    ]
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


def _s(value, digits=2, extrapolated=False):
    if value is None:
        return "-"
    text = f"{value:.{digits}f}" if value < 100 else f"{value:.0f}"
    return text + ("*" if extrapolated else "")


def _ratio(num, den, extrapolated=False):
    if num is None or den is None or den == 0:
        return "-"
    ratio = num / den
    text = f"{ratio:.0f}" if ratio >= 10 else f"{ratio:.2f}"
    return text + ("*" if extrapolated else "")


def timing_rows(cases):
    """Rows of the timing table."""
    rows = []
    for c in cases:
        strun_extra = None if c.strun_s is None else c.strun_s - c.step_files_s
        own = None
        if c.step_memory_s is not None and c.stpipe_floor_s is not None:
            own = c.step_memory_s - c.stpipe_floor_s
        rows.append(
            [
                f"{c.label} {c.n_members}",
                "x".join(str(v) for v in c.shape),
                _s(c.seed_s, 1, c.seed_extrapolated),
                _s(c.step_memory_s, 3),
                _ratio(c.seed_s, c.step_memory_s, c.seed_extrapolated),
                _s(c.stpipe_floor_s, 3),
                _ratio(c.seed_s, own, c.seed_extrapolated),
                _s(c.step_files_s, 3),
                _s(c.io_floor_s, 3),
                _ratio(c.step_files_s, c.io_floor_s),
                _s(c.strun_s, 2),
                _s(strun_extra, 2),
            ]
        )
    return rows


TIMING_HEADERS = [
    "case (N members)",
    "cube",
    "(a) seed s",
    "(b) step s",
    "(a)/(b)",
    "(b0) stpipe s",
    "(a)/(b-b0)",
    "(c) files s",
    "(d) I/O s",
    "(c)/(d)",
    "strun s",
    "strun-(c) s",
]

MEMORY_HEADERS = [
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


def memory_rows(cases):
    """Rows of the memory table."""
    rows = []
    for c in cases:
        for m in c.memory:
            rows.append(
                [
                    f"{c.label} {c.n_members}",
                    "default" if m.chunk_size is None else str(m.chunk_size),
                    f"{m.input_bytes / _MB:.0f}",
                    f"{m.output_bytes / _MB:.0f}",
                    f"{m.baseline_bytes / _MB:.0f}",
                    f"{m.peak_bytes / _MB:.0f}",
                    "-" if m.tracemalloc_bytes is None else f"{m.tracemalloc_bytes / _MB:.0f}",
                    f"{m.peak_bytes / (m.input_bytes + m.output_bytes):.2f}",
                    f"{m.peak_bytes / m.input_bytes:.2f}",
                    f"{m.seconds:.2f}",
                ]
            )
    return rows


def target_rows(cases):
    """Rows of the targets table: (target, case, value, met)."""
    rows = []

    def verdict(ok):
        return "met" if ok else "MISSED"

    for c in cases:
        if c.seed_s is not None and c.step_memory_s:
            ratio = c.seed_s / c.step_memory_s
            rows.append(
                [
                    f"(a)/(b) >= {TARGET_SPEEDUP:.0f}",
                    f"{c.label} {c.n_members}",
                    f"{ratio:.0f}" + (" (extrapolated)" if c.seed_extrapolated else ""),
                    verdict(ratio >= TARGET_SPEEDUP),
                ]
            )
    for c in cases:
        if c.instrument == "miri" and c.n_members == 4 and c.io_floor_s:
            ratio = c.step_files_s / c.io_floor_s
            rows.append(
                [
                    f"(c)/(d) <= {TARGET_IO_RATIO}",
                    f"{c.label} {c.n_members}",
                    f"{ratio:.2f}",
                    verdict(ratio <= TARGET_IO_RATIO),
                ]
            )
    for c in cases:
        for m in c.memory:
            if m.chunk_size is None:
                ratio = m.peak_bytes / (m.input_bytes + m.output_bytes)
                rows.append(
                    [
                        f"peak < {TARGET_PEAK_IN_OUT:g} x (inputs + output)",
                        f"{c.label} {c.n_members}",
                        f"{ratio:.2f} x",
                        verdict(ratio < TARGET_PEAK_IN_OUT),
                    ]
                )
            elif c.n_members >= 16:
                ratio = m.peak_bytes / m.input_bytes
                rows.append(
                    [
                        f"peak < {TARGET_PEAK_CHUNKED:g} x inputs (chunk_size={m.chunk_size})",
                        f"{c.label} {c.n_members}",
                        f"{ratio:.2f} x",
                        verdict(ratio < TARGET_PEAK_CHUNKED),
                    ]
                )
    return rows


TARGET_HEADERS = ["target", "case", "value", "verdict"]


def report(cases, startup_s, args, wall_s, load_before, load_after):
    """Print the tables (and their Markdown versions with ``--markdown``) and the profiles."""
    print()
    print(f"ifu_align speed benchmark ({'quick, ' if args.quick else ''}repeat={args.repeat})")
    print(
        f"python {platform.python_version()}, numpy {np.__version__}, "
        f"{os.cpu_count()} CPUs; before: {load_before}; after: {load_after}; "
        f"wall time {wall_s:.0f} s"
    )
    wcs = max((c.wcs_check_mas for c in cases if c.wcs_check_mas is not None), default=None)
    if wcs is not None:
        print(f"celestial astropy WCS of (a) vs meta.wcs: max difference {wcs:.2g} mas")
    if startup_s is not None:
        print(f"strun start-up (strun ifu_align --help): {startup_s:.2f} s")
    print()
    tables = [
        ("Timing (seconds; (b), (c), (d) best of %d; * = extrapolated)" % args.repeat,
         TIMING_HEADERS, timing_rows(cases)),
        ("Peak memory of the step (fresh subprocess; peak = high-water RSS - RSS after loading)",
         MEMORY_HEADERS, memory_rows(cases)),
        ("Targets", TARGET_HEADERS, target_rows(cases)),
    ]
    if args.nwave is not None:
        print(
            f"Cubes cut to {args.nwave} planes: fixed costs weigh more than at full size, so "
            "the targets are meant for full-size cubes.\n"
        )
    for title, headers, rows in tables:
        if rows:
            print(title)
            print(format_table(headers, rows))
            print()
    if any(c.seed_extrapolated for c in cases):
        print(
            f"* (a) extrapolated from {SEED_BASE_MEMBERS} members as t{SEED_BASE_MEMBERS} x "
            f"(N - 1) / {SEED_BASE_MEMBERS - 1}; use --full to measure it.\n"
        )
    for text in PROFILES:
        print(text)
        print()
    if args.markdown:
        print("Markdown\n")
        for title, headers, rows in tables:
            if rows:
                print(f"**{title}**\n")
                print(format_table(headers, rows, markdown=True))
                print()


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def parse_args(argv=None):
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--instruments", nargs="+", default=list(INSTRUMENTS), choices=list(INSTRUMENTS),
        help="instrument-like setups (default: all)",
    )
    parser.add_argument(
        "--members", default=None,
        help="comma-separated association sizes (default 4,16; 4 with --quick)",
    )
    parser.add_argument(
        "--skip-seed-16", dest="skip_seed_16", action="store_true", default=True,
        help="extrapolate (a) for more than 4 members from 4 members (default ON; see --full)",
    )
    parser.add_argument(
        "--full", action="store_true",
        help="measure (a) for every association size (16 members: many minutes)",
    )
    parser.add_argument(
        "--repeat", type=int, default=None,
        help="runs of (b), (c), (d), the best kept (default 3; 1 with --quick)",
    )
    parser.add_argument(
        "--quick", action="store_true",
        help=f"smoke run of about a minute: {QUICK_NWAVE} wavelength planes per cube, and unless "
        "given, --members 4 --repeat 1",
    )
    parser.add_argument(
        "--nwave", type=int, default=None, help="planes per cube (overrides --quick)"
    )
    parser.add_argument("--markdown", action="store_true", help="also print the tables as Markdown")
    parser.add_argument(
        "--profile", action="store_true",
        help="print a cProfile top-10 of (b) and a breakdown of (d) for the smallest association",
    )
    parser.add_argument("--memory-chunk", type=int, default=64,
                        help="chunk_size for the extra memory measurement of 16+ members")
    parser.add_argument("--no-seed", action="store_true", help="skip (a)")
    parser.add_argument("--no-strun", action="store_true", help="skip the strun subprocess")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory subprocesses")
    parser.add_argument("--no-tracemalloc", action="store_true",
                        help="skip the tracemalloc cross-check of the memory subprocesses")
    # Internal: the memory subprocess.
    parser.add_argument("--memory-worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--worker-chunk-size", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.members is None:
        args.members = "4" if args.quick else "4,16"
    if args.repeat is None:
        args.repeat = 1 if args.quick else 3
    args.members = sorted({int(v) for v in str(args.members).split(",") if v.strip()})
    if any(n < 2 for n in args.members):
        parser.error("--members: every association needs at least 2 members")
    if args.full:
        args.skip_seed_16 = False
    if args.nwave is None and args.quick:
        args.nwave = QUICK_NWAVE
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


def main(argv=None):
    """Run the benchmark (or, with the internal ``--memory-worker``, one memory measurement)."""
    args = parse_args(argv)
    _quiet_logging()
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    if args.memory_worker:
        result = memory_worker(args.memory_worker, args.worker_chunk_size, not args.no_tracemalloc)
        print(json.dumps(result))
        return 0

    load_before = _loadavg()
    start = time.perf_counter()
    startup_s = None if args.no_strun else time_strun_startup()
    cases, seed_cache = [], {}
    with tempfile.TemporaryDirectory(prefix="ifualign_speed_") as tmp:
        for instrument in args.instruments:
            for n_members in args.members:
                workdir = Path(tmp) / f"{instrument}_{n_members}"
                try:
                    cases.append(run_case(instrument, n_members, args, workdir, seed_cache))
                finally:
                    shutil.rmtree(workdir, ignore_errors=True)
                    gc.collect()
    report(cases, startup_s, args, time.perf_counter() - start, load_before, _loadavg())
    return 0


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
