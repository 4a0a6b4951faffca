"""The parameters are defined once (adapter/parameters.py); everything else agrees with it.

The Step's spec, the options type, the metadata, the README table and ``strun --help`` are
compared with :data:`PARAMETERS`; bad values raise ParameterError naming the parameter.
"""

import dataclasses
import re
from pathlib import Path

import pytest
from helpers import run_strun

from jwst_ifualign import IFUAlignStep, ParameterError
from jwst_ifualign.adapter.outputs import build_output_model
from jwst_ifualign.adapter.parameters import PARAMETERS, AlignOptions, options_record
from jwst_ifualign.parameter_files import step_defaults

README = Path(__file__).resolve().parents[1] / "README.md"
DEFAULTS = {p.name: p.default for p in PARAMETERS}


def test_spec_defaults_are_the_table():
    assert step_defaults() == DEFAULTS  # same names, same order, same defaults
    step = IFUAlignStep()
    assert {name: getattr(step, name) for name in DEFAULTS} == DEFAULTS


def test_options_fields_are_the_table():
    fields = dataclasses.fields(AlignOptions)
    align = [p for p in PARAMETERS if not p.step_only]
    assert [f.name for f in fields] == [p.name for p in align]
    assert [f.default for f in fields] == [p.default for p in align]
    step = IFUAlignStep(method="dft", wavelength_range=[5.0, 5.5], reference=-1)
    options = AlignOptions.from_step(step)
    assert options == AlignOptions(method="dft", wavelength_range=(5.0, 5.5), reference=-1)
    assert options.wavelength_range == (5.0, 5.5)


@pytest.mark.parametrize(
    "name, value",
    [
        ("method", "chi2_shift"),
        ("combine", "sum"),
        ("kernel", "lanczos"),
        ("solution", "global"),
        ("output_grid", "mosaic"),
        ("upsample_factor", 0),
        ("upsample_factor", 2.5),
        ("error_chunks", 101),
        ("max_shift", -1.0),
        ("min_snr", "high"),
        ("slice", -2),
        ("wavelength_range", [5.0]),
        ("wavelength_range", [5.0, "x"]),
        ("chunk_size", 0),
        ("parallel", "yes"),
        ("reference", None),
    ],
)
def test_bad_option_raises_parameter_error_naming_it(name, value):
    with pytest.raises(ParameterError, match=rf"^{name}="):
        AlignOptions(**{name: value})


def test_metadata_records_every_option(miri_sim):
    from helpers import members_of

    from jwst_ifualign.adapter.align import align_members

    members = members_of(miri_sim)
    options = AlignOptions(error_chunks=2, chunk_size=30)
    result = align_members(members, options)
    model = build_output_model(members.models[0], result, options=options, names=members.names)
    record = model.meta.ifu_align.instance
    expected = options_record(options, members.names[0])
    assert {k: record[k] for k in expected} == expected
    assert set(expected) == {f.name for f in dataclasses.fields(AlignOptions)}


def _readme_table():
    text = README.read_text()
    section = text.split("\n## Parameters\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        match = re.match(r"\| `(\w+)` \| ([^|]+?) \|", line)
        if match:
            rows[match.group(1)] = match.group(2).strip().strip("`")
    return rows


def test_readme_parameter_table_is_the_spec():
    rows = _readme_table()
    assert list(rows) == list(DEFAULTS)
    assert rows == {name: str(default) for name, default in DEFAULTS.items()}


def test_strun_help_is_the_spec(tmp_path):
    done = run_strun(["ifu_align", "--help"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    entries = {}
    for match in re.finditer(r"^  --(\w+)\s+(.*?)(?=^  --|\Z)", done.stdout, re.M | re.S):
        entries[match.group(1)] = " ".join(match.group(2).split())
    for parameter in PARAMETERS:
        text = entries[parameter.name]
        found = re.search(r"default=([^\]]*)\]$", text)
        # stpipe prints no [default=None] for a string parameter without other arguments.
        default = found.group(1) if found else "None"
        assert found or parameter.kind == "string", parameter.name
        expected = parameter.default
        if isinstance(expected, str):
            expected = f'"{expected}"'
        assert default == str(expected), parameter.name
        assert text.startswith(" ".join(parameter.help.split())[:60]), parameter.name
