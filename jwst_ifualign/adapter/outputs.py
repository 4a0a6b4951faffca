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
from astropy.table import Table
from jwst.assign_wcs.pointing import create_fitswcs
from stdatamodels.jwst import datamodels
from stdatamodels.util import get_envar_as_boolean

from ..exceptions import ParameterError
from .inputs import calibrated_name

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
        The options used (recorded in ``meta.ifu_align``).
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
    model.meta.cal_step.ifu_align = "COMPLETE"
    model.meta.ifu_align = {
        "package_version": _package_version(),
        "method": options.method,
        "combine": options.combine,
        "reference": names[options.reference % len(names)],
        "upsample_factor": options.upsample_factor,
        "wavelength_range": None if options.wavelength_range is None else list(options.wavelength_range),
        "slice": options.slice,
        "error_chunks": options.error_chunks,
        "max_shift": options.max_shift,
        "min_snr": options.min_snr,
        "solution": options.solution,
        "pair_fit": _pair_fit_record(result.pair_fit, names),
        "kernel": options.kernel,
        "output_grid": options.output_grid,
        "chunk_size": options.chunk_size,
        "parallel": options.parallel,
        "grid_origin": [int(v) for v in result.grid_origin],
        "measure_planes": list(result.measure_planes),
        "convention": OFFSET_CONVENTION,
        "members": [_member_record(r) for r in result.members],
    }
    model._validate_on_assignment = get_envar_as_boolean("VALIDATE_ON_ASSIGNMENT", True)
    return model


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
    ``chunks``, ``spatial`` or ``resolution``), ``outliers`` (voxels rejected), and
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
        elif r.flag == "reference":
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
                "outliers": r.outliers,
                "dx_chunks": chunks_x,
                "dy_chunks": chunks_y,
            }
        )
    table = Table(rows=rows)
    for col in ("dx", "dy", "dx_err", "dy_err", "dx_formal_err", "dy_formal_err",
                "dx_empirical_err", "dy_empirical_err", "dx_spatial_err", "dy_spatial_err",
                "dx_chunks", "dy_chunks"):
        table[col].unit = "pix"
    for col in ("ra_offset", "dec_offset", "ra_offset_err", "dec_offset_err"):
        table[col].unit = "arcsec"
    waves = result.wavelengths
    table.meta.update(
        {
            "method": options.method,
            "combine": options.combine,
            "reference": names[options.reference % len(names)],
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
    sees in calwebb_spec3); offsets are the applied corrections in arcsec.
    """
    return {
        "units": "arcsec",
        "filename": [str(f) for f in table["cal_file"]],
        "raoffset": [float(v) for v in table["ra_offset"]],
        "decoffset": [float(v) for v in table["dec_offset"]],
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
