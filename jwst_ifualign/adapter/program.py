"""Several spectral settings in one association: grouped, aligned per setting, tied by exposure.

A MIRI MRS program holds the cubes of both detectors (MIRIFUSHORT: channels 1-2, MIRIFULONG:
channels 3-4) of every exposure; NIRSpec programs combine gratings. :func:`align_program`
groups the members by setting (:func:`setting_name`), aligns each group on its own reference
(the member of the group from the reference member's exposure where there is one, else the
group's first) with :func:`~jwst_ifualign.adapter.align.align_members`, and ties the members
that share one pointing: the cubes of one exposure (same ``jwPPPPPOOOVVV_GGSAA_EEEEE`` in the
file name, :func:`exposure_id`) get one offset on the sky, the error-weighted mean of their
measurements, with a warning when they disagree beyond their errors. Tied offsets are folded
into each member's own grid and the groups whose offsets moved are combined again.

Offsets of different groups share a zero point only when the groups' references are cubes of
one exposure; otherwise the exposures are not tied and the log says so. Settings that share no
exposure (other bands of the grating wheel are other exposures) are tied to the first setting by
the centroid of a dominant compact source (:func:`tie_settings`), or keep their WCS relation.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import numpy as np
from astropy.table import vstack

from ..algorithms.offset import Offset
from ..algorithms.registration import RegistrationError, measure_offset
from ..algorithms.resample import bilinear_footprint, resample_image
from ..exceptions import InputError
from .absolute import apply_frame, combine_frames, measure_frame
from .align import align_members, reference_index
from .assembly import combine_block, output_grid, resamplers, run_blocks
from .inputs import Members, exposure_id, setting_name
from .measurement import peak_snr, placement
from .outputs import offsets_table
from .results import FLAG_REFERENCE
from .wcs_mapping import mapping_and_wavelength_check, pixel_offsets_to_sky

__all__ = [
    "SettingResult",
    "group_by_setting",
    "align_program",
    "tie_exposures",
    "tie_settings",
    "tie_program",
    "program_table",
]

log = logging.getLogger(__name__)

#: Tied measurements disagreeing by more than this many sigma are warned about.
TIE_SIGMA_WARN = 3.0


def group_by_setting(members):
    """``[(setting, [member indices])]`` in order of first appearance."""
    groups = {}
    for k, model in enumerate(members.models):
        groups.setdefault(setting_name(model), []).append(k)
    return list(groups.items())


@dataclass
class SettingResult:
    """One setting's members (indices into the association) and their AlignResult."""

    setting: str
    indices: list
    names: list
    reference: int
    options: object
    result: object


def _group_reference(indices, names, ref_global):
    """Local index of the group's reference: the member from the reference's exposure, else 0."""
    if ref_global in indices:
        return indices.index(ref_global)
    wanted = exposure_id(names[ref_global])
    for local, k in enumerate(indices):
        if wanted is not None and exposure_id(names[k]) == wanted:
            return local
    return 0


def align_program(members, options):
    """Align an association that may hold several settings; returns a list of SettingResult.

    One setting: one group, aligned as :func:`~jwst_ifualign.adapter.align.align_members` does.
    """
    ref_global = reference_index(options, len(members.models))
    out = []
    for setting, indices in group_by_setting(members):
        names = [members.names[k] for k in indices]
        local_ref = _group_reference(indices, members.names, ref_global)
        group = Members(
            [members.models[k] for k in indices],
            names,
            members.product_name,
            [False] * len(indices),
        )
        group_options = dataclasses.replace(options, reference=local_ref)
        if len(indices) < 2:
            _raise_single(setting, names)
        log.info("Setting %s: %d members, reference %s", setting, len(indices), names[local_ref])
        result = align_members(group, group_options)
        out.append(SettingResult(setting, indices, names, local_ref, group_options, result))
    moved = set()
    if len(out) > 1 and options.tie_exposures:
        moved = tie_exposures(members, out)
    if len(out) > 1 and options.tie_settings and not moved:
        moved = tie_settings(members, out)
    for s in out:
        if s.setting in moved:
            _combine_again(members, s)
    return out


def _raise_single(setting, names):
    raise InputError(
        f"The setting {setting} has only one member ({names[0]}); every setting of the "
        "association needs at least two cubes to align, or list that cube in another association."
    )


def _sky_jacobian(reference):
    """(2, 2) arcsec per reference pixel of the sky offsets (columns: x, y)."""
    unit = pixel_offsets_to_sky(reference, [Offset(1.0, 0.0, 0.0, 0.0), Offset(0.0, 1.0, 0.0, 0.0)])
    return np.array([[unit[0][0], unit[1][0]], [unit[0][1], unit[1][1]]])


def tie_exposures(members, settings):
    """Give the cubes of one exposure one sky offset; returns the settings whose offsets moved.

    Only settings whose references come from one exposure are tied (their offsets share a zero
    point). Each tied member's offset becomes the error-weighted mean of the sky offsets of its
    exposure's measured cubes, converted into its own grid's pixels.
    """
    ref_exposures = {exposure_id(s.names[s.reference]) for s in settings}
    per_setting = [{exposure_id(n) for n in s.names} - {None} for s in settings]
    shared = set.intersection(*per_setting) if per_setting else set()
    if not shared:
        return set()  # no exposure in several settings: nothing to tie (see tie_settings)
    if len(ref_exposures) != 1 or None in ref_exposures:
        log.warning(
            "The settings' references come from different exposures (%s); the exposures are not "
            "tied across settings.",
            ", ".join(s.names[s.reference] for s in settings),
        )
        return set()
    by_exposure = {}
    for s in settings:
        for local, r in enumerate(s.result.members):
            if r.accepted:
                by_exposure.setdefault(exposure_id(r.name), []).append((s, local))
    moved = set()
    for exposure, cubes in by_exposure.items():
        if exposure is None or len(cubes) < 2:
            continue
        sky = np.array([[s.result.members[k].ra_offset, s.result.members[k].dec_offset]
                        for s, k in cubes])
        err = np.array([[s.result.members[k].ra_offset_err, s.result.members[k].dec_offset_err]
                        for s, k in cubes])
        if any(s.result.members[k].flag == FLAG_REFERENCE for s, k in cubes):
            mean, mean_err = np.zeros(2), np.zeros(2)  # the references define the zero point
        else:
            w = 1.0 / np.fmax(err, 1e-6) ** 2
            mean = np.sum(w * sky, axis=0) / np.sum(w, axis=0)
            mean_err = 1.0 / np.sqrt(np.sum(w, axis=0))
        pull = np.abs(sky - mean) / np.hypot(np.fmax(err, 1e-6), mean_err)
        if np.max(pull) > TIE_SIGMA_WARN:
            log.warning(
                "Exposure %s: its cubes' offsets disagree beyond their errors (%s); they are tied "
                "to the weighted mean (%+.4f\", %+.4f\").",
                exposure,
                "; ".join(
                    f"{s.result.members[k].name}: ({a:+.4f}\", {b:+.4f}\")"
                    for (s, k), (a, b) in zip(cubes, sky, strict=True)
                ),
                *mean,
            )
        for s, k in cubes:
            r = s.result.members[k]
            if r.flag == FLAG_REFERENCE:
                continue
            ref_model = members.models[s.indices[s.reference]]
            jac = _sky_jacobian(ref_model)
            dx, dy = np.linalg.solve(jac, mean)
            ex, ey = np.abs(np.linalg.solve(jac, mean_err))
            tied = Offset(float(dx), float(dy), float(ex), float(ey))
            r.measured = r.applied = tied
            r.ra_offset, r.dec_offset = float(mean[0]), float(mean[1])
            r.ra_offset_err, r.dec_offset_err = float(mean_err[0]), float(mean_err[1])
            moved.add(s.setting)
    return moved


#: Smallest peak S/N of each setting's combined white-light image for a tie between settings.
SETTING_TIE_SNR = 20.0


def _white_light(result):
    """(image, err) of a combined cube: mean over the planes with data, and its 1-sigma error."""
    valid = result.count > 0
    n = valid.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        image = np.where(valid, result.data, 0.0).sum(axis=0) / n
        err = np.sqrt(np.where(valid, result.err.astype(float) ** 2, 0.0).sum(axis=0)) / n
    return np.where(n > 0, image, np.nan), np.where(n > 0, err, np.nan)


def tie_settings(members, settings):
    """Tie settings to the first one by the centroid of a dominant compact source.

    Used when the settings share no exposure (another band of the grating wheel is another
    exposure, so its pointing may differ by tens of mas). Each setting's combined white-light
    image is placed on the first setting's grid through both WCS and the flux-weighted centroid
    of the brightest source compared (``method="centroid"``, which works across wavelengths: the
    centroid of a symmetric PSF does not depend on its width). The difference becomes a sky
    correction added to every member of the setting. A setting whose image has no source with a
    peak S/N of ``SETTING_TIE_SNR`` keeps its WCS relation to the first. Returns the settings that
    moved; each SettingResult gets ``setting_offset`` (a dict for the table's metadata).
    """
    anchor = settings[0]
    ref0 = members.models[anchor.indices[anchor.reference]]
    image0, err0 = _white_light(anchor.result)
    anchor.setting_offset = {"tied": True, "ra_offset": 0.0, "dec_offset": 0.0,
                             "ra_offset_err": 0.0, "dec_offset_err": 0.0, "anchor": True}
    moved = set()
    for s in settings[1:]:
        ref = members.models[s.indices[s.reference]]
        if tuple(anchor.result.grid_origin) != (0, 0) or tuple(s.result.grid_origin) != (0, 0):
            s.setting_offset = {"tied": False, "reason": "output_grid=union"}
            continue
        image, err = _white_light(s.result)
        xm, ym, _ = mapping_and_wavelength_check(ref0, ref)
        footprint = bilinear_footprint(xm, ym, image.shape)
        placed, placed_err = resample_image(image, footprint), resample_image(err, footprint)
        snr = min(peak_snr(image0, err0), peak_snr(placed, placed_err))
        if not snr >= SETTING_TIE_SNR:
            log.warning(
                "Setting %s is not tied to %s: no dominant compact source (peak S/N %.1f < %g); "
                "it keeps its WCS relation.", s.setting, anchor.setting, snr, SETTING_TIE_SNR,
            )
            s.setting_offset = {"tied": False, "reason": f"peak S/N {snr:.1f}"}
            continue
        try:
            off = measure_offset(image0, placed, method="centroid", reference_err=err0,
                                 image_err=placed_err)
        except RegistrationError as exc:
            log.warning("Setting %s is not tied to %s: %s", s.setting, anchor.setting, exc)
            s.setting_offset = {"tied": False, "reason": str(exc)}
            continue
        (ra, dec, ra_err, dec_err), = pixel_offsets_to_sky(ref0, [off])
        log.info(
            "Setting %s tied to %s by the compact source's centroid: correction %+.4f\", "
            "%+.4f\" (+/- %.4f\", %.4f\")", s.setting, anchor.setting, ra, dec, ra_err, dec_err,
        )
        s.setting_offset = {"tied": True, "ra_offset": ra, "dec_offset": dec,
                            "ra_offset_err": ra_err, "dec_offset_err": dec_err}
        jac = _sky_jacobian(ref)
        shift = np.linalg.solve(jac, np.array([ra, dec]))
        for r in s.result.members:
            if not r.accepted:
                continue
            r.measured = r.applied = Offset(
                r.applied.dx + float(shift[0]), r.applied.dy + float(shift[1]),
                r.measured.dx_err, r.measured.dy_err,
            )
            r.ra_offset, r.dec_offset = r.ra_offset + ra, r.dec_offset + dec
            r.ra_offset_err = float(np.hypot(r.ra_offset_err, ra_err))
            r.dec_offset_err = float(np.hypot(r.dec_offset_err, dec_err))
        moved.add(s.setting)
    return moved


def _combine_again(members, s):
    """Resample and combine a setting's members again with their (tied) applied offsets."""
    group = Members(
        [members.models[k] for k in s.indices],
        s.names,
        members.product_name,
        [False] * len(s.names),
    )
    ref = group.models[s.reference]
    inverse = ref.meta.wcs.backward_transform
    places, varies = zip(*(placement(ref, m, inverse) for m in group.models), strict=True)
    results = s.result.members
    origin, (ny, nx) = output_grid(ref, group, results, s.options.output_grid)
    per_member = resamplers(ref, group, places, varies, results, origin, (ny, nx))
    nwave = ref.data.shape[0]
    shape = (nwave, ny, nx)
    data, err = np.empty(shape, np.float32), np.empty(shape, np.float32)
    dq, count = np.empty(shape, np.uint32), np.empty(shape, np.int16)
    step = s.options.chunk_size
    bounds = [(z0, min(nwave, z0 + step)) for z0 in range(0, nwave, step)]

    def block(z0, z1):
        return combine_block(group, per_member, z0, z1, method=s.options.combine,
                             kernel=s.options.kernel, out_shape=(ny, nx),
                             out=(data[z0:z1], err[z0:z1], dq[z0:z1], count[z0:z1]))

    for _ in run_blocks(block, bounds, False):
        pass
    s.result = dataclasses.replace(
        s.result, data=data, err=err, dq=dq, count=count, members=results, grid_origin=origin
    )


def program_table(settings):
    """One offsets table for every member of every setting, with ``setting`` and ``exposure``.

    Rows: each setting's members in association order within the setting, settings in order.
    """


    tables = []
    for s in settings:
        t = offsets_table(s.result, options=s.options, names=s.names)
        t.add_column([s.setting] * len(t), name="setting", index=1)
        t.add_column([exposure_id(n) or "unknown" for n in s.names], name="exposure", index=2)
        t.meta["reference_" + s.setting] = s.names[s.reference]
        t.meta["setting_offset_" + s.setting] = getattr(s, "setting_offset", None)
        tables.append(t)
    table = vstack(tables, metadata_conflicts="silent") if len(tables) > 1 else tables[0]
    return table


def _frame_key(s):
    """Settings with one key share a reference frame: tied onto the first setting by
    :func:`tie_settings`, or referred to the same exposure (both MIRI detectors of it)."""
    if (getattr(s, "setting_offset", None) or {}).get("tied"):
        return "tied to the first setting"
    return exposure_id(s.names[s.reference]) or s.setting


def tie_program(members, settings, cubes, reference):
    """Absolute tie of several settings (``reference_image`` or ``reference_catalog``).

    Settings that share a reference frame (:func:`_frame_key`) give one correction: each one the
    reference can measure (an image only where its filter covers the setting's wavelengths) is
    a measurement of that frame, and their error-weighted mean is applied to all of them, so a
    band the image does not cover is tied through the others.

    Parameters
    ----------
    members : Members
        The association.
    settings : list of SettingResult
        From :func:`align_program`; ``result`` is replaced by the tied result.
    cubes : list of IFUCubeModel
        Each setting's combined cube (what an image is registered to).
    reference : AbsoluteReference
        The loaded image or catalog.

    Raises
    ------
    InputError
        If no setting of a frame can be measured.
    """
    frames = {}
    for s, cube in zip(settings, cubes, strict=True):
        frames.setdefault(_frame_key(s), []).append((s, cube))
    for key, group in frames.items():
        measured, problems = [], []
        for s, cube in group:
            models = [members.models[k] for k in s.indices]
            try:
                measured.append(measure_frame(s.result, cube, models, reference, s.options))
            except InputError as exc:
                problems.append(f"{s.setting}: {exc}")
        if not measured:
            raise InputError(" ".join(problems))
        for problem in problems:
            log.info("Not measured against the reference (tied through its frame): %s", problem)
        correction = combine_frames(measured)
        log.info(
            "Frame %s (%s): absolute correction RA %+.4f +/- %.4f\", Dec %+.4f +/- %.4f\"",
            key,
            ", ".join(s.setting for s, _ in group),
            correction.ra_offset,
            correction.ra_offset_err,
            correction.dec_offset,
            correction.dec_offset_err,
        )
        for s, _ in group:
            s.result = apply_frame(s.result, correction)
