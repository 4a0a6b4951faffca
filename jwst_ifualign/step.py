"""The ``ifu_align`` pipeline step: align and combine an association of s3d cubes.

The Step is thin, as jwst's steps are: it builds the options from its parameters
(:class:`~jwst_ifualign.adapter.parameters.AlignOptions`, which checks them), calls the adapter
once, records the status, and writes the side files (offsets table, cube_build offset file,
diagnostic plot) from ``process`` through stpipe's ``make_output_path`` when saving is on.
Nothing is kept on the Step between ``process`` and ``save_model``: the combined cube carries its
own base name (``meta.filename``, the association's product) and the names of its inputs
(``meta.ifu_align.members``), which is all ``save_model`` needs.

Expected failures (bad input, bad parameter) raise :class:`~jwst_ifualign.InputError` or
:class:`~jwst_ifualign.ParameterError` before any output is written, as jwst's steps raise
rather than return a FAILED product; ``meta.cal_step.ifu_align`` is COMPLETE for an aligned
product and SKIPPED for a single-member pass-through (COMPLETE when that one cube is tied to a
reference image or catalog).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from jwst.datamodels import ModelContainer
from jwst.stpipe import Step, record_step_status
from jwst.stpipe.core import JwstStep

from .adapter.absolute import load_absolute_reference, tie_to_reference
from .adapter.align import align_members, pass_through
from .adapter.diagnostics import alignment_images, plot_alignment
from .adapter.inputs import load_members
from .adapter.outputs import (
    build_output_model,
    check_not_input,
    offsets_table,
    write_atomic,
    write_offset_file,
    write_table,
)
from .adapter.parameters import AlignOptions, spec_string
from .adapter.program import align_program, group_by_setting, program_table, tie_program

__all__ = ["IFUAlignStep"]

log = logging.getLogger(__name__)

#: (suffix after the cube's own, extension) of each side file written beside the combined cube.
SIDE_FILES = {
    "table": ("offsets", "ecsv"),
    "offset_file": ("offsets", "asdf"),
    "diagnostics": ("diagnostics", "png"),
}


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

    #: Generated from :data:`jwst_ifualign.adapter.parameters.PARAMETERS` (one definition).
    spec = spec_string()

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

    def process(self, step_input):
        """Align and combine the members of ``step_input``.

        Parameters
        ----------
        step_input : str, list, ModelContainer
            Association JSON, list of s3d files or IFUCubeModels, or a ModelContainer.

        Returns
        -------
        IFUCubeModel or ModelContainer
            The combined cube on the output grid; ``meta.cal_step.ifu_align`` is COMPLETE, or
            SKIPPED for a single-member input (returned as a copy). ``meta.filename`` is the
            product's base name (``<product>.fits``) until the cube is saved. For an association
            of several spectral settings, a ModelContainer of one combined cube per setting
            (``<product>_<setting>.fits``).

        Raises
        ------
        InputError, ParameterError
            Before any output is written.
        """
        options = AlignOptions.from_step(self)
        saving = bool(self.save_results)
        absolute = load_absolute_reference(options)
        members = load_members(step_input, reference=options.reference)
        try:
            groups = group_by_setting(members)
            if len(groups) > 1 and all(len(indices) > 1 for _, indices in groups):
                # Several settings; a lone cube of another setting gets the mismatch error below.
                return self._process_settings(members, options, absolute, saving)
            single = len(members.models) == 1
            result = pass_through(members) if single else align_members(members, options)
            reference = members.models[result.reference_index]
            model = build_output_model(reference, result, options=options, names=members.names)
            if absolute is not None:
                result = tie_to_reference(result, model, members.models, absolute, options)
                model = build_output_model(reference, result, options=options, names=members.names)
            table = offsets_table(result, options=options, names=members.names)
            images = (
                alignment_images(members.models, table, model)
                if saving and self.save_diagnostics and not single
                else None
            )
        finally:
            members.close()
        # A single cube tied to an image or catalog is a product too.
        skipped = single and absolute is None
        record_step_status(model, self.class_alias, status="SKIPPED" if skipped else "COMPLETE")
        model.meta.filename = f"{members.product_name}{self.output_ext}"
        if saving:
            self._write_side_files(model.meta.filename, [model], table, images, members.names)
        return model

    def _process_settings(self, members, options, absolute, saving):
        """Several spectral settings: one combined cube per setting in a ModelContainer (each
        named ``<product>_<setting>``, as cube_build names its band cubes), one offsets table and
        one cube_build offset file for all members (written here when saving)."""
        settings = align_program(members, options)
        references = [members.models[s.indices[s.reference]] for s in settings]
        if absolute is not None:
            first = [
                build_output_model(ref, s.result, options=s.options, names=s.names)
                for ref, s in zip(references, settings, strict=True)
            ]
            tie_program(members, settings, first, absolute)
        cubes = ModelContainer()
        for reference, s in zip(references, settings, strict=True):
            model = build_output_model(reference, s.result, options=s.options, names=s.names)
            model.meta.ifu_align.instance["setting"] = s.setting
            record_step_status(model, self.class_alias, status="COMPLETE")
            model.meta.filename = f"{members.product_name}_{s.setting}{self.output_ext}"
            cubes.append(model)
        table = program_table(settings)
        if saving:
            if self.save_diagnostics:
                log.warning("save_diagnostics: no plot is made for several settings yet.")
            product = f"{members.product_name}{self.output_ext}"
            self._write_side_files(product, list(cubes), table, None, members.names)
        return cubes

    def _given_output_file(self):
        """A user's or parent pipeline's ``output_file``, or None."""
        return (self.search_attr("output_file") if self.search_output_file else None) or None

    def _cube_path(self, model):
        """Path of a combined cube, as ``save_model`` names it: from a user's or parent's
        ``output_file`` (with ``_<setting>`` appended for one of several settings), else from the
        product's base name that ``process`` put in ``meta.filename``."""
        basepath = self._given_output_file()
        record = getattr(model.meta, "ifu_align", None)
        setting = None if record is None else getattr(record, "instance", record).get("setting")
        if basepath and setting:
            stem, ext = os.path.splitext(basepath)
            basepath = f"{stem}_{setting}{ext}"
        return self.make_output_path(basepath=basepath or model.meta.filename)

    def _side_path(self, basename, suffix, ext):
        """Path of a side file (offsets table, offset file, plot) of the product ``basename``."""
        basepath = self._given_output_file() or basename
        return self.make_output_path(basepath=basepath, suffix=f"{self.suffix}_{suffix}", ext=ext)

    def _write_side_files(self, basename, cubes, table, images, input_names):
        """Write the offsets table, the cube_build offset file and (with images) the diagnostic
        plot, each atomically, after checking that no output (the cubes' included) would take
        an input's name."""
        paths = {key: self._side_path(basename, *parts) for key, parts in SIDE_FILES.items()}
        for path in (*(self._cube_path(c) for c in cubes), *paths.values()):
            check_not_input(path, input_names)
        write_table(table, paths["table"])
        write_offset_file(table, paths["offset_file"])
        log.info(
            "Saved offsets in %s and cube_build offset file %s",
            paths["table"],
            paths["offset_file"],
        )
        if images is not None and plot_alignment(**images, table=table, path=paths["diagnostics"]):
            log.info("Saved diagnostic plot in %s", paths["diagnostics"])

    def remove_suffix(self, name):
        """jwst's suffix removal, which also knows this step's own suffix (``_ifualign``), so
        that a saved cube's name gives back its product's."""
        base, separator = super().remove_suffix(name)
        own = f"_{self.suffix}"
        if base == name and self.suffix and name.endswith(own):
            return name[: -len(own)], "_"
        return base, separator

    def save_model(self, model, suffix=None, idx=None, output_file=None, force=False, **components):
        """Save the combined cube (every cube, for several settings) atomically under its
        product's name.

        Never over an input: the names of the inputs are in the cube's own
        ``meta.ifu_align.members``. The side files are written by ``process``.
        """
        if isinstance(model, ModelContainer):
            return [
                self.save_model(cube, suffix=suffix, output_file=output_file, force=force)
                for cube in model
            ]
        if output_file is None or output_file == "":
            output_file = self.output_file
        if not force and not self.save_results and not output_file:
            return None
        cube_path = (
            self._cube_path(model)
            if not output_file or output_file == self.output_file
            else self.make_output_path(basepath=output_file, suffix=suffix, idx=idx, **components)
        )
        record = getattr(model.meta, "ifu_align", None)
        members = [] if record is None else getattr(record, "instance", record).get("members", [])
        check_not_input(cube_path, [m["member"] for m in members])
        model.meta.filename = Path(cube_path).name
        write_atomic(cube_path, lambda tmp: model.to_fits(Path(tmp), overwrite=True))
        log.info("Saved combined cube in %s", cube_path)
        return cube_path
