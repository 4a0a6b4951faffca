"""Fuzz the step with corrupted members, associations and parameters.

Every case starts from one tiny, valid 3-member association (built once per session), copies it
to a private folder, applies one corruption drawn with a fixed seed (``numpy.random.Generator``),
and runs ``IFUAlignStep.call(asn, save_results=True, output_dir=...)`` in-process. A case
passes when either

* the step succeeds with a correct result: the offsets of the members that were not corrupted
  are within ``TOLERANCE`` px of the simulator's truth, the combined cube is finite wherever a
  member covers it, and exactly the three output files are in ``output_dir``; or
* the step fails with the project's own error (:class:`jwst_ifualign.IFUAlignError`, i.e.
  ``InputError`` or ``ParameterError``, or stpipe's check of a parameter against the step's spec,
  which names the parameter) and ``output_dir`` is empty;

and, in both cases, the input files are byte-identical afterwards and nothing is written
outside ``output_dir``. Any other exception (a library's ``ValueError``, ``KeyError``,
``IndexError``, ``OSError``...) is "unrelated". Outcomes are recorded per case; one assertion at
the end lists every failing case (seed, corruption) with the exception type, message and where it
was raised, so that the package can be fixed.

The cases run in two worker processes (``FUZZ_WORKERS``, default 2; 1 runs them in this
process). By default only the first ``FAST_CASES`` seeds run (every corruption kind twice, about
a fifth of the time); the other 161 of the 207 are marked ``slow``, which the default
``-m "not slow"`` of the test configuration deselects: ``python -m pytest -m slow`` runs them
(CI does, after the default run).
"""

from __future__ import annotations

import concurrent.futures
import gc
import hashlib
import json
import multiprocessing
import os
import shutil
import tempfile
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

#: Number of corrupted cases (cycled over the 23 corruption kinds: each runs 9 times).
N_CASES = 207
#: Cases of the default run: seeds 0 to FAST_CASES - 1, every corruption kind twice.
FAST_CASES = 46
#: Cube shape (nwave, ny, nx): tiny, so one case takes a fraction of a second.
SHAPE = (8, 15, 17)
#: True pointing errors (arcsec) and commanded dithers (arcsec) of the three members.
ERRORS = ((0.0, 0.0), (0.04, -0.03), (-0.05, 0.02))
DITHERS = ((0.0, 0.0), (0.2, -0.15), (-0.18, 0.12))
#: S/N of the brightest spaxel: high enough that even a one-plane measurement is good to 0.04 px.
SNR = 100.0
#: Largest accepted |measured - truth| (px) for members that were not corrupted.
TOLERANCE = 0.1
WORKERS = int(os.environ.get("FUZZ_WORKERS", "2"))

OUTPUT_SUFFIXES = ("_ifualign.fits", "_ifualign_offsets.ecsv", "_ifualign_offsets.asdf")

# Damage levels of a corrupted member, deciding what is checked when it is the reference:
PARTIAL = "partial"  # still measurable (some planes/voxels lost): others must be exact
DESTROYED = "destroyed"  # nothing measurable: others may be flagged instead of measured
VOID = "void"  # its WCS or bytes changed arbitrarily: the truth no longer applies


# --------------------------------------------------------------------------------------------
# The valid association every case starts from


@dataclass(frozen=True)
class Base:
    """A written, valid association (picklable, for the worker processes)."""

    label: str
    folder: str
    asn_name: str
    names: tuple
    truth: dict  # member file name -> (dx, dy) against member 0, reference pixels
    wavelengths: tuple
    tabular: bool


def build_base(folder, *, tabular):
    from jwst_ifualign.adapter.inputs import plane_wavelengths
    from jwst_ifualign.testing.simulate import simulate_association, write_association

    sim = simulate_association(
        shape=SHAPE,
        n_members=3,
        errors_arcsec=ERRORS,
        dithers_arcsec=DITHERS,
        snr=SNR,
        seed=3,
        tabular=tabular,
        product_name="fuzz",
    )
    asn = write_association(sim, folder)
    names = tuple(m.model.meta.filename for m in sim.members)
    return Base(
        label="wavetab" if tabular else "linear",
        folder=str(folder),
        asn_name=asn.name,
        names=names,
        truth={n: (m.truth_dx, m.truth_dy) for n, m in zip(names, sim.members, strict=True)},
        wavelengths=tuple(float(w) for w in plane_wavelengths(sim.members[0].model)),
        tabular=tabular,
    )


# --------------------------------------------------------------------------------------------
# Corruptions. Each takes a Context and records what it did.


@dataclass
class Context:
    rng: np.random.Generator
    base: Base
    data: Path  # the case's copy of the association folder
    asn: Path
    detail: list = field(default_factory=list)
    damage: dict = field(default_factory=dict)  # member file name -> PARTIAL/DESTROYED/VOID
    params: dict = field(default_factory=dict)

    def pick_member(self):
        i = int(self.rng.integers(len(self.base.names)))
        return i, self.base.names[i], self.data / self.base.names[i]

    def note(self, text):
        self.detail.append(text)


def _fits_update(path, edit):
    from astropy.io import fits

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with fits.open(path, mode="update", memmap=False) as hdul:
            edit(hdul)


def _edit_model(path, edit):
    """Open a member with stdatamodels, edit it, and save it again under its own name."""
    from stdatamodels.jwst import datamodels

    path = Path(path)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with datamodels.open(path) as model:
                model = edit(model) or model
                model.save(Path(tmp) / path.name)
        os.replace(Path(tmp) / path.name, path)


def _random_planes(rng, nwave, *, allow_all=False):
    k = int(rng.integers(1, nwave + 1 if allow_all else nwave))
    return np.sort(rng.choice(nwave, size=k, replace=False))


def c_truncate(ctx):
    i, name, path = ctx.pick_member()
    raw = path.read_bytes()
    cut = int(ctx.rng.integers(0, len(raw)))
    path.write_bytes(raw[:cut])
    ctx.note(f"member {i} truncated at byte {cut}/{len(raw)}")
    ctx.damage[name] = VOID


def c_overwrite_bytes(ctx):
    i, name, path = ctx.pick_member()
    raw = bytearray(path.read_bytes())
    n = int(ctx.rng.integers(1, 65))
    pos = ctx.rng.choice(len(raw), size=n, replace=False)
    raw_vals = ctx.rng.integers(0, 256, size=n, dtype=np.uint8)
    for p, v in zip(pos, raw_vals, strict=True):
        raw[int(p)] = int(v)
    path.write_bytes(bytes(raw))
    ctx.note(f"member {i}: {n} random bytes overwritten (first at {int(pos.min())})")
    ctx.damage[name] = VOID


def c_sci_all_nan(ctx):
    i, name, path = ctx.pick_member()

    def edit(hdul):
        hdul["SCI"].data[...] = np.nan

    _fits_update(path, edit)
    ctx.note(f"member {i}: SCI all NaN")
    ctx.damage[name] = DESTROYED


def c_sci_nan_planes(ctx):
    i, name, path = ctx.pick_member()
    planes = _random_planes(ctx.rng, len(ctx.base.wavelengths))

    def edit(hdul):
        hdul["SCI"].data[planes] = np.nan

    _fits_update(path, edit)
    ctx.note(f"member {i}: SCI planes {planes.tolist()} NaN")
    ctx.damage[name] = PARTIAL


def c_sci_nonfinite_voxels(ctx):
    i, name, path = ctx.pick_member()
    frac = float(ctx.rng.uniform(0.01, 0.3))
    value = [np.inf, -np.inf, np.nan][int(ctx.rng.integers(3))]

    def edit(hdul):
        sci = hdul["SCI"].data
        mask = ctx.rng.random(sci.shape) < frac
        sci[mask] = value

    _fits_update(path, edit)
    ctx.note(f"member {i}: {frac:.0%} of SCI voxels set to {value}")
    ctx.damage[name] = PARTIAL


def c_sci_constant(ctx):
    i, name, path = ctx.pick_member()
    value = [0.0, 1.0, -5.0][int(ctx.rng.integers(3))]

    def edit(hdul):
        sci = hdul["SCI"].data
        sci[np.isfinite(sci)] = value

    _fits_update(path, edit)
    ctx.note(f"member {i}: SCI constant {value} (no signal)")
    ctx.damage[name] = DESTROYED


def c_dq_dnu_all(ctx):
    i, name, path = ctx.pick_member()

    def edit(hdul):
        hdul["DQ"].data[...] = hdul["DQ"].data | 1

    _fits_update(path, edit)
    ctx.note(f"member {i}: DQ DO_NOT_USE everywhere")
    ctx.damage[name] = DESTROYED


def c_dq_dnu_planes(ctx):
    i, name, path = ctx.pick_member()
    planes = _random_planes(ctx.rng, len(ctx.base.wavelengths))

    def edit(hdul):
        hdul["DQ"].data[planes] = hdul["DQ"].data[planes] | 1

    _fits_update(path, edit)
    ctx.note(f"member {i}: DQ DO_NOT_USE on planes {planes.tolist()}")
    ctx.damage[name] = PARTIAL


def c_dq_other_bits(ctx):
    i, name, path = ctx.pick_member()
    bits = int(ctx.rng.choice([2, 4, 16, 512, 2**30, 2**31, 0xFFFFFFFE]))

    def edit(hdul):
        dq = hdul["DQ"].data
        mask = ctx.rng.random(dq.shape) < 0.5
        dq[mask] = dq[mask] | np.uint32(bits)

    _fits_update(path, edit)
    ctx.note(f"member {i}: DQ bits {bits:#x} (not DO_NOT_USE) on half the voxels")
    ctx.damage[name] = PARTIAL


def c_err_bad(ctx):
    i, name, path = ctx.pick_member()
    kind = ["zero", "negative", "nan", "inf"][int(ctx.rng.integers(4))]
    extent = ["all", "planes", "voxels"][int(ctx.rng.integers(3))]
    planes = _random_planes(ctx.rng, len(ctx.base.wavelengths))
    frac = float(ctx.rng.uniform(0.05, 0.5))

    def edit(hdul):
        err = hdul["ERR"].data
        if extent == "all":
            mask = np.ones(err.shape, bool)
        elif extent == "planes":
            mask = np.zeros(err.shape, bool)
            mask[planes] = True
        else:
            mask = ctx.rng.random(err.shape) < frac
        new = {"zero": 0.0, "negative": -np.abs(err), "nan": np.nan, "inf": np.inf}[kind]
        err[mask] = new[mask] if isinstance(new, np.ndarray) else new

    _fits_update(path, edit)
    where = {
        "all": "everywhere", "planes": f"on planes {planes.tolist()}", "voxels": f"on {frac:.0%}"
    }
    ctx.note(f"member {i}: ERR {kind} {where[extent]}")
    ctx.damage[name] = DESTROYED if extent == "all" else PARTIAL


def c_wmap_bad(ctx):
    i, name, path = ctx.pick_member()
    value = [np.nan, 0.0, -1.0][int(ctx.rng.integers(3))]

    def edit(hdul):
        hdul["WMAP"].data[...] = value

    _fits_update(path, edit)
    ctx.note(f"member {i}: WMAP all {value}")
    ctx.damage[name] = PARTIAL


_WCS_KEYS = ("crval1", "crval2", "crpix1", "crpix2", "cdelt1", "cdelt2", "pc1_1", "pc1_2",
             "pc2_1", "pc2_2", "crval3", "cdelt3")
_ODD_VALUES = (np.nan, np.inf, 0.0, 1e30, -1e30, 1e6, -1.0)


def c_wcsinfo_rebuilt(ctx):
    """Odd wcsinfo value, meta.wcs rebuilt from it (as cube_build would), saved."""
    from jwst.assign_wcs.pointing import create_fitswcs

    i, name, path = ctx.pick_member()
    key = _WCS_KEYS[int(ctx.rng.integers(len(_WCS_KEYS)))]
    if ctx.base.tabular and key in ("crval3", "cdelt3"):
        key = "cdelt1"
    value = float(_ODD_VALUES[int(ctx.rng.integers(len(_ODD_VALUES)))])
    outcome = []

    def edit(model):
        old = getattr(model.meta.wcsinfo, key)
        setattr(model.meta.wcsinfo, key, value)
        try:
            with np.errstate(all="ignore"):
                wcs = create_fitswcs(model)
                nwave, ny, nx = model.data.shape
                wcs.bounding_box = ((0, nx - 1), (0, ny - 1), (0, nwave - 1))
            model.meta.wcs = wcs
            outcome.append("meta.wcs rebuilt")
        except Exception as exc:  # noqa: BLE001 - then only the header changes
            outcome.append(f"meta.wcs not rebuilt ({type(exc).__name__})")
        if not np.isfinite(value):
            setattr(model.meta.wcsinfo, key, old)  # FITS headers cannot hold NaN/inf
            outcome.append("header keeps the old value")

    _edit_model(path, edit)
    ctx.note(f"member {i}: wcsinfo.{key} = {value} ({', '.join(outcome)})")
    ctx.damage[name] = VOID


def c_wcsinfo_header_only(ctx):
    """Odd WCS keyword in the SCI header only; meta.wcs (the ASDF gwcs) unchanged."""
    i, name, path = ctx.pick_member()
    key = _WCS_KEYS[int(ctx.rng.integers(len(_WCS_KEYS)))].upper()
    value = [0.0, 1e30, -1e30, "NaN", "garbage"][int(ctx.rng.integers(5))]

    def edit(hdul):
        hdul["SCI"].header[key] = value

    _fits_update(path, edit)
    ctx.note(f"member {i}: SCI header {key} = {value!r} (gwcs untouched)")
    ctx.damage[name] = PARTIAL


def c_drop_wcs(ctx):
    i, name, path = ctx.pick_member()

    def edit(model):
        model.meta.wcs = None

    _edit_model(path, edit)
    ctx.note(f"member {i}: meta.wcs removed")
    ctx.damage[name] = DESTROYED


def c_instrument(ctx):
    i, name, path = ctx.pick_member()
    value = ["NIRSPEC", "NIRCAM", "FOO", "", None][int(ctx.rng.integers(5))]

    def edit(hdul):
        if value is None:
            del hdul[0].header["INSTRUME"]
        else:
            hdul[0].header["INSTRUME"] = value

    _fits_update(path, edit)
    ctx.note(f"member {i}: " + (f"INSTRUME = {value!r}" if value is not None else "no INSTRUME"))
    ctx.damage[name] = VOID


def c_drop_wavetable(ctx):
    i, name, path = ctx.pick_member()

    def edit(hdul):
        del hdul["WCS-TABLE"]

    _fits_update(path, edit)
    ctx.note(f"member {i}: WCS-TABLE extension removed")
    ctx.damage[name] = PARTIAL


def c_naxis3(ctx):
    i, name, path = ctx.pick_member()
    nwave = len(ctx.base.wavelengths)
    new = int(ctx.rng.choice([k for k in range(1, nwave + 4) if k != nwave]))

    def edit(model):
        for attr in ("data", "err", "dq", "weightmap"):
            arr = getattr(model, attr)
            if new < nwave:
                arr = arr[:new]
            else:
                pad = np.repeat(arr[-1:], new - nwave, axis=0)
                arr = np.concatenate([arr, pad])
            setattr(model, attr, np.ascontiguousarray(arr))

    _edit_model(path, edit)
    ctx.note(f"member {i}: {new} planes instead of {nwave} (NAXIS3)")
    ctx.damage[name] = VOID


def c_crop_spatial(ctx):
    """A valid member of another spatial size: cropped, crpix and meta.wcs updated (legal)."""
    from jwst.assign_wcs.pointing import create_fitswcs

    i, name, path = ctx.pick_member()
    x0, y0 = (int(v) for v in ctx.rng.integers(0, 4, size=2))
    x1, y1 = SHAPE[2] - int(ctx.rng.integers(0, 4)), SHAPE[1] - int(ctx.rng.integers(0, 4))

    def edit(model):
        for attr in ("data", "err", "dq", "weightmap"):
            setattr(model, attr, np.ascontiguousarray(getattr(model, attr)[:, y0:y1, x0:x1]))
        model.meta.wcsinfo.crpix1 -= x0
        model.meta.wcsinfo.crpix2 -= y0
        wcs = create_fitswcs(model)
        nwave, ny, nx = model.data.shape
        wcs.bounding_box = ((0, nx - 1), (0, ny - 1), (0, nwave - 1))
        model.meta.wcs = wcs

    _edit_model(path, edit)
    ctx.note(f"member {i}: cropped to [:, {y0}:{y1}, {x0}:{x1}] with its WCS (a legal cube)")
    ctx.damage[name] = PARTIAL


def c_replace_model(ctx):
    from stdatamodels.jwst import datamodels

    i, name, path = ctx.pick_member()
    kind = ["ImageModel", "MultiSlitModel", "CubeModel", "empty", "text", "plain_fits", "asdf"][
        int(ctx.rng.integers(7))
    ]
    if kind == "ImageModel":
        model = datamodels.ImageModel(np.ones(SHAPE[1:], np.float32))
    elif kind == "MultiSlitModel":
        model = datamodels.MultiSlitModel()
        model.slits.append(datamodels.SlitModel(np.ones((5, 20), np.float32)))
    elif kind == "CubeModel":
        model = datamodels.CubeModel(np.ones(SHAPE, np.float32))
    else:
        model = None
    if model is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.save(path)
        model.close()
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("this is not a FITS file\n")
    elif kind == "plain_fits":
        from astropy.io import fits

        fits.PrimaryHDU(np.ones(SHAPE, np.float32)).writeto(path, overwrite=True)
    else:
        import asdf

        asdf.AsdfFile({"data": np.ones(SHAPE, np.float32)}).write_to(path)
    ctx.note(f"member {i} replaced by a {kind}")
    ctx.damage[name] = VOID


def _asn_tree(ctx):
    return json.loads(ctx.asn.read_text())


def _asn_write(ctx, tree):
    ctx.asn.write_text(json.dumps(tree))


def c_asn_invalid(ctx):
    text = ctx.asn.read_text()
    variants = [
        "truncated", "garbage_char", "empty", "null", "list", "number", "string", "binary",
        "no_products", "products_dict", "no_members", "members_string", "members_ints",
        "expname_int", "expname_null", "expname_list", "member_no_expname", "exptype_null",
        "expname_empty", "expname_dir",
    ]
    v = variants[int(ctx.rng.integers(len(variants)))]
    tree = json.loads(text)
    members = tree["products"][0]["members"]
    k = int(ctx.rng.integers(len(members)))
    if v == "truncated":
        cut = int(ctx.rng.integers(0, len(text)))
        ctx.asn.write_text(text[:cut])
        v += f" at {cut}/{len(text)}"
    elif v == "garbage_char":
        pos = int(ctx.rng.integers(0, len(text)))
        ctx.asn.write_text(text[:pos] + "\x00}{" + text[pos + 1 :])
        v += f" at {pos}"
    elif v == "binary":
        ctx.asn.write_bytes(bytes(ctx.rng.integers(0, 256, 300, dtype=np.uint8)))
    elif v in ("empty", "null", "list", "number", "string"):
        ctx.asn.write_text({"empty": "", "null": "null", "list": "[]", "number": "42",
                            "string": '"asn"'}[v])
    else:
        if v == "no_products":
            tree["products"] = []
        elif v == "products_dict":
            tree["products"] = {"name": "x"}
        elif v == "no_members":
            del tree["products"][0]["members"]
        elif v == "members_string":
            tree["products"][0]["members"] = "abc"
        elif v == "members_ints":
            tree["products"][0]["members"] = [1, 2, 3]
        elif v == "expname_int":
            members[k]["expname"] = 5
        elif v == "expname_null":
            members[k]["expname"] = None
        elif v == "expname_list":
            members[k]["expname"] = [members[k]["expname"]]
        elif v == "member_no_expname":
            del members[k]["expname"]
        elif v == "exptype_null":
            members[k]["exptype"] = None
        elif v == "expname_empty":
            members[k]["expname"] = ""
        elif v == "expname_dir":
            members[k]["expname"] = "."
        _asn_write(ctx, tree)
        if v.startswith(("expname", "member_", "exptype")):
            v += f" (member {k})"
    ctx.note(f"association: {v}")


def c_asn_members(ctx):
    tree = _asn_tree(ctx)
    members = tree["products"][0]["members"]
    v = ["remove", "background", "duplicate", "missing_file", "reorder"][int(ctx.rng.integers(5))]
    if v == "remove":
        k = int(ctx.rng.integers(1, len(members) + 1))
        drop = sorted(ctx.rng.choice(len(members), size=k, replace=False).tolist())
        tree["products"][0]["members"] = [m for j, m in enumerate(members) if j not in drop]
        v += f" members {drop}"
    elif v == "background":
        k = int(ctx.rng.integers(len(members)))
        members[k]["exptype"] = "background"
        v += f" (member {k} marked background)"
    elif v == "duplicate":
        k = int(ctx.rng.integers(len(members)))
        members.append(dict(members[k]))
        v += f" (member {k} listed twice)"
    elif v == "missing_file":
        k = int(ctx.rng.integers(len(members)))
        (ctx.data / members[k]["expname"]).unlink()
        v += f" (file of member {k} deleted)"
    else:
        order = ctx.rng.permutation(len(members)).tolist()
        tree["products"][0]["members"] = [members[j] for j in order]
        v += f" {order}"
    _asn_write(ctx, tree)
    ctx.note(f"association members: {v}")


def c_product_name(ctx):
    tree = _asn_tree(ctx)
    value = ["../escape", "sub/dir/prod", "", "   ", "name with spaces", "ünïcødé", "x" * 300,
             None, 12345][int(ctx.rng.integers(9))]
    tree["products"][0]["name"] = value
    _asn_write(ctx, tree)
    ctx.note(f"association product name {value!r:.40}")


def c_parameters(ctx):
    waves = np.asarray(ctx.base.wavelengths)
    nwave = waves.size
    lo, hi = float(waves.min()), float(waves.max())
    rng = ctx.rng
    choices = {
        "wavelength_range": lambda: [
            [float(waves[5]), float(waves[1])],  # reversed
            [20.0, 21.0],  # outside
            [0.1, 0.2],
            [hi - 1e-4, 99.0],  # straddles the end
            [lo, lo],  # exactly one plane
            [float(waves[2]) + 1e-4, float(waves[3]) - 1e-4],  # between two planes
            [-1e30, 1e30],
        ][int(rng.integers(7))],
        "slice": lambda: int(rng.choice([0, nwave - 1, nwave, nwave + 10, 10**6, -1])),
        "reference": lambda: int(rng.choice([1, 2, -1, -3, 3, -4, 99])),
        "error_chunks": lambda: int(rng.choice([1, 2, nwave, nwave + 1, 100])),
        "upsample_factor": lambda: int(rng.choice([1, 3, 1000])),
        "max_shift": lambda: float(rng.choice([0.0, 0.05, 1e9])),
        "chunk_size": lambda: int(rng.choice([1, 3, 10**6])),
        "combine": lambda: str(rng.choice(["mean", "median", "weighted_mean"])),
        "kernel": lambda: str(rng.choice(["bilinear", "bicubic"])),
        "method": lambda: str(rng.choice(["chi2", "cross_correlation", "centroid", "dft"])),
    }
    keys = list(choices)
    picked = rng.choice(len(keys), size=int(rng.integers(1, 4)), replace=False)
    for j in sorted(picked):
        ctx.params[keys[j]] = choices[keys[j]]()
    ctx.note(f"parameters {ctx.params}")


CORRUPTIONS = {
    "truncate": c_truncate,
    "overwrite_bytes": c_overwrite_bytes,
    "sci_all_nan": c_sci_all_nan,
    "sci_nan_planes": c_sci_nan_planes,
    "sci_nonfinite_voxels": c_sci_nonfinite_voxels,
    "sci_constant": c_sci_constant,
    "dq_dnu_all": c_dq_dnu_all,
    "dq_dnu_planes": c_dq_dnu_planes,
    "dq_other_bits": c_dq_other_bits,
    "err_bad": c_err_bad,
    "wmap_bad": c_wmap_bad,
    "wcsinfo_rebuilt": c_wcsinfo_rebuilt,
    "wcsinfo_header_only": c_wcsinfo_header_only,
    "drop_wcs": c_drop_wcs,
    "instrument": c_instrument,
    "drop_wavetable": c_drop_wavetable,
    "naxis3": c_naxis3,
    "crop_spatial": c_crop_spatial,
    "replace_model": c_replace_model,
    "asn_invalid": c_asn_invalid,
    "asn_members": c_asn_members,
    "product_name": c_product_name,
    "parameters": c_parameters,
}


# --------------------------------------------------------------------------------------------
# Running and checking one case


def _digests(folder):
    out = {}
    for p in sorted(Path(folder).rglob("*")):
        if p.is_file():
            out[str(p.relative_to(folder))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _where(exc):
    """'raised at file:line (package frame file:line)' from an exception's traceback."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "no traceback"

    def short(f):
        parts = Path(f.filename).parts
        for anchor in ("jwst_ifualign", "site-packages"):
            if anchor in parts:
                k = parts.index(anchor)
                return "/".join(parts[k + (anchor == "site-packages") :]) + f":{f.lineno}"
        return f"{Path(f.filename).name}:{f.lineno}"

    last = frames[-1]
    pkg = [f for f in frames if "jwst_ifualign" in Path(f.filename).parts]
    text = f"raised at {short(last)}"
    if pkg and pkg[-1] is not last:
        text += f", via {short(pkg[-1])}"
    return text


def _reference_name(names, params):
    ref = params.get("reference", 0)
    if not names or not -len(names) <= ref < len(names):
        return None
    return names[ref % len(names)]


def _check_success(result, ctx, names, out):
    """Problems with a successful run's result (empty list when correct)."""
    problems = []
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    cubes = [f for f in files if f.endswith(OUTPUT_SUFFIXES[0]) and "/" not in f]
    stems = {f[: -len(OUTPUT_SUFFIXES[0])] for f in cubes}
    partial = [f for f in files if Path(f).name.startswith(".") or ".partial" in f]
    wanted = {s + x for s in stems for x in OUTPUT_SUFFIXES}
    if len(cubes) != 1 or partial or not wanted <= set(files):
        problems.append(f"success but output_dir holds {files} (want the 3 outputs)")
    try:
        covered = np.asarray(result.weightmap) > 0
        for attr in ("data", "err"):
            bad = int((~np.isfinite(getattr(result, attr)[covered])).sum())
            if bad:
                problems.append(f"success but {bad} covered {attr.upper()} voxels are not finite")
        records = (result.meta.ifu_align.instance or {}).get("members", [])
    except Exception as exc:  # noqa: BLE001 - a malformed result is a finding, not a crash
        problems.append(f"success but the result cannot be checked ({type(exc).__name__}: {exc})")
        return problems
    if len(records) != len(names):
        problems.append(f"success with {len(records)} member records for {len(names)} members")
        return problems
    ref_name = _reference_name(names, ctx.params)
    if ref_name is None or len(names) < 2:
        return problems
    mode = {None: PARTIAL, PARTIAL: PARTIAL, DESTROYED: DESTROYED, VOID: VOID}[
        ctx.damage.get(ref_name)
    ]
    if mode == VOID:
        return problems
    max_shift = float(ctx.params.get("max_shift", 3.0))
    rtx, rty = ctx.base.truth[ref_name]
    for name, rec in zip(names, records, strict=True):
        if name == ref_name or name in ctx.damage:
            continue
        tx, ty = ctx.base.truth[name]
        tx, ty = tx - rtx, ty - rty
        dx, dy, flag = rec["dx"], rec["dy"], rec["flag"]
        close = bool(abs(dx - tx) <= TOLERANCE and abs(dy - ty) <= TOLERANCE)
        if flag == "rejected_max_shift" and close and np.hypot(dx, dy) > max_shift:
            continue
        if flag == "ok" and close:
            continue
        if mode == DESTROYED and (flag == "not_measured" or flag.startswith("rejected")):
            continue  # nothing to measure against: flagged and combined with its WCS alone
        problems.append(
            f"success but uncorrupted member {name} has dx, dy = ({dx:+.3f}, {dy:+.3f}) "
            f"flag {flag!r}; truth ({tx:+.3f}, {ty:+.3f})"
        )
    return problems


@dataclass
class Outcome:
    seed: int
    kind: str
    detail: str
    status: str  # "ok", "error" (IFUAlignError) or "unrelated"
    error: str = ""
    problems: list = field(default_factory=list)

    def label(self):
        return f"seed={self.seed} {self.kind} [{self.detail}]"


def run_case(seed, bases, workdir):
    """Corrupt a copy of a base association with ``seed``, run the step, check the outcome."""
    from stpipe.exceptions import ValidationError as StpipeValidationError

    from jwst_ifualign import IFUAlignError, IFUAlignStep

    kinds = list(CORRUPTIONS)
    kind = kinds[seed % len(kinds)]
    rng = np.random.default_rng(seed)
    base = bases[int(rng.integers(len(bases)))]
    case = Path(workdir) / f"case{seed:04d}"
    data, out = case / "data", case / "out"
    shutil.copytree(base.folder, data)
    out.mkdir()
    ctx = Context(rng=rng, base=base, data=data, asn=data / base.asn_name)
    CORRUPTIONS[kind](ctx)
    detail = f"{base.label}: " + "; ".join(ctx.detail)
    try:
        names = [m["expname"] for m in json.loads(ctx.asn.read_text())["products"][0]["members"]
                 if m.get("exptype", "science") == "science"]
    except Exception:  # noqa: BLE001 - the association itself is the corruption
        names = []
    before = _digests(data)
    outcome = Outcome(seed, kind, detail, "ok")
    result = None
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            result = IFUAlignStep.call(
                str(ctx.asn), save_results=True, output_dir=str(out), **ctx.params
            )
        except IFUAlignError as exc:
            outcome.status = "error"
            outcome.error = f"{type(exc).__name__}: {exc}"
        except StpipeValidationError as exc:
            # A value outside the spec's bounds: stpipe's own check, which names the parameter.
            if "Config parameter" in str(exc):
                outcome.status = "error"
                outcome.error = f"{type(exc).__name__}: {exc}"
            else:
                outcome.status = "unrelated"
                outcome.error = f"{type(exc).__name__}: {str(exc)[:300]} ({_where(exc)})"
        except Exception as exc:  # noqa: BLE001 - anything else is what this test hunts
            outcome.status = "unrelated"
            outcome.error = (
                f"{type(exc).__module__}.{type(exc).__name__}: {str(exc)[:300]} ({_where(exc)})"
            )
    try:
        if result is not None:
            outcome.problems += _check_success(result, ctx, names, out)
        elif any(out.iterdir()):
            outcome.problems.append(
                f"failed but left output: {sorted(p.name for p in out.iterdir())}"
            )
    finally:
        if result is not None:
            result.close()
    if _digests(data) != before:
        outcome.problems.append("input files changed")
    stray = [
        str(p.relative_to(case))
        for p in case.rglob("*")
        if p.is_file() and data not in p.parents and out not in p.parents
    ]
    if stray:
        outcome.problems.append(f"files written outside output_dir: {sorted(stray)}")
    shutil.rmtree(case, ignore_errors=True)
    return outcome


def _init_worker():
    """Quiet logs, import everything once, and freeze the objects alive so far.

    stpipe's ``Step.run`` calls ``gc.collect()`` on every call, which walks every object of the
    process (0.2 s a case once jwst, asdf's schemas and astropy are loaded); frozen objects are
    skipped, which nearly halves the time of a case without changing what the step does.
    """
    import logging

    import jwst_ifualign.step  # noqa: F401

    for name in ("stpipe", "jwst", "jwst_ifualign"):
        logging.getLogger(name).setLevel(logging.ERROR)
    gc.collect()
    gc.freeze()


def _run_all(seeds, bases, workdir):
    if WORKERS <= 1:
        gc.collect()
        gc.freeze()
        try:
            return [run_case(seed, bases, workdir) for seed in seeds]
        finally:
            gc.unfreeze()
    # One BLAS thread per worker process: the workers already use every core.
    saved = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    os.environ.update({k: "1" for k in saved})
    try:
        mp = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(
            WORKERS, mp_context=mp, initializer=_init_worker
        ) as pool:
            futures = [pool.submit(run_case, seed, bases, workdir) for seed in seeds]
            return [f.result() for f in futures]
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# --------------------------------------------------------------------------------------------
# The test


@pytest.fixture(scope="session")
def fuzz_bases(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz_base")
    return [build_base(root / "linear", tabular=False), build_base(root / "wavetab", tabular=True)]


def _run_and_check(seeds, bases, workdir):
    """Run the cases of ``seeds``; one assertion listing every case that went wrong."""
    outcomes = _run_all(seeds, bases, workdir)
    assert [o.seed for o in outcomes] == seeds
    assert {o.kind for o in outcomes} == set(CORRUPTIONS)

    unrelated = [o for o in outcomes if o.status == "unrelated"]
    wrong = [o for o in outcomes if o.problems]
    lines = []
    if unrelated:
        lines.append(f"{len(unrelated)} of {len(outcomes)} cases raised an unrelated exception:")
        lines += [f"  {o.label()}: {o.error}" for o in unrelated]
    if wrong:
        lines.append(f"{len(wrong)} of {len(outcomes)} cases broke a guarantee:")
        lines += [
            f"  {o.label()} ({o.status}{': ' + o.error[:200] if o.error else ''}): "
            + "; ".join(o.problems)
            for o in wrong
        ]
    assert not lines, "\n".join(lines)


def test_corrupted_inputs_fail_cleanly_or_succeed_correctly(fuzz_bases, tmp_path):
    """Every corruption kind twice (seeds 0 to FAST_CASES - 1)."""
    _run_and_check(list(range(FAST_CASES)), fuzz_bases, tmp_path)


@pytest.mark.slow
def test_corrupted_inputs_all_seeds(fuzz_bases, tmp_path):
    """The other seeds up to N_CASES: every corruption kind seven more times."""
    _run_and_check(list(range(FAST_CASES, N_CASES)), fuzz_bases, tmp_path)
