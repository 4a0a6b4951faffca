"""The alignment diagnostic plot, from a real small simulated run, and without matplotlib."""

import dataclasses
import logging
import sys

import numpy as np
import pytest
from astropy.table import Table

from jwst_ifualign.adapter.align import AlignOptions, align_members
from jwst_ifualign.adapter.diagnostics import (
    MISSING_MATPLOTLIB,
    alignment_images,
    plot_alignment,
)
from jwst_ifualign.adapter.inputs import load_members
from jwst_ifualign.adapter.outputs import build_output_model, offsets_table, write_table
from jwst_ifualign.algorithms.quality import point_source_fwhm

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run_alignment(sim, **options):
    """Align the simulated members; return (models, offsets table, combined IFUCubeModel)."""
    members = load_members([m.model for m in sim.members])
    opts = dataclasses.replace(AlignOptions(), **options)
    result = align_members(members, opts)
    table = offsets_table(result, options=opts, names=members.names)
    combined = build_output_model(members.models[0], result, options=opts, names=members.names)
    return members.models, table, combined


@pytest.fixture(scope="module")
def aligned(miri_sim):
    return run_alignment(miri_sim)


def source_xy(image):
    _, x, y = point_source_fwhm(image)
    return np.array([x, y])


def test_alignment_images_show_the_offset_before_and_not_after(aligned, miri_sim):
    models, table, combined = aligned
    images = alignment_images(models, table, combined)
    ref_xy = source_xy(images["reference_image"])
    member = 2  # carries the injected (85, -55) mas pointing error
    truth = np.array([miri_sim.members[member].truth_dx, miri_sim.members[member].truth_dy])
    before = source_xy(images["reprojected_images"][member]) - ref_xy
    after = source_xy(images["aligned_images"][member]) - ref_xy
    # The white-light fit is pulled a little by the extended blob: a loose tolerance.
    np.testing.assert_allclose(before, truth, atol=0.1)
    np.testing.assert_allclose(after, 0.0, atol=0.06)
    np.testing.assert_allclose(source_xy(images["combined_image"]) - ref_xy, 0.0, atol=0.06)
    assert images["combined_origin"] == pytest.approx((0.0, 0.0), abs=1e-6)


@pytest.mark.skipif(
    "output_grid" not in {f.name for f in dataclasses.fields(AlignOptions)},
    reason="no output_grid option",
)
def test_alignment_images_on_an_extended_output_grid(miri_sim, tmp_path):
    """With output_grid="union" the combined image is larger; the cross follows its origin."""
    models, table, combined = run_alignment(miri_sim, output_grid="union")
    images = alignment_images(models, table, combined)
    origin = np.array(images["combined_origin"])
    assert images["combined_image"].shape != images["reference_image"].shape
    assert np.all(origin < 1e-6) and np.allclose(origin, np.round(origin), atol=1e-6)
    ref_xy = source_xy(images["reference_image"])
    np.testing.assert_allclose(source_xy(images["combined_image"]) + origin, ref_xy, atol=0.06)
    assert plot_alignment(**images, table=table, path=tmp_path / "union.png") is not None


def test_plot_alignment_writes_png(aligned, tmp_path, caplog):
    models, table, combined = aligned
    images = alignment_images(models, table, combined)
    path = tmp_path / "diag.png"
    with caplog.at_level(logging.INFO, logger="jwst_ifualign"):
        written = plot_alignment(**images, table=table, path=path)
    assert written == str(path)
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 20_000
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1700, 860)
    assert "Saved alignment diagnostics" in caplog.text
    assert [p.name for p in tmp_path.iterdir()] == ["diag.png"]  # no temporary file left


def test_plot_alignment_from_ecsv_with_options(aligned, tmp_path):
    """The table read back from the step's ECSV file works; member and zoom are honoured."""
    models, table, combined = aligned
    write_table(table, tmp_path / "offsets.ecsv")
    table = Table.read(tmp_path / "offsets.ecsv", format="ascii.ecsv")
    images = alignment_images(models, table, combined)
    path = plot_alignment(
        **images, table=table, path=tmp_path / "zoom.png", member=1, zoom=6, title="test"
    )
    assert path is not None and (tmp_path / "zoom.png").read_bytes().startswith(PNG_MAGIC)


def test_plot_alignment_without_chunks(miri_sim, tmp_path):
    models, table, combined = run_alignment(miri_sim, error_chunks=1)
    assert table.meta["chunk_wavelength_ranges_um"] == []
    images = alignment_images(models, table, combined)
    assert plot_alignment(**images, table=table, path=tmp_path / "one_chunk.png") is not None


def test_plot_alignment_checks_its_inputs(aligned, tmp_path):
    models, table, combined = aligned
    images = alignment_images(models, table, combined)
    images["aligned_images"] = images["aligned_images"][:-1]
    with pytest.raises(ValueError, match="aligned_images has 3 entries but the table has 4"):
        plot_alignment(**images, table=table, path=tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


def test_without_matplotlib_warns_and_returns_none(aligned, tmp_path, monkeypatch, caplog):
    models, table, combined = aligned
    images = alignment_images(models, table, combined)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with caplog.at_level(logging.WARNING, logger="jwst_ifualign"):
        result = plot_alignment(**images, table=table, path=tmp_path / "diag.png")
    assert result is None
    assert MISSING_MATPLOTLIB in caplog.text
    assert "pip install jwst_ifualign[plot]" in caplog.text
    assert list(tmp_path.iterdir()) == []
