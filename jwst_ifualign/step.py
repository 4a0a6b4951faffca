"""The ``ifu_align`` pipeline step: align and combine an association of s3d cubes."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from jwst.stpipe import Step
from jwst.stpipe.core import JwstStep

from .adapter.align import (
    FLAG_REFERENCE,
    AlignOptions,
    AlignResult,
    MemberResult,
    align_members,
)
from .adapter.diagnostics import alignment_images, plot_alignment
from .adapter.inputs import load_members, plane_wavelengths
from .adapter.outputs import (
    build_output_model,
    check_not_input,
    offsets_table,
    write_atomic,
    write_offset_file,
    write_table,
)
from .algorithms.offset import Offset

__all__ = ["IFUAlignStep"]

log = logging.getLogger(__name__)


class IFUAlignStep(Step):
    """Measure residual pointing offsets between IFU cubes and combine them on one grid.

    Input: a spec3-style association of s3d cubes (or a list of files/IFUCubeModels, or a
    ModelContainer). Each member is placed on the reference member's grid with its own WCS, its
    residual offset is measured on a wavelength-collapsed image, the offset is folded into its
    WCS and the member resampled once, and all members are combined.

    Output: the combined IFUCubeModel (``<product>_ifualign.fits``) and, when saving,
    ``<product>_ifualign_offsets.ecsv`` (the offsets table) and
    ``<product>_ifualign_offsets.asdf`` (a cube_build ``offset_file``), and with
    ``save_diagnostics`` ``<product>_ifualign_diagnostics.png``.
    """

    class_alias = "ifu_align"

    spec = """
    method = option("chi2", "dft", "cross_correlation", "centroid", default="chi2")  # Offset measurement: chi2 (image_registration chi2_shift, with ERR), dft (register_images, upsampled DFT), cross_correlation (cross_correlation_shifts), centroid (flux-weighted centroid, for one compact source)
    upsample_factor = integer(min=1, max=1000, default=None)  # Upsampling of the correlation peak for chi2 and dft (precision 1/upsample_factor px); default: chi2 adapts it to its error contour, dft uses 100
    wavelength_range = float_list(min=2, max=2, default=None)  # [min, max] wavelengths in microns to collapse for measuring; default all
    slice = integer(min=0, default=None)  # Measure on this one wavelength plane (0-based) instead of a collapsed image
    error_chunks = integer(min=1, max=100, default=5)  # Independent wavelength chunks measured for the empirical error and the chunk offsets
    combine = option("weighted_mean", "mean", "median", default="weighted_mean")  # Combination of aligned members: inverse-variance weighted mean (from ERR), mean or median
    reference = integer(default=0)  # Index of the reference member in the association (negative counts from the end)
    max_shift = float(min=0, default=3.0)  # Largest accepted offset in pixels; a member beyond it is combined with its WCS alone and flagged
    min_snr = float(min=0, default=5.0)  # Smallest peak S/N of a member's collapsed image for its offset to be measured; below it the member is combined with its WCS alone and flagged
    solution = option("pairs", "reference", default="pairs")  # pairs: every pair of members measured and all offsets solved by weighted least squares; reference: each member against the reference only
    kernel = option("bicubic", "bilinear", default="bicubic")  # Resampling kernel: bicubic (Keys; keeps the PSF sharp, bilinear at footprint edges) or bilinear
    output_grid = option("reference", "union", default="reference")  # reference: the reference member's grid; union: the reference's projection and scale extended to cover every member's footprint
    chunk_size = integer(min=1, default=256)  # Wavelength planes processed at once (bounds memory)
    parallel = boolean(default=False)  # Process wavelength chunks in parallel with dask (threads, or the active dask.distributed client)
    outlier_threshold = float(min=0, default=10.0)  # Reject un-flagged outlier voxels (cosmic-ray and bad-pixel residuals of spec2 cubes) that exceed both spectral neighbours by this many ERR and are alone in wavelength and on the sky, before measuring and combining; 0 turns the rejection off
    save_diagnostics = boolean(default=False)  # Also write <product>_ifualign_diagnostics.png: white-light images before/after alignment and the offsets (needs matplotlib: pip install jwst_ifualign[plot])
    suffix = string(default="ifualign")  # Suffix of the combined cube file
    """  # noqa: E501

    reference_file_types: list = []

    @classmethod
    def get_config_from_reference(cls, dataset, disable=None, crds_observatory=None):
        """Return an empty configuration: this plugin has no parameter reference files in CRDS.

        Without this, stpipe asks CRDS for ``pars-ifualignstep`` and exits when no CRDS server
        is reachable.
        """
        return cls._empty_config()

    @classmethod
    def _get_crds_parameters(cls, dataset):
        # No reference files: nothing to look up (and an empty association must reach process()
        # to get the step's own error rather than an IndexError from jwst's lookup).
        return {}, "jwst"

    @staticmethod
    def get_stpipe_loggers():
        """Loggers that strun and Step.call configure: jwst's plus this package's."""
        return (*JwstStep.get_stpipe_loggers(), "jwst_ifualign")

    def _options(self):
        return AlignOptions(
            method=self.method,
            upsample_factor=None if self.upsample_factor is None else int(self.upsample_factor),
            wavelength_range=None
            if self.wavelength_range is None
            else tuple(float(v) for v in self.wavelength_range),
            slice=None if self.slice is None else int(self.slice),
            error_chunks=int(self.error_chunks),
            combine=self.combine,
            reference=int(self.reference),
            max_shift=float(self.max_shift),
            min_snr=float(self.min_snr),
            solution=self.solution,
            kernel=self.kernel,
            output_grid=self.output_grid,
            chunk_size=int(self.chunk_size),
            parallel=bool(self.parallel),
            outlier_threshold=float(self.outlier_threshold),
        )

    def process(self, step_input):
        """Align and combine the members of ``step_input``.

        Parameters
        ----------
        step_input : str, list, ModelContainer
            Association JSON, list of s3d files or IFUCubeModels, or a ModelContainer.

        Returns
        -------
        IFUCubeModel
            The combined cube on the output grid; ``meta.cal_step.ifu_align`` is COMPLETE, or
            SKIPPED for a single-member input (returned as a copy).
        """
        options = self._options()
        self._diagnostic_images = None
        members = load_members(step_input, reference=options.reference)
        try:
            self._product_name = members.product_name
            self._input_names = list(members.names)
            if len(members.models) == 1:
                result_model, table = self._single_member(members, options)
            else:
                result = align_members(members, options)
                ref = members.models[options.reference % len(members.models)]
                result_model = build_output_model(ref, result, options=options, names=members.names)
                table = offsets_table(result, options=options, names=members.names)
                self._diagnostic_images = (
                    alignment_images(members.models, table, result_model)
                    if self.save_diagnostics
                    else None
                )
        finally:
            members.close()
        self._offsets_table = table
        return result_model

    def _single_member(self, members, options):
        """A single cube: nothing to align. Return a copy flagged SKIPPED (and its table)."""
        log.warning(
            "Only one member (%s): nothing to align; the output is a copy of it and "
            "ifu_align is SKIPPED.",
            members.names[0],
        )
        model = members.models[0]
        zero = Offset(0.0, 0.0, 0.0, 0.0)
        # Copies: the output must not share memory with the caller's model.
        result = AlignResult(
            data=model.data.copy(),
            err=model.err.copy(),
            dq=model.dq.copy(),
            count=(model.weightmap > 0).astype("int16")
            if model.hasattr("weightmap") and model.weightmap is not None
            else (model.dq & 1 == 0).astype("int16"),
            members=[MemberResult(members.names[0], zero, zero, FLAG_REFERENCE)],
            wavelengths=plane_wavelengths(model),
            measure_planes=(0, model.data.shape[0]),
            chunk_planes=[],
        )
        single = dataclasses.replace(options, reference=0)
        out = build_output_model(model, result, options=single, names=members.names)
        out.meta.cal_step.ifu_align = "SKIPPED"
        return out, offsets_table(result, options=single, names=members.names)

    def default_output_file(self, input_file=None):
        """Output base name: the association's product name (as calwebb_spec3 names outputs)."""
        product = getattr(self, "_product_name", None)
        if product:
            return f"{product}{self.output_ext}"
        return super().default_output_file(input_file)

    def save_model(self, model, suffix=None, idx=None, output_file=None, force=False, **components):
        """Save the combined cube, the offsets table and the offset file, each atomically.

        No output may overwrite an input file; all three paths are checked before anything is
        written.
        """
        if output_file is None or output_file == "":
            output_file = self.output_file
        if not force and not self.save_results and not output_file:
            return None
        cube_path = self.make_output_path(basepath=output_file, suffix=suffix, idx=idx, **components)
        base = Path(cube_path)
        table_path = base.with_name(base.stem + "_offsets.ecsv")
        asdf_path = base.with_name(base.stem + "_offsets.asdf")
        diag_path = base.with_name(base.stem + "_diagnostics.png")
        inputs = getattr(self, "_input_names", [])
        for path in (cube_path, table_path, asdf_path, diag_path):
            check_not_input(path, inputs)

        model.meta.filename = base.name

        def write_cube(tmp):
            model.to_fits(Path(tmp), overwrite=True)

        write_atomic(cube_path, write_cube)
        log.info("Saved combined cube in %s", cube_path)
        table = getattr(self, "_offsets_table", None)
        if table is not None:
            write_table(table, table_path)
            write_offset_file(table, asdf_path)
            log.info("Saved offsets in %s and cube_build offset file %s", table_path, asdf_path)
        images = getattr(self, "_diagnostic_images", None)
        if images is not None and table is not None:
            if plot_alignment(**images, table=table, path=diag_path) is not None:
                log.info("Saved diagnostic plot in %s", diag_path)
        return cube_path
