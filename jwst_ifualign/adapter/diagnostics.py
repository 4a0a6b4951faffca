"""Diagnostic plot of an alignment: the images before and after, and the measured offsets.

:func:`plot_alignment` takes numpy arrays and the offsets table and writes one PNG:

- top row, on the reference grid, one colour scale: the reference member's white-light image,
  one member placed with its WCS only, the same member aligned, and the combined cube's
  white-light image, with a cross at the reference point source on each;
- bottom row: ``dx`` and ``dy`` of every member with their error bars, and the offset measured
  in each wavelength chunk (``dx_chunks``, ``dy_chunks``) against wavelength.

:func:`alignment_images` makes those arrays from the cubes (the adapter between models and the
plot). Matplotlib is optional (``pip install jwst_ifualign[plot]``): without it the functions log
a warning and return None. The figure is drawn on an Agg canvas; pyplot and the user's backend
are never touched.
"""

from __future__ import annotations

import logging

import numpy as np

from ..algorithms.quality import point_source_fwhm, white_light
from .outputs import write_atomic
from .results import DO_NOT_USE
from .wcs_mapping import celestial_wcs

__all__ = ["plot_alignment", "alignment_images", "MISSING_MATPLOTLIB"]

log = logging.getLogger(__name__)

#: Warning logged when matplotlib cannot be imported.
MISSING_MATPLOTLIB = (
    "install matplotlib (pip install jwst_ifualign[plot]) to get the diagnostic plots"
)

_CROSS = {"marker": "+", "markersize": 18, "markeredgewidth": 1.6, "color": "red", "ls": "none"}


def _matplotlib():
    """(matplotlib, Figure, FigureCanvasAgg), or None with a warning if matplotlib is missing."""
    try:
        # Import the package first: a cached submodule must not hide a missing package.
        import matplotlib
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        log.warning(MISSING_MATPLOTLIB)
        return None
    return matplotlib, Figure, FigureCanvasAgg


def _reference_index(table):
    flags = [str(f) for f in table["flag"]]
    return flags.index("reference") if "reference" in flags else 0


def _source_position(image):
    """(x, y) of the brightest compact source: a Gaussian fit, or the brightest pixel."""
    try:
        _, x, y = point_source_fwhm(image)
        ny, nx = image.shape
        if np.isfinite(x) and np.isfinite(y) and 0 <= x < nx and 0 <= y < ny:
            return x, y
    except Exception:  # noqa: BLE001 - any fit failure: fall back to the brightest pixel
        log.debug("Point-source fit failed; using the brightest pixel.")
    y, x = np.unravel_index(np.nanargmax(image), image.shape)
    return float(x), float(y)


def _source_near(image, x, y, half=6):
    """(x, y) of the compact source fitted within ``half`` pixels of (x, y), or None."""
    ny, nx = image.shape
    x0, y0 = max(0, int(round(x)) - half), max(0, int(round(y)) - half)
    cut = image[y0 : min(ny, int(round(y)) + half + 1), x0 : min(nx, int(round(x)) + half + 1)]
    if cut.size == 0 or not np.isfinite(cut).any():
        return None
    cx, cy = _source_position(cut)
    return cx + x0, cy + y0


def _default_member(table, reprojected_images, ref):
    """The member with the largest measured offset among those with images."""
    best, best_size = None, -1.0
    for i, image in enumerate(reprojected_images):
        if i == ref or image is None:
            continue
        size = float(np.hypot(table["dx"][i], table["dy"][i]))
        size = size if np.isfinite(size) else 0.0
        if size > best_size:
            best, best_size = i, size
    return best


def _check_inputs(reference_image, reprojected_images, aligned_images, combined_image, table):
    n = len(table)
    lists = (("reprojected_images", reprojected_images), ("aligned_images", aligned_images))
    for name, images in lists:
        if len(images) != n:
            raise ValueError(
                f"{name} has {len(images)} entries but the table has {n} members; give one "
                "image (or None) per table row, in table order."
            )
        for i, image in enumerate(images):
            if image is not None and np.shape(image) != np.shape(reference_image):
                raise ValueError(
                    f"{name}[{i}] has shape {np.shape(image)}, not the reference image's "
                    f"{np.shape(reference_image)}; place members on the reference grid."
                )
    for name, image in (("reference_image", reference_image), ("combined_image", combined_image)):
        if np.ndim(image) != 2:
            raise ValueError(f"{name} must be a 2-D image (ny, nx); got shape {np.shape(image)}.")


def _image_norm(colors, image):
    finite = np.asarray(image, float)[np.isfinite(image)]
    if finite.size == 0:
        return colors.Normalize()
    vmin, vmax = np.percentile(finite, [1.0, 99.9])
    if not vmax > vmin:
        vmax = vmin + 1.0
    return colors.AsinhNorm(linear_width=0.03 * (vmax - vmin), vmin=vmin, vmax=vmax)


def _chunk_axis(table):
    """x values, half-widths and label of the chunk panels."""
    ranges = np.asarray(table.meta.get("chunk_wavelength_ranges_um") or [], float)
    nchunk = np.atleast_2d(np.asarray(table["dx_chunks"][0], float)).shape[-1]
    if ranges.ndim == 2 and len(ranges) == nchunk:
        return ranges.mean(axis=1), np.diff(ranges, axis=1)[:, 0] / 2, "wavelength (um)"
    return np.arange(nchunk, dtype=float), np.zeros(nchunk), "wavelength chunk"


def _plot_members(ax, table, ref, shown, member_colors):
    n = len(table)
    index = np.arange(n)
    applied = np.asarray(table["applied"], bool)
    for col, shift, marker, label in (("dx", -0.08, "o", "dx"), ("dy", 0.08, "s", "dy")):
        values = np.asarray(table[col], float)
        errors = np.asarray(table[f"{col}_err"], float)
        for i in index:
            ax.errorbar(
                i + shift,
                values[i],
                yerr=errors[i] if np.isfinite(errors[i]) else None,
                marker=marker,
                color=member_colors[i],
                mfc=member_colors[i] if applied[i] else "white",
                capsize=3,
                label=label if i == 0 else None,
            )
    ax.axhline(0.0, color="0.6", lw=0.8)
    if shown is not None:
        ax.axvline(shown, color="0.6", ls=":", lw=1)
    ax.set_xticks(index)
    ax.set_xticklabels(
        [f"{i}\n{'ref' if i == ref else str(table['flag'][i])}" for i in index], fontsize=8
    )
    ax.set_xlabel("member (association order); open markers: offset not applied")
    ax.set_ylabel("offset (reference pixels)")
    ax.set_title("Offset of each member: dx (circles), dy (squares), 1-sigma")
    ax.set_xlim(-0.5, n - 0.5)


def _plot_chunks(ax, table, column, ref, member_colors):
    x, half, label = _chunk_axis(table)
    plotted = False
    for i in range(len(table)):
        if i == ref:
            continue
        values = np.atleast_1d(np.asarray(table[column][i], float))
        if not np.isfinite(values).any():
            continue
        ax.errorbar(
            x, values, xerr=half, marker="o", ms=4, lw=1, color=member_colors[i], label=f"{i}"
        )
        overall = float(table[column.removesuffix("_chunks")][i])
        if np.isfinite(overall):
            ax.axhline(overall, color=member_colors[i], ls="--", lw=0.8)
        plotted = True
    ax.set_xlabel(label)
    ax.set_ylabel(f"{column.removesuffix('_chunks')} (reference pixels)")
    ax.set_title(f"{column.removesuffix('_chunks')} per wavelength chunk", fontsize=10)
    if plotted:
        ax.legend(title="member (dashed: all)", fontsize=8, title_fontsize=8)
    else:
        ax.text(0.5, 0.5, "no chunk offsets", ha="center", va="center", transform=ax.transAxes)


def plot_alignment(
    reference_image,
    reprojected_images,
    aligned_images,
    combined_image,
    table,
    path,
    *,
    member=None,
    source_xy=None,
    combined_origin=(0.0, 0.0),
    zoom=None,
    title=None,
):
    """Write the alignment diagnostic PNG.

    Parameters
    ----------
    reference_image : ndarray, shape (ny, nx)
        White-light image of the reference member (surface brightness, NaN where no data).
    reprojected_images, aligned_images : sequence of ndarray or None
        One entry per table row (association order), each of shape (ny, nx) on the reference
        grid: the member placed with its WCS only, and with its applied offset folded in. None
        for a member not to show.
    combined_image : ndarray, shape (ny_out, nx_out)
        White-light image of the combined cube.
    table : astropy.table.Table
        The offsets table (:func:`jwst_ifualign.adapter.outputs.offsets_table`, or its ECSV file read
        back): columns ``dx, dy, dx_err, dy_err, applied, flag, dx_chunks, dy_chunks``, and
        ``meta["chunk_wavelength_ranges_um"]``.
    path : str or Path
        PNG file to write (written under a temporary name, then renamed).
    member : int, optional
        Row of the member shown in the 2nd and 3rd panels; by default the member with the
        largest offset.
    source_xy : tuple of float, optional
        ``(x, y)`` reference pixel (x = column) of the point source marked with a cross; by
        default fitted on ``reference_image``.
    combined_origin : tuple of float
        Reference pixel ``(x, y)`` of the combined image's pixel (0, 0): (0, 0) when the combined
        cube is on the reference grid, negative for a grid extended around it.
    zoom : int, optional
        Show only ``zoom`` pixels either side of the cross; the whole images by default.
    title : str, optional
        Figure title.

    Returns
    -------
    str or None
        The PNG path, or None when matplotlib is not installed (a warning is logged).

    Raises
    ------
    ValueError
        If the image lists do not match the table or an image is not 2-D.
    """
    mpl = _matplotlib()
    if mpl is None:
        return None
    matplotlib, Figure, FigureCanvasAgg = mpl
    reference_image = np.asarray(reference_image, float)
    combined_image = np.asarray(combined_image, float)
    _check_inputs(reference_image, reprojected_images, aligned_images, combined_image, table)
    ref = _reference_index(table)
    shown = _default_member(table, reprojected_images, ref) if member is None else int(member)
    if shown is not None and not 0 <= shown < len(table):
        raise ValueError(f"member={member} is out of range for a table of {len(table)} members.")
    sx, sy = _source_position(reference_image) if source_xy is None else map(float, source_xy)

    fig = Figure(figsize=(17, 8.6), layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(2, 4, height_ratios=[1.15, 1.0])
    norm = _image_norm(matplotlib.colors, reference_image)
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="0.85")

    def panel(col, image, label, cross):
        ax = fig.add_subplot(grid[0, col])
        if image is None:
            ax.text(0.5, 0.5, "no image", ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
            return None
        image = np.asarray(image, float)
        im = ax.imshow(image, origin="lower", norm=norm, cmap=cmap, interpolation="nearest")
        ax.plot(*cross, **_CROSS)
        found = _source_near(image, *cross)
        if found is not None:
            ax.plot(*found, marker="x", ms=7, mew=1.2, color="white", ls="none")
            ax.text(
                0.03,
                0.97,
                f"source - cross: ({found[0] - cross[0]:+.2f}, {found[1] - cross[1]:+.2f}) px",
                transform=ax.transAxes,
                va="top",
                fontsize=9,
                bbox={"facecolor": "white", "alpha": 0.8, "lw": 0},
            )
        if zoom is not None:
            ax.set_xlim(cross[0] - zoom - 0.5, cross[0] + zoom + 0.5)
            ax.set_ylim(cross[1] - zoom - 0.5, cross[1] + zoom + 0.5)
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("x (column)")
        ax.set_ylabel("y (row)")
        return ax, im

    dx = float(table["dx"][shown]) if shown is not None else np.nan
    dy = float(table["dy"][shown]) if shown is not None else np.nan
    flag = str(table["flag"][shown]) if shown is not None else ""
    applied = bool(table["applied"][shown]) if shown is not None else False
    state = f"dx={dx:+.3f}, dy={dy:+.3f} px" if applied else f"not applied ({flag or 'no offset'})"
    panels = [
        panel(0, reference_image, f"Reference (member {ref}): white light", (sx, sy)),
        panel(
            1,
            None if shown is None else reprojected_images[shown],
            f"Member {shown}: placed with its WCS only",
            (sx, sy),
        ),
        panel(
            2,
            None if shown is None else aligned_images[shown],
            f"Member {shown}: aligned, {state}",
            (sx, sy),
        ),
        panel(
            3,
            combined_image,
            f"Combined ({len(table)} members): white light",
            (sx - combined_origin[0], sy - combined_origin[1]),
        ),
    ]
    drawn = [p for p in panels if p is not None]
    if drawn:
        fig.colorbar(
            drawn[-1][1],
            ax=[p[0] for p in drawn],
            shrink=0.85,
            label="white-light surface brightness (asinh scale)",
        )

    member_colors = [matplotlib.colormaps["tab10"](i % 10) for i in range(len(table))]
    _plot_members(fig.add_subplot(grid[1, 0:2]), table, ref, shown, member_colors)
    _plot_chunks(fig.add_subplot(grid[1, 2]), table, "dx_chunks", ref, member_colors)
    _plot_chunks(fig.add_subplot(grid[1, 3]), table, "dy_chunks", ref, member_colors)
    method = table.meta.get("method")
    fig.suptitle(
        title
        or f"ifu_align diagnostics{f' (method={method})' if method else ''}: red cross = reference "
        f"point source at ({sx:.2f}, {sy:.2f}); white x = source fitted in each image"
    )

    def writer(tmp):
        fig.savefig(tmp, format="png", dpi=100)

    write_atomic(path, writer)
    log.info("Saved alignment diagnostics in %s", path)
    return str(path)


def alignment_images(models, table, combined):
    """The arrays :func:`plot_alignment` shows, made from the cubes.

    Parameters
    ----------
    models : sequence of IFUCubeModel
        The members in table order (not modified).
    table : astropy.table.Table
        The offsets table; the reference is the row flagged ``reference``, and ``dx, dy`` of a
        row with ``applied`` are folded into that member's WCS mapping.
    combined : IFUCubeModel
        The combined cube.

    Returns
    -------
    dict
        ``reference_image``, ``reprojected_images``, ``aligned_images``, ``combined_image`` and
        ``combined_origin``: keyword arguments of :func:`plot_alignment`. Images are white-light
        means over all planes (NaN where no plane is valid); members are put on the reference grid
        by ``reproject.reproject_interp`` (bilinear), through both cubes' celestial WCS.
    """
    from reproject import reproject_interp  # imported when needed (0.35 s)

    if len(models) != len(table):
        raise ValueError(f"{len(models)} models but {len(table)} table rows; give one per row.")
    ref_index = _reference_index(table)
    ref = models[ref_index]
    reference_image = white_light(ref.data, dq=ref.dq, do_not_use=DO_NOT_USE)
    reprojected, aligned = [], []
    for i, model in enumerate(models):
        if i == ref_index:
            reprojected.append(reference_image)
            aligned.append(reference_image)
            continue
        image = white_light(model.data, dq=model.dq, do_not_use=DO_NOT_USE)
        shifts = [(0.0, 0.0)]
        if bool(table["applied"][i]):
            shifts.append((float(table["dx"][i]), float(table["dy"][i])))
        member_wcs = celestial_wcs(model)
        placed = [
            reproject_interp(
                (image, member_wcs),
                celestial_wcs(ref, shift=shift),
                shape_out=ref.data.shape[1:],
                order="bilinear",
                return_footprint=False,
            )
            for shift in shifts
        ]
        reprojected.append(placed[0])
        aligned.append(placed[-1])
    # Reference pixel of the combined image's pixel (0, 0), from the two WCSs.
    ra, dec, lam = ref.meta.wcs(0.0, 0.0, 0.0, with_bounding_box=False)
    x0, y0, _ = combined.meta.wcs.invert(ra, dec, lam, with_bounding_box=False)
    return {
        "reference_image": reference_image,
        "reprojected_images": reprojected,
        "aligned_images": aligned,
        "combined_image": white_light(combined.data, dq=combined.dq, do_not_use=DO_NOT_USE),
        "combined_origin": (-float(x0), -float(y0)),
    }
