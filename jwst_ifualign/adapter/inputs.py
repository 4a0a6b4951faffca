"""Read and check the step's input: an association JSON, a list of files or models, a container.

Every check happens here, before any computation, and every failure raises
:class:`~jwst_ifualign.exceptions.InputError` with a message naming the file and what to do.
"""

from __future__ import annotations

import json
import logging
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import asdf
import numpy as np
from jwst.datamodels import ModelContainer
from jwst.lib.suffix import remove_suffix
from stdatamodels.jwst import datamodels
from stdatamodels.validate import ValidationWarning

from ..exceptions import InputError

__all__ = [
    "Members",
    "load_members",
    "calibrated_name",
    "check_names",
    "check_compatible",
    "setting_name",
    "exposure_id",
]

log = logging.getLogger(__name__)

# Relative tolerance on wavelengths (fraction of the median plane spacing) and on pixel scales.
_WAVE_TOLERANCE = 0.01
_SCALE_RTOL = 1e-4


@dataclass
class Members:
    """The members to align, in association order.

    Attributes
    ----------
    models : list of IFUCubeModel
        Open models; the caller's models are used as they are and never modified.
    names : list of str
        File name of each member (``meta.filename``, or the path given).
    product_name : str
        ``products[0].name`` of the association, or a name derived from the first member.
    opened_here : list of bool
        Which models this module opened (and so may close).
    """

    models: list
    names: list
    product_name: str
    opened_here: list

    def close(self):
        """Close the models this module opened."""
        for model, mine in zip(self.models, self.opened_here, strict=True):
            if mine:
                model.close()


def _read_association(path):
    path = Path(path)
    if not path.is_file():
        raise InputError(f"Association file {path} does not exist; check the path.")
    try:
        asn = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(
            f"Association file {path} is not valid JSON ({exc}); regenerate it, e.g. with "
            "asn_from_list."
        ) from None
    try:
        product = asn["products"][0]
        members = [m["expname"] for m in product["members"]]
        if not all(isinstance(m, str) and m.strip() for m in members):
            raise TypeError
    except (KeyError, IndexError, TypeError):
        raise InputError(
            f"Association file {path} has no products[0].members[].expname entries; it must be "
            "a spec3-style association of s3d cubes."
        ) from None
    members_sci = [
        m["expname"] for m in product["members"] if m.get("exptype", "science") == "science"
    ]
    if not members_sci:
        raise InputError(
            f"Association file {path} lists no science members; add the s3d cubes to "
            "products[0].members."
        )
    if len(members_sci) < len(members):
        log.info("Ignoring %d non-science members of %s", len(members) - len(members_sci), path)
    name = product.get("name") or path.stem
    return [path.parent / m for m in members_sci], str(name)


def open_for_reading(path):
    """Open an s3d file as a datamodel to read it, without schema validation on read.

    Validation on read re-parses schema files for every keyword of every member: stdatamodels'
    check of each FITS keyword as it is loaded and asdf's validation of the embedded tree (the
    WCS) take about half the time to open a 1050x45x47 cube. Both are documented options
    (``validate_on_assignment=False``: "schema validation occurs only once at the time of write";
    asdf's ``validate_on_read``, set in a thread-local ``config_context``). The file was validated
    when cube_build wrote it, and this step checks what it uses (:func:`load_members`). The model
    is only read, never written.
    """
    with asdf.config_context() as config:
        config.validate_on_read = False
        return datamodels.open(path, validate_on_assignment=False)


def _validated(model, path):
    """``model`` if its tree is valid against its schema; else ``path`` opened with validation."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ValidationWarning)
        model.validate()
    problems = [w for w in caught if issubclass(w.category, ValidationWarning)]
    for w in caught:
        if w not in problems:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if not problems:
        return model
    model.close()
    return _open_member(path, validate=True)


def _open_member(path, validate=False):
    path = Path(path)
    if not path.is_file():
        raise InputError(
            f"Member file {path} does not exist; check the association or copy the file next to "
            "it (member paths are relative to the association file)."
        )
    try:
        model = datamodels.open(path) if validate else open_for_reading(path)
    except Exception as exc:  # noqa: BLE001 - any reader failure means an unusable file
        raise InputError(
            f"Member file {path} cannot be read as a JWST data model ({type(exc).__name__}: "
            f"{exc}); it may be truncated or corrupt: copy it again."
        ) from None
    return model


def _check_ifu_cube(model, name):
    if not isinstance(model, datamodels.IFUCubeModel):
        raise InputError(
            f"Member {name} is a {type(model).__name__}, not an IFU cube (IFUCubeModel, an "
            "s3d file); list only s3d cubes in the association."
        )
    if model.data is None or model.data.ndim != 3 or model.data.size == 0:
        raise InputError(f"Member {name} has no 3-D SCI array; it is not a usable s3d cube.")
    if getattr(model.meta, "wcs", None) is None:
        raise InputError(
            f"Member {name} has no WCS (meta.wcs); rebuild it with cube_build."
        )


def load_members(step_input, reference=None):
    """Open and check the step's input.

    Parameters
    ----------
    step_input : str, Path, list, ModelContainer or IFUCubeModel
        An association JSON file, a list of s3d file names and/or IFUCubeModels, or a
        ModelContainer.
    reference : int, optional
        Index of the reference member (negative from the end). Files are opened without schema
        validation (:func:`open_for_reading`); the reference's metadata becomes the output's, so
        the reference is validated once, and opened again with stdatamodels' validating reader
        (which drops invalid values, with a warning) if any value is invalid.

    Returns
    -------
    Members

    Raises
    ------
    InputError
        On any unusable input (the message names the file), and when members have no name or
        share a file name or a ``_cal`` name (:func:`check_names`).
    """
    product_name = None
    if isinstance(step_input, (str, Path)) and str(step_input).endswith(".json"):
        items, product_name = _read_association(step_input)
    elif isinstance(step_input, ModelContainer):
        items = list(step_input)
        asn = getattr(step_input, "asn_table", None) or {}
        try:
            product_name = asn["products"][0]["name"]
        except (KeyError, IndexError, TypeError):
            product_name = None
    elif isinstance(step_input, (list, tuple)):
        items = list(step_input)
    elif isinstance(step_input, (str, Path, datamodels.IFUCubeModel)):
        items = [step_input]
    else:
        raise InputError(
            f"Cannot use an input of type {type(step_input).__name__}; give an association JSON, "
            "a list of s3d files or IFUCubeModels, or a ModelContainer."
        )
    if not items:
        raise InputError("The input has no members; give at least two s3d cubes.")

    models, names, opened = [], [], []
    try:
        for item in items:
            if isinstance(item, (str, Path)):
                model = _open_member(item)
                models.append(model)
                names.append(Path(item).name)
                opened.append(True)
            else:
                models.append(item)
                names.append(_model_name(item))
                opened.append(False)
            _check_ifu_cube(models[-1], names[-1] or f"member {len(names) - 1} (in memory)")
        check_names(
            names,
            in_memory=[not mine for mine in opened],
            settings=[setting_name(m) for m in models],
        )
        if reference is not None and -len(items) <= reference < len(items):
            k = reference % len(items)
            if opened[k]:
                models[k] = _validated(models[k], items[k])
    except BaseException:
        for model, mine in zip(models, opened, strict=False):
            if mine:
                model.close()
        raise
    if product_name is None:
        product_name = remove_suffix(Path(names[0]).stem)[0]
    return Members(models=models, names=names, product_name=product_name, opened_here=opened)


def _model_name(model):
    """``meta.filename`` of an in-memory model, stripped; "" when it has none."""
    try:
        name = model.meta.filename
    except AttributeError:
        return ""
    return name.strip() if isinstance(name, str) else ""


def check_names(names, *, in_memory=None, settings=None):
    """Check that every member has a non-empty name and its own name and ``_cal`` name.

    cube_build's ``offset_file`` gives offsets by ``_cal.fits`` name and looks them up by name
    (the first match wins), and the offsets table names members by file name: two members with
    one name, or with one ``_cal`` name, would get one offset.

    Parameters
    ----------
    names : list of str
        Member file names, association order ("" for a model without ``meta.filename``).
    in_memory : list of bool, optional
        Which members were given as open models (for the advice in the message).
    settings : list of str, optional
        Spectral setting of each member (:func:`setting_name`): cubes of different settings
        built from one exposure (MIRI channels 1 and 2 from one ``_cal``) may share a ``_cal``
        name; they get one offset (:func:`~jwst_ifualign.adapter.program.tie_exposures`).

    Raises
    ------
    InputError
        Naming the members (by position and name) that have no name or clash, and what to do.
    """
    in_memory = [False] * len(names) if in_memory is None else in_memory
    advice = (
        "give each in-memory model its own meta.filename (the s3d file name of its exposure, "
        "e.g. jw01234001001_02101_00001_mirifushort_s3d.fits)"
        if any(in_memory)
        else "list each s3d cube once, and only cubes of different exposures"
    )
    unnamed = [k for k, name in enumerate(names) if not name]
    if unnamed:
        raise InputError(
            f"Member{'s' if len(unnamed) > 1 else ''} {', '.join(map(str, unnamed))} (0-based, "
            "association order) ha" + ("ve" if len(unnamed) > 1 else "s") + " no file name "
            "(meta.filename), which the offsets table and cube_build's offset file need; "
            "give each in-memory model its own meta.filename (the s3d file name of its exposure)."
        )
    settings = [""] * len(names) if settings is None else settings
    for label, key in (("file name", lambda n: Path(n).name), ("_cal name", calibrated_name)):
        seen = {}
        for k, name in enumerate(names):
            within = settings[k] if label == "_cal name" else ""
            seen.setdefault((within, key(name)), []).append(k)
        clashes = [ks for ks in seen.values() if len(ks) > 1]
        if clashes:
            listed = "; ".join(
                " and ".join(f"{k} ({names[k]})" for k in ks) + f" -> {key(names[ks[0]])}"
                for ks in clashes
            )
            raise InputError(
                f"Members share a {label}: {listed} (0-based, association order). cube_build's "
                "offset file looks offsets up by _cal file name (first match wins), so every "
                f"member needs its own name and _cal name; {advice}."
            )


#: The exposure part of a JWST file name: program, observation, visit, visit group, parallel
#: sequence, activity and exposure number.
_EXPOSURE = re.compile(r"(jw\d{11}_\d{5}_\d{5})", re.IGNORECASE)


def setting_name(model):
    """Name of a cube's spectral setting, as cube_build names its band cubes.

    ``ch1-short`` (MIRI: channel and band), ``g395h-f290lp`` (NIRSpec: grating and filter), else
    the instrument name; lower case.
    """
    inst = model.meta.instrument
    name = (inst.name or "").upper()
    if name == "MIRI" and inst.channel and inst.band:
        return f"ch{inst.channel}-{inst.band}".lower()
    if name == "NIRSPEC" and getattr(inst, "grating", None) and getattr(inst, "filter", None):
        return f"{inst.grating}-{inst.filter}".lower()
    return name.lower() or "unknown"


def exposure_id(name):
    """``jwPPPPPOOOVVV_GGSAA_EEEEE`` of a JWST file name, lower case; None if it has none."""
    match = _EXPOSURE.search(str(name))
    return match.group(1).lower() if match else None



def calibrated_name(s3d_name):
    """Name of the calibrated exposure (``_cal.fits``) behind an s3d cube, for cube_build."""
    stem = remove_suffix(Path(s3d_name).stem)[0]
    return f"{stem}_cal.fits"


def plane_wavelengths(model):
    """Wavelength of every plane of a cube from its WCS, microns; shape (nwave,)."""
    nwave = model.data.shape[0]
    z = np.arange(nwave, dtype=float)
    _, _, wave = model.meta.wcs(np.zeros(nwave), np.zeros(nwave), z, with_bounding_box=False)
    return np.asarray(wave, dtype=float)


def pixel_scale_arcsec(model):
    """Spaxel size (arcsec) along x and y from the WCS at the cube centre."""
    _, ny, nx = model.data.shape
    x0, y0 = (nx - 1) / 2.0, (ny - 1) / 2.0
    ra, dec, _ = model.meta.wcs(
        np.array([x0, x0 + 1, x0]), np.array([y0, y0, y0 + 1]), np.zeros(3), with_bounding_box=False
    )
    cosd = np.cos(np.deg2rad(dec[0]))
    sx = np.hypot((ra[1] - ra[0]) * cosd, dec[1] - dec[0]) * 3600
    sy = np.hypot((ra[2] - ra[0]) * cosd, dec[2] - dec[0]) * 3600
    return float(sx), float(sy)


def _wcs_summary(model, name):
    """(plane wavelengths, pixel scale) of a cube, or InputError if its WCS cannot give them."""
    try:
        with np.errstate(all="ignore"):
            wave = plane_wavelengths(model)
            scale = pixel_scale_arcsec(model)
    except Exception as exc:  # noqa: BLE001 - any WCS failure means an unusable cube
        raise InputError(
            f"Member {name} has a WCS that cannot be evaluated ({type(exc).__name__}: {exc}); "
            "rebuild the cube with cube_build."
        ) from None
    if not (np.all(np.isfinite(wave)) and np.all(np.isfinite(scale)) and min(scale) > 0):
        raise InputError(
            f"Member {name} has an invalid WCS (wavelengths or spaxel size not finite and "
            "positive); rebuild the cube with cube_build."
        )
    return wave, scale


def check_compatible(members, reference):
    """Check that every member shares the reference's instrument, wavelengths and pixel scale.

    Returns
    -------
    ndarray, shape (nwave,)
        The common wavelength of each plane, microns.

    Raises
    ------
    InputError
        Naming the first member that differs and by how much.
    """
    ref_model = members.models[reference]
    ref_name = members.names[reference]
    ref_wave, ref_scale = _wcs_summary(ref_model, ref_name)
    ref_inst = ref_model.meta.instrument.name
    spacing = np.median(np.abs(np.diff(ref_wave))) if ref_wave.size > 1 else abs(ref_wave[0])
    for model, name in zip(members.models, members.names, strict=True):
        if model is ref_model:
            continue
        if model.meta.instrument.name != ref_inst:
            raise InputError(
                f"Member {name} is from {model.meta.instrument.name} but the reference "
                f"{ref_name} is from {ref_inst}; align cubes of one instrument at a time."
            )
        if model.data.shape[0] != ref_model.data.shape[0]:
            raise InputError(
                f"Member {name} has {model.data.shape[0]} wavelength planes but the reference "
                f"{ref_name} has {ref_model.data.shape[0]}; build all cubes on one wavelength "
                "grid (cube_build with the same channel/band and wavelength parameters)."
            )
        wave, scale = _wcs_summary(model, name)
        worst = float(np.max(np.abs(wave - ref_wave)))
        if worst > _WAVE_TOLERANCE * spacing:
            raise InputError(
                f"Member {name} has a different wavelength grid from the reference {ref_name} "
                f"(differs by up to {worst:.3g} um, {worst / spacing:.2g} planes); build all "
                "cubes on one wavelength grid."
            )
        if not np.allclose(scale, ref_scale, rtol=_SCALE_RTOL):
            raise InputError(
                f"Member {name} has spaxels of {scale[0]:.4f}\" x {scale[1]:.4f}\" but the "
                f"reference {ref_name} has {ref_scale[0]:.4f}\" x {ref_scale[1]:.4f}\"; build "
                "all cubes with one spatial scale (cube_build scalexy)."
            )
    return ref_wave
