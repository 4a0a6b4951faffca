"""``calwebb_ifualign``: align and combine an association of s3d cubes, then extract a spectrum.

:class:`IFUAlignPipeline` runs two steps, as calwebb_spec3 would run cube_build and extract_1d:

1. ``ifu_align`` (:class:`~jwst_ifualign.step.IFUAlignStep`) on the association: the combined
   cube ``<product>_ifualign.fits`` and its offsets files;
2. ``extract_1d`` (jwst's :class:`~jwst.extract_1d.Extract1dStep`, as
   :class:`OfflineExtract1dStep`, which records no CRDS context when every reference file was
   a user override) on the combined cube: ``<product>_x1d.fits``.

``<product>`` is the association's ``products[0].name`` unless the user gives ``output_file``;
``output_dir`` applies to both. Each step saves its product as soon as it is done, so the
combined cube is kept even if extract_1d then fails. The spectrum also records
``meta.cal_step.ifu_align`` and ``meta.ifu_align`` (method and offsets) of its cube.

Offline use. ifu_align needs no reference file and the pipeline never asks CRDS for parameter
files. extract_1d needs EXTRACT1D (and APCORR when ``apply_apcorr``) reference files, and looks
up a PSF file: without a CRDS server, skip it (``--steps.extract_1d.skip=true``, the default of
the repository's ``config/ifu_align_pipeline.asdf``) or give every file it asks for
(``--steps.extract_1d.override_extract1d=<file> --steps.extract_1d.override_psf=N/A`` and
``--steps.extract_1d.apply_apcorr=false`` or ``--steps.extract_1d.override_apcorr=<file>``).

``python -m jwst_ifualign.pipeline config`` writes ``config/ifu_align_pipeline.asdf``.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import logging
from pathlib import Path

import asdf
from jwst.datamodels import ModelContainer
from jwst.extract_1d import Extract1dStep
from jwst.lib.suffix import remove_suffix
from jwst.stpipe import Pipeline
from stdatamodels.jwst.datamodels import JwstDataModel

from .parameter_files import step_defaults
from .step import IFUAlignStep

__all__ = [
    "IFUAlignPipeline",
    "OfflineExtract1dStep",
    "product_name",
    "pipeline_parameter_tree",
    "write_pipeline_parameter_file",
    "PIPELINE_PARAMETER_FILE",
]

log = logging.getLogger(__name__)

#: File name of the pipeline parameter file in the repository's ``config/`` folder.
PIPELINE_PARAMETER_FILE = "ifu_align_pipeline.asdf"

#: Reference file types extract_1d asks for when it extracts an IFU cube (APCORR only with
#: ``apply_apcorr``); its NIRISS SOSS types (pastasoss, specprofile, speckernel) are never used.
_IFU_EXTRACT1D_REFTYPES = ("extract1d", "apcorr", "psf")

_OFFLINE_HINT = (
    "extract_1d needs reference files from CRDS and no CRDS server or cache could be used. "
    "Configure CRDS (CRDS_SERVER_URL, CRDS_PATH), or skip the step with "
    "--steps.extract_1d.skip=true (the combined cube is still written), or give every file it "
    "asks for: --steps.extract_1d.override_extract1d=<EXTRACT1D file> "
    "--steps.extract_1d.override_psf=N/A and either --steps.extract_1d.apply_apcorr=false or "
    "--steps.extract_1d.override_apcorr=<APCORR file>."
)


def _class_path(cls):
    return f"{cls.__module__}.{cls.__qualname__}"


def product_name(step_input):
    """Base name of the pipeline's products, as calwebb_spec3 chooses it.

    Parameters
    ----------
    step_input : str, Path, ModelContainer, list
        The pipeline's input.

    Returns
    -------
    str or None
        ``products[0].name`` of an association (JSON file or ModelContainer); for a list of
        files or models, the first member's name without its suffix (``..._s3d.fits`` ->
        ``...``); None when no name can be found (ifu_align then reports what is wrong with the
        input).
    """
    if isinstance(step_input, (str, Path)) and str(step_input).endswith(".json"):
        try:
            asn = json.loads(Path(step_input).read_text())
            return str(asn["products"][0]["name"])
        except (OSError, ValueError, KeyError, IndexError, TypeError):
            return None
    if isinstance(step_input, ModelContainer):
        try:
            return str(step_input.asn_table["products"][0]["name"])
        except (AttributeError, KeyError, IndexError, TypeError):
            pass
    items = list(step_input) if isinstance(step_input, (list, tuple, ModelContainer)) else []
    if not items:
        return None
    first = items[0]
    name = str(first) if isinstance(first, (str, Path)) else getattr(first.meta, "filename", None)
    return remove_suffix(Path(name).stem)[0] if name else None


class OfflineExtract1dStep(Extract1dStep):
    """jwst's extract_1d, except that it asks CRDS for no context when it consulted none.

    The one place where this package works around jwst (class attribute of the pipeline's
    ``step_defs``, no patching of jwst itself). ``JwstStep.finalize_result`` (jwst 3.0) records
    the CRDS context whenever a step used any reference file, even when every one was a user
    override; without a CRDS server that lookup exits the process (``SystemExit``) after the
    work is done. When every reference file used was overridden, CRDS was never consulted and
    there is no context to record: this records the software version, the logs and the
    reference file names, and leaves the context unset. Otherwise it is jwst's finalize_result
    unchanged. The canary test
    ``tests/test_pipeline.py::test_canary_stock_extract_1d_asks_crds_even_with_overrides`` fails
    as soon as jwst stops asking, and then this class can go.
    """

    def finalize_result(self, result, reference_files_used):
        """As jwst's, without the CRDS context lookup when every reference file was overridden."""
        all_overridden = bool(reference_files_used) and all(
            self.get_ref_override(reftype) is not None for reftype, _ in reference_files_used
        )
        if not all_overridden:
            super().finalize_result(result, reference_files_used)
            return
        super().finalize_result(result, [])
        if isinstance(result, JwstDataModel):
            for reftype, filename in reference_files_used:
                if hasattr(result.meta.ref_file, reftype):
                    getattr(result.meta.ref_file, reftype).name = filename


def _carry_provenance(spectrum, cube):
    """Record on the extracted spectrum that its cube was made by ifu_align, and how.

    extract_1d copies only the FITS keywords of the cube's primary header, which do not include
    ``meta.cal_step.ifu_align`` and ``meta.ifu_align`` (the method and every member's offsets).
    """
    spectrum.meta.cal_step.ifu_align = cube.meta.cal_step.ifu_align
    record = getattr(cube.meta, "ifu_align", None)
    if record is not None:
        spectrum.meta.ifu_align = copy.deepcopy(getattr(record, "instance", record))


class IFUAlignPipeline(Pipeline):
    """Align and combine an association of s3d cubes with ifu_align, then run extract_1d.

    Input: a spec3-style association of s3d cubes (or what :class:`IFUAlignStep` accepts).

    Output (with ``save_results``, strun's default), in ``output_dir``:
    ``<product>_ifualign.fits`` and its ``_offsets.ecsv``/``_offsets.asdf`` files (from
    ifu_align), and ``<product>_x1d.fits`` (from extract_1d, unless skipped). ``<product>`` is
    the association's product name unless ``output_file`` is given.

    Returns the last product: the extracted spectrum (which also records
    ``meta.cal_step.ifu_align`` and ``meta.ifu_align``), or the combined cube when extract_1d is
    skipped. ifu_align saves the cube as soon as it is made, so it is kept if extract_1d fails;
    the spectrum is saved with extract_1d's naming; the pipeline does not save its result again.
    """

    class_alias = "calwebb_ifualign"

    spec = """
    """

    step_defs = {
        "ifu_align": IFUAlignStep,
        "extract_1d": OfflineExtract1dStep,
    }

    @classmethod
    def get_config_from_reference(cls, dataset, disable=None, crds_observatory=None):
        """Return an empty configuration: no parameter reference files are looked up in CRDS.

        This plugin pipeline has none, and the lookup exits the process without a CRDS server.
        Sub-step parameters come from the spec defaults, parameter files and the command line.
        """
        return cls._empty_config()

    @classmethod
    def _get_crds_parameters(cls, dataset):
        """CRDS matching parameters of the first member (for prefetching extract_1d's files).

        An input jwst cannot read (an empty association, say) raises ValueError, which stpipe
        treats as "not a model": the run goes on and ifu_align reports the problem.
        """
        try:
            return super()._get_crds_parameters(dataset)
        except (IndexError, KeyError) as exc:
            raise ValueError(f"cannot read CRDS parameters from {dataset!r}: {exc}") from exc

    @staticmethod
    def get_stpipe_loggers():
        """Loggers that strun and ``call`` configure: jwst's plus this package's."""
        return (*Pipeline.get_stpipe_loggers(), "jwst_ifualign")

    @property
    def reference_file_types(self):
        """Reference file types to prefetch: those extract_1d uses for an IFU cube, if it runs."""
        types = []
        for step in self._unskipped_steps:
            for reftype in step.reference_file_types:
                if step is self.extract_1d and (
                    reftype not in _IFU_EXTRACT1D_REFTYPES
                    or (reftype == "apcorr" and not step.apply_apcorr)
                ):
                    continue
                types.append(reftype)
        return types

    def _precache_references(self, input_file):
        """Prefetch extract_1d's reference files; explain the options if CRDS is unreachable."""
        try:
            super()._precache_references(input_file)
        except SystemExit:
            log.error(_OFFLINE_HINT)
            raise

    def finalize_result(self, result, _reference_files_used):
        """Record the pipeline's log in ``cal_logs``, without asking CRDS for its context.

        ``JwstPipeline.finalize_result`` asks CRDS for the context of every model result, which
        exits the process without a CRDS server. The context a step did use is already in
        ``meta.ref_file.crds.context_used`` and is logged from there.
        """
        if not isinstance(result, JwstDataModel):
            return
        if not hasattr(result, "cal_logs"):
            result.cal_logs = {}
        setattr(result.cal_logs, self.class_alias, self._log_records)
        with contextlib.suppress(AttributeError):
            context = result.meta.ref_file.crds.context_used
            if context:
                log.info("Results used CRDS context: %s", context)

    def save_model(self, model, *args, **kwargs):
        """Do nothing: the products are saved in ``process`` as each is made (class docstring)."""
        return None

    def process(self, input_data):
        """Run ifu_align on the association and extract_1d on the combined cube.

        Parameters
        ----------
        input_data : str, list, ModelContainer
            Association JSON of s3d cubes, list of s3d files or IFUCubeModels, or a
            ModelContainer.

        Returns
        -------
        MultiSpecModel or IFUCubeModel
            The extracted spectrum (``MRSMultiSpecModel`` for MIRI), or the combined cube when
            extract_1d is skipped (then ``meta.cal_step.extract_1d = "SKIPPED"``).
        """
        log.info("Starting calwebb_ifualign ...")
        # Sub-step configuration, as calwebb_spec3 does it: ifu_align saves when the pipeline
        # does; the spectrum is saved here, once it records where its cube came from.
        self.ifu_align.save_results = self.save_results
        self.extract_1d.save_results = False
        if self.extract_1d.suffix is None:
            self.extract_1d.suffix = "x1d"

        combined = self.ifu_align.run(input_data)  # names its products after the association's
        result = self.extract_1d.run(combined)
        if result is not combined and isinstance(result, JwstDataModel):
            _carry_provenance(result, combined)
            if self.save_results:
                # Named as the cube: a user's or parent's output_file wins (found by stpipe).
                base = None if self.search_attr("output_file") else product_name(input_data)
                self.extract_1d.save_model(result, output_file=base, force=True)
        log.info("... ending calwebb_ifualign")
        return result


def pipeline_parameter_tree():
    """ASDF tree of ``config/ifu_align_pipeline.asdf``.

    The pipeline's sub-steps as ``{class, name, parameters}``: ifu_align with every parameter at
    its spec default (as ``config/ifu_align.asdf``), and extract_1d with ``skip: true`` only, so
    that the file runs without CRDS and jwst's own extract_1d defaults are not frozen into it.
    """
    return {
        "class": _class_path(IFUAlignPipeline),
        "name": IFUAlignPipeline.class_alias,
        "parameters": {},
        "steps": [
            {
                "class": _class_path(IFUAlignStep),
                "name": "ifu_align",
                "parameters": step_defaults(),
            },
            {
                "class": _class_path(OfflineExtract1dStep),
                "name": "extract_1d",
                "parameters": {"skip": True},
            },
        ],
    }


def write_pipeline_parameter_file(folder):
    """Write ``ifu_align_pipeline.asdf`` into ``folder`` (created if needed).

    Returns
    -------
    Path
        The file written.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / PIPELINE_PARAMETER_FILE
    with asdf.AsdfFile(pipeline_parameter_tree()) as af:
        af.write_to(path)
    return path


def main(argv=None):
    """Command-line entry: write the pipeline parameter file into the given folder."""
    parser = argparse.ArgumentParser(description="Write config/ifu_align_pipeline.asdf.")
    parser.add_argument("folder", nargs="?", default="config", help="destination folder")
    args = parser.parse_args(argv)
    path = write_pipeline_parameter_file(args.folder)
    log.info("Wrote %s", path)
    return 0


if __name__ == "__main__":
    # Import the module under its package name, so that the file names
    # jwst_ifualign.pipeline.IFUAlignPipeline and not __main__.IFUAlignPipeline.
    from jwst_ifualign.pipeline import main as _main

    _main()
