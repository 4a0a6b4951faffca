"""Write the step's ASDF parameter files from its spec, so that defaults live in one place.

``python -m jwst_ifualign.parameter_files config`` regenerates the repository's ``config/``
folder: ``ifu_align.asdf`` (every parameter at its default), ``ifu_align_<method>.asdf`` (the
same with ``method=<method>``) and ``ifu_align_pipeline.asdf`` (the calwebb_ifualign pipeline,
extract_1d skipped). Tests check the committed files against the spec.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import asdf
from stpipe import config_parser

from .algorithms.registration import METHODS
from .step import IFUAlignStep

__all__ = ["step_defaults", "parameter_file_tree", "write_parameter_files"]

#: Parameters of the generic stpipe Step that the files leave to the user or pipeline.
_GENERIC = {
    "pre_hooks",
    "post_hooks",
    "output_file",
    "output_dir",
    "output_ext",
    "output_use_model",
    "output_use_index",
    "save_results",
    "skip",
    "search_output_file",
    "input_dir",
}


def step_defaults():
    """The step's own parameters and their spec defaults, in spec order."""
    spec = IFUAlignStep.load_spec_file()
    defaults = config_parser.config_from_dict({}, spec)
    return {k: v for k, v in defaults.items() if k not in _GENERIC}


def parameter_file_tree(**overrides):
    """ASDF tree of a parameter file: ``class``, ``name`` and ``parameters``."""
    params = step_defaults()
    unknown = set(overrides) - set(params)
    if unknown:
        raise KeyError(f"not parameters of ifu_align: {sorted(unknown)}")
    params.update(overrides)
    return {
        "class": "jwst_ifualign.step.IFUAlignStep",
        "name": IFUAlignStep.class_alias,
        "parameters": params,
    }


def write_parameter_files(folder):
    """Write ``ifu_align.asdf``, one ``ifu_align_<method>.asdf`` per method, and the pipeline's
    ``ifu_align_pipeline.asdf`` into ``folder``.

    Returns
    -------
    list of Path
        The files written.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    variants = {"ifu_align.asdf": {}}
    variants.update({f"ifu_align_{m}.asdf": {"method": m} for m in METHODS})
    for name, overrides in variants.items():
        path = folder / name
        with asdf.AsdfFile(parameter_file_tree(**overrides)) as af:
            af.write_to(path)
        written.append(path)
    from .pipeline import (
        write_pipeline_parameter_file,  # the pipeline imports this module
    )

    written.append(write_pipeline_parameter_file(folder))
    return written


def main(argv=None):
    """Command-line entry: write the parameter files into the given folder."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", default="config", help="destination folder")
    args = parser.parse_args(argv)
    for path in write_parameter_files(args.folder):
        print(path)


if __name__ == "__main__":
    main()
