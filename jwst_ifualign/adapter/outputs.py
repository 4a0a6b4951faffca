"""Build the step's outputs: the combined IFUCubeModel, the offsets table, the cube_build offset file.

Files are written atomically (a temporary file in the destination folder, then renamed), so an
interrupted run never leaves a partial file under a final name, and never over an input file.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import tempfile
from pathlib import Path

import asdf
import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import Table
from jwst.assign_wcs.pointing import create_fitswcs
from stdatamodels.jwst import datamodels
from stdatamodels.util import get_envar_as_boolean

from ..algorithms.fused import implementation_in_use
from ..exceptions import ParameterError
from .inputs import calibrated_name
from .parameters import options_record
from .results import FLAG_REFERENCE

__all__ = [
    "OFFSET_CONVENTION",
    "build_output_model",
    "offsets_table",
    "offset_file_tree",
    "write_atomic",
    "check_not_input",
]

log = logging.getLogger(__name__)

OFFSET_CONVENTION = (
    "dx, dy: residual shift of the member relative to the reference, in reference-grid pixels, "
    "after the member is placed on the reference grid with its own WCS: a feature at reference "
    "pixel (x, y) appears at (x + dx, y + dy) in the reprojected member (x = column). "
    "ra_offset, dec_offset: correction in arcsec on the sky (RA offset times cos Dec) that "
    "cube_build's offset_file ADDS to the member's coordinates to line it up with the reference."
)


def _package_version():
    from .. import __version__

    return __version__


def build_output_model(reference, result, *, options, names):
    """Combined cube on the reference grid, with the reference's metadata.

    Parameters
    ----------
    reference : IFUCubeModel
        The reference member (not modified).
    result : AlignResult
        Combined arrays and per-member results.
    options : AlignOptions
        The options used (recorded in ``meta.ifu_align``, :func:`options_record`).
    names : list of str
        Member file names, association order.

    Returns
    -------
    IFUCubeModel
        ``data``/``err`` (surface brightness), ``dq`` and ``weightmap`` (members contributing to
        each voxel), ``meta.cal_step.ifu_align = "COMPLETE"`` and ``meta.ifu_align`` holding the
        offsets and options.
    """
    # Built without validating each of the ~60 assignments below (stdatamodels re-reads schema
    # files for each: 50-100 ms); the values come from the valid reference or are ours, and the
    # model is validated as a whole when it is written. Assignments made later by the caller are
    # validated as usual (stdatamodels' default, VALIDATE_ON_ASSIGNMENT).
    model = datamodels.IFUCubeModel(
        data=result.data,
        err=result.err,
        dq=result.dq,
        weightmap=result.count.astype(np.float32),
        wavetable=reference.wavetable.copy() if reference.hasattr("wavetable") else None,
        validate_on_assignment=False,
    )
    model.update(reference, only="PRIMARY")
    model.update(reference, only="SCI")
    model.meta.wcsinfo = copy.deepcopy(reference.meta.wcsinfo.instance)
    if getattr(reference, "wavedim", None):
        model.wavedim = reference.wavedim
    x0, y0 = result.grid_origin
    if (x0, y0) == (0, 0) and result.data.shape == reference.data.shape:
        model.meta.wcs = copy.deepcopy(reference.meta.wcs)
    else:
        # The reference's projection on a grid extended by whole pixels (output_grid="union").
        model.meta.wcsinfo.crpix1 = reference.meta.wcsinfo.crpix1 - x0
        model.meta.wcsinfo.crpix2 = reference.meta.wcsinfo.crpix2 - y0
        nwave, ny, nx = result.data.shape
        model.meta.wcs = create_fitswcs(model)
        model.meta.wcs.bounding_box = ((0, nx - 1), (0, ny - 1), (0, nwave - 1))
    if result.absolute is not None:
        _shift_celestial_wcs(model, result.absolute.ra_offset, result.absolute.dec_offset)
    model.meta.cal_step.ifu_align = "COMPLETE"
    record = {
        "package_version": _package_version(),
        **options_record(options, names[result.reference_index]),
        "pair_fit": _pair_fit_record(result.pair_fit, names),
        "kernels": implementation_in_use(),  # "compiled" or "numpy" (JWST_IFUALIGN_KERNELS)
        "grid_origin": [int(v) for v in result.grid_origin],
        "measure_planes": list(result.measure_planes),
        "convention": OFFSET_CONVENTION,
        "members": [_member_record(r) for r in result.members],
    }
    if result.absolute is not None:
        record["absolute"] = absolute_record(result.absolute)
    model.meta.ifu_align = record
    model._validate_on_assignment = get_envar_as_boolean("VALIDATE_ON_ASSIGNMENT", True)
    return model


def _shift_celestial_wcs(model, ra_offset, dec_offset):
    """Move the cube's celestial WCS by a correction in arcsec (RA offset times cos Dec), as
    cube_build's ``offset_file`` moves an exposure: the tangent point is moved and ``meta.wcs``
    rebuilt from ``meta.wcsinfo`` (so the SCI header's FITS WCS says the same)."""
    w = model.meta.wcsinfo
    moved = SkyCoord(w.crval1 * u.deg, w.crval2 * u.deg).spherical_offsets_by(
        ra_offset * u.arcsec, dec_offset * u.arcsec
    )
    w.crval1, w.crval2 = float(moved.ra.deg), float(moved.dec.deg)
    nwave, ny, nx = model.data.shape
    model.meta.wcs = create_fitswcs(model)
    model.meta.wcs.bounding_box = ((0, nx - 1), (0, ny - 1), (0, nwave - 1))


def absolute_record(correction):
    """Metadata of an absolute correction (``meta.ifu_align.absolute``, the table's meta)."""
    return {
        "kind": correction.kind,
        "reference": correction.reference,
        "ra_offset": _f(correction.ra_offset),
        "dec_offset": _f(correction.dec_offset),
        "ra_offset_err": _f(correction.ra_offset_err),
        "dec_offset_err": _f(correction.dec_offset_err),
        "convention": "arcsec on the sky (RA offset times cos Dec) added to the reference "
        "member's coordinates to put it on the reference image's or catalog's frame; every "
        "member's ra_offset_abs = ra_offset + this",
        "details": correction.details,
    }


def _pair_fit_record(fit, names):
    """The pairwise solution's fit quality, for metadata (None without one)."""
    if fit is None:
        return None
    return {
        "chi2": float(fit.chi2),
        "dof": int(fit.dof),
        "residuals": [
            {
                "member_i": names[i],
                "member_j": names[j],
                "rx": float(rx),
                "ry": float(ry),
                "rx_sigma": float(sx),
                "ry_sigma": float(sy),
            }
            for i, j, rx, ry, sx, sy in fit.residuals
        ],
    }


def _member_record(r):
    rec = {
        "member": r.name,
        "dx": _f(r.measured.dx),
        "dy": _f(r.measured.dy),
        "dx_err": _f(r.measured.dx_err),
        "dy_err": _f(r.measured.dy_err),
        "applied": r.accepted,
        "ra_offset": _f(r.ra_offset),
        "dec_offset": _f(r.dec_offset),
        "flag": r.flag,
    }
    if np.isfinite(r.ra_offset_abs):
        rec["ra_offset_abs"] = _f(r.ra_offset_abs)
        rec["dec_offset_abs"] = _f(r.dec_offset_abs)
    if r.measurement is not None:
        rec["dx_chunks"] = [_f(c.dx) for c in r.measurement.chunks]
        rec["dy_chunks"] = [_f(c.dy) for c in r.measurement.chunks]
    return rec


def _f(value):
    """Plain float for metadata (NaN kept)."""
    return float(value)


def offsets_table(result, *, options, names):
    """The offsets as an astropy Table, one row per member in association order.

    Columns: ``member``, ``cal_file``, ``dx``, ``dy``, ``dx_err``, ``dy_err`` (reference pixels),
    ``ra_offset``, ``dec_offset``, ``ra_offset_err``, ``dec_offset_err`` (arcsec), ``applied``,
    ``flag``, ``dx_formal_err``, ``dy_formal_err``, ``dx_empirical_err``, ``dy_empirical_err``,
    ``native_grid``, ``chunk_chi2`` (reduced chi-square of the chunk offsets),
    ``dx_spatial_err``, ``dy_spatial_err`` (the error from the residual of the aligned images,
    which sees static patterns), ``error_term`` (which term sets the error: ``noise``,
    ``chunks``, ``spatial`` or ``resolution``), ``smoothing`` (Gaussian sigma, spaxels, of the
    band-pass filter the measurement used; 0 for none), ``outliers`` (voxels rejected), and
    ``dx_chunks``, ``dy_chunks`` (offset per wavelength chunk, member against the reference).
    The table's ``meta`` holds the method, reference, convention, chunk wavelength ranges and
    the pairwise fit (chi2, dof, residual per pair).
    """
    nchunk = max(1, len(result.chunk_planes) if len(result.chunk_planes) > 1 else 0)
    rows = []
    for name, r in zip(names, result.members, strict=True):
        m = r.measurement
        chunks_x = np.full(nchunk, np.nan)
        chunks_y = np.full(nchunk, np.nan)
        if m is not None and m.chunks:
            chunks_x[: len(m.chunks)] = [c.dx for c in m.chunks]
            chunks_y[: len(m.chunks)] = [c.dy for c in m.chunks]
        elif r.flag == FLAG_REFERENCE:
            chunks_x[:] = 0.0
            chunks_y[:] = 0.0
        rows.append(
            {
                "member": name,
                "cal_file": calibrated_name(name),
                "dx": r.measured.dx,
                "dy": r.measured.dy,
                "dx_err": r.measured.dx_err,
                "dy_err": r.measured.dy_err,
                "ra_offset": r.ra_offset,
                "dec_offset": r.dec_offset,
                "ra_offset_err": r.ra_offset_err,
                "dec_offset_err": r.dec_offset_err,
                "applied": r.accepted,
                "flag": r.flag,
                "dx_formal_err": np.nan if m is None else m.formal.dx_err,
                "dy_formal_err": np.nan if m is None else m.formal.dy_err,
                "dx_empirical_err": np.nan if m is None else m.empirical_err[0],
                "dy_empirical_err": np.nan if m is None else m.empirical_err[1],
                "native_grid": True if m is None else m.native_grid,
                "chunk_chi2": np.nan if m is None else m.chunk_chi2,
                "dx_spatial_err": np.nan if m is None else m.spatial_err[0],
                "dy_spatial_err": np.nan if m is None else m.spatial_err[1],
                "error_term": "" if m is None else m.error_term,
                "smoothing": 0.0 if m is None else m.smoothing,
                "outliers": r.outliers,
                "dx_chunks": chunks_x,
                "dy_chunks": chunks_y,
            }
        )
    table = Table(rows=rows)
    if result.absolute is not None:
        for col in ("ra_offset_abs", "dec_offset_abs", "ra_offset_abs_err", "dec_offset_abs_err"):
            table[col] = [getattr(r, col) for r in result.members]
            table[col].unit = "arcsec"
        table.meta["absolute"] = absolute_record(result.absolute)
    for col in ("dx", "dy", "dx_err", "dy_err", "dx_formal_err", "dy_formal_err",
                "dx_empirical_err", "dy_empirical_err", "dx_spatial_err", "dy_spatial_err",
                "dx_chunks", "dy_chunks", "smoothing"):
        table[col].unit = "pix"
    for col in ("ra_offset", "dec_offset", "ra_offset_err", "dec_offset_err"):
        table[col].unit = "arcsec"
    waves = result.wavelengths
    table.meta.update(
        {
            "method": options.method,
            "combine": options.combine,
            "reference": names[result.reference_index],
            "convention": OFFSET_CONVENTION,
            "chunk_wavelength_ranges_um": [
                [float(waves[a]), float(waves[b - 1])] for a, b in result.chunk_planes
            ]
            if len(result.chunk_planes) > 1
            else [],
            "package_version": _package_version(),
            "pair_fit": _pair_fit_record(result.pair_fit, names),
        }
    )
    return table


def offset_file_tree(table):
    """Tree of a cube_build ``offset_file`` (schema ``jwst/cube_build/ifuoffset.schema.yaml``).

    ``filename`` lists the members' calibrated exposures (``_cal.fits``, the names cube_build
    sees in calwebb_spec3); offsets are the applied corrections in arcsec: onto the reference
    image's or catalog's frame when the table has them (``ra_offset_abs``), else onto the
    reference member's.
    """
    absolute = "ra_offset_abs" in table.colnames
    ra, dec = ("ra_offset_abs", "dec_offset_abs") if absolute else ("ra_offset", "dec_offset")
    # Every _cal once (cube_build takes the first match): cubes built from one _cal, the two
    # settings of one exposure, are tied to one offset, so their rows agree.
    first = {}
    for cal, r, d in zip(table["cal_file"], table[ra], table[dec], strict=True):
        first.setdefault(str(cal), (float(r), float(d)))
    return {
        "units": "arcsec",
        "filename": list(first),
        "raoffset": [v[0] for v in first.values()],
        "decoffset": [v[1] for v in first.values()],
    }


def check_not_input(path, input_names):
    """Raise ParameterError if the output ``path`` has the file name of an input.

    Comparing names (not resolved paths) also covers models given in memory, whose folder is not
    known: an output never takes an input's file name.
    """
    name = Path(path).name
    for p in input_names:
        if p is not None and Path(p).name == name:
            raise ParameterError(
                f"The output {path} would have the name of the input file {p} and could "
                "overwrite it; choose another output_file or output_dir."
            )


def write_atomic(path, writer):
    """Write a file through ``writer(tmp_path)`` and rename it to ``path`` when complete.

    The temporary file sits in the destination folder (same file system, so the rename is
    atomic) and is removed if ``writer`` fails.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".partial{path.suffix}", dir=path.parent)
    os.close(fd)
    try:
        writer(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return str(path)


def write_table(table, path):
    """Write the offsets table as ECSV, atomically."""
    return write_atomic(path, lambda tmp: table.write(tmp, format="ascii.ecsv", overwrite=True))


def write_offset_file(table, path):
    """Write the cube_build offset file (ASDF), atomically."""

    def writer(tmp):
        with asdf.AsdfFile(offset_file_tree(table)) as af:
            af.write_to(tmp)

    return write_atomic(path, writer)
