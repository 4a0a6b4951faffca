"""Resampling through a pixel mapping, and combination of aligned cubes."""

import numpy as np
import pytest

from jwst_ifualign.algorithms.combine import combine_cubes
from jwst_ifualign.algorithms.resample import (
    bilinear_footprint,
    gather_nearest,
    resample_cube,
    translate_cube,
)


def _grid(shape):
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(float)
    return xx, yy


@pytest.mark.parametrize("kernel", ["bicubic", "bilinear"])
def test_identity_mapping_returns_input(kernel):
    rng = np.random.default_rng(0)
    cube = rng.normal(10, 1, (5, 9, 11)).astype(np.float32)
    cube[:, 0, :] = np.nan
    err = np.full_like(cube, 0.5)
    xx, yy = _grid(cube.shape[1:])
    fp = bilinear_footprint(xx, yy, cube.shape[1:])
    d, e, v = resample_cube(cube, err, np.isfinite(cube), fp, kernel=kernel)
    np.testing.assert_array_equal(np.isfinite(d), np.isfinite(cube))
    np.testing.assert_allclose(d[v], cube[v], rtol=1e-6)
    np.testing.assert_allclose(e[v], 0.5, rtol=1e-6)


@pytest.mark.parametrize("kernel", ["bicubic", "bilinear"])
def test_flat_field_is_preserved_at_any_phase(kernel):
    """Surface brightness: a flat field stays flat, whatever the sub-pixel phase."""
    cube = np.full((3, 12, 14), 7.5, np.float32)
    xx, yy = _grid(cube.shape[1:])
    fp = bilinear_footprint(xx + 0.37, yy - 0.61, cube.shape[1:])
    d, _, v = resample_cube(cube, np.ones_like(cube), np.ones(cube.shape, bool), fp, kernel=kernel)
    np.testing.assert_allclose(d[v], 7.5, rtol=1e-6)


def test_integer_shift_is_exact_and_marks_outside():
    cube = np.arange(2 * 6 * 7, dtype=np.float32).reshape(2, 6, 7)
    xx, yy = _grid(cube.shape[1:])
    fp = bilinear_footprint(xx + 2, yy - 1, cube.shape[1:])
    d, _, v = resample_cube(cube, np.ones_like(cube), np.ones(cube.shape, bool), fp)
    np.testing.assert_array_equal(d[:, 1:, :5], cube[:, :-1, 2:])
    assert not v[:, 0, :].any() and not v[:, :, 5:].any()


def test_bicubic_is_sharper_than_bilinear():
    """Half-pixel sampling of a critically sampled PSF: bicubic keeps the peak, bilinear not."""
    xx, yy = _grid((31, 31))
    psf = np.exp(-((xx - 15) ** 2 + (yy - 15) ** 2) / (2 * 1.0**2))[None].astype(np.float32)
    truth = np.exp(-((xx - 14.5) ** 2 + (yy - 14.5) ** 2) / (2 * 1.0**2))
    fp = bilinear_footprint(xx + 0.5, yy + 0.5, (31, 31))
    ones = np.ones(psf.shape, bool)
    lin = resample_cube(psf, np.ones_like(psf), ones, fp, kernel="bilinear")[0][0]
    cub = resample_cube(psf, np.ones_like(psf), ones, fp, kernel="bicubic")[0][0]
    assert np.nanmax(np.abs(cub - truth)) < 0.5 * np.nanmax(np.abs(lin - truth))


def test_matches_reproject_interp_bilinear():
    """Our bilinear sampling agrees with reproject's on the interior of a rotated mapping."""
    pytest.importorskip("reproject")
    from astropy.wcs import WCS
    from reproject import reproject_interp

    def wcs(crpix, angle):
        w = WCS(naxis=2)
        w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
        w.wcs.crval = [150.0, 2.0]
        w.wcs.crpix = crpix
        w.wcs.cdelt = [-0.13 / 3600, 0.13 / 3600]
        c, s = np.cos(np.deg2rad(angle)), np.sin(np.deg2rad(angle))
        w.wcs.pc = [[c, -s], [s, c]]
        return w

    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:25, :27]
    image = np.exp(-((xx - 13.2) ** 2 + (yy - 11.7) ** 2) / 18.0) + 0.01 * rng.random((25, 27))
    w_in, w_out = wcs([14.3, 12.6], 0.0), wcs([13.0, 13.0], 20.0)
    ref, _ = reproject_interp((image, w_in), w_out, shape_out=(25, 27), order="bilinear")
    oy, ox = np.mgrid[:25, :27].astype(float)
    mx, my = w_in.world_to_pixel(w_out.pixel_to_world(ox, oy))
    fp = bilinear_footprint(mx, my, image.shape)
    ours = resample_cube(
        image[None], np.ones((1, 25, 27)), np.ones((1, 25, 27), bool), fp, kernel="bilinear"
    )[0][0]
    interior = np.isfinite(ref) & np.isfinite(ours)
    interior[:3], interior[-3:], interior[:, :3], interior[:, -3:] = False, False, False, False
    assert interior.sum() > 200
    np.testing.assert_allclose(ours[interior], ref[interior], rtol=1e-4, atol=1e-6)


def test_nearest_gather_never_interpolates_flags():
    dq = np.zeros((1, 5, 5), np.uint32)
    dq[0, 2, 2] = 4
    xx, yy = _grid((5, 5))
    fp = bilinear_footprint(xx + 0.4, yy - 0.4, (5, 5))
    out = gather_nearest(dq, fp, fill=1)
    assert set(np.unique(out)) <= {0, 1, 4}
    assert out[0, 2, 2] == 4


def test_weighted_mean_and_error():
    data = np.array([[[[1.0]]], [[[3.0]]]])
    err = np.array([[[[1.0]]], [[[2.0]]]])
    valid = np.ones(data.shape, bool)
    out, out_err, count = combine_cubes(data, err, valid, method="weighted_mean")
    w = np.array([1.0, 0.25])
    assert out[0, 0, 0] == pytest.approx((1 * w[0] + 3 * w[1]) / w.sum())
    assert out_err[0, 0, 0] == pytest.approx(1 / np.sqrt(w.sum()))
    assert count[0, 0, 0] == 2


@pytest.mark.parametrize("method", ["weighted_mean", "mean", "median"])
def test_combination_keeps_the_union_of_footprints(method):
    """Each member covers half the field; the combined cube covers all of it (a mean, not a sum)."""
    data = np.full((2, 1, 4, 6), 5.0)
    err = np.ones_like(data)
    valid = np.zeros(data.shape, bool)
    valid[0, :, :, :4] = True
    valid[1, :, :, 2:] = True
    out, _, count = combine_cubes(np.where(valid, data, np.nan), err, valid, method=method)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, 5.0)
    assert count[0, 0, 0] == 1 and count[0, 0, 3] == 2


def test_weighted_mean_ignores_unusable_errors():
    data = np.array([[[[1.0]]], [[[3.0]]]])
    err = np.array([[[[0.0]]], [[[2.0]]]])  # zero error cannot be weighted
    out, _, count = combine_cubes(data, err, np.ones(data.shape, bool))
    assert out[0, 0, 0] == pytest.approx(3.0)
    assert count[0, 0, 0] == 1


def test_no_coverage_gives_nan_and_zero_count():
    data = np.ones((2, 1, 2, 2))
    out, out_err, count = combine_cubes(data, data, np.zeros(data.shape, bool), method="mean")
    assert np.isnan(out).all() and np.isnan(out_err).all() and (count == 0).all()


@pytest.mark.parametrize("kernel", ["bicubic", "bilinear"])
@pytest.mark.parametrize("shift", [(3.37, -2.81), (0.0, 0.0), (-1.5, 2.0), (0.5, 0.5), (0.2, 0.7)])
def test_translation_fast_path_equals_general_path(kernel, shift):
    """translate_cube (separable, 2-D renormalisation) == resample_cube (per-voxel gathers)."""
    rng = np.random.default_rng(0)
    data = rng.normal(5, 1, size=(30, 25, 27)).astype(np.float32)
    yy, xx = np.mgrid[:25, :27]
    footprint = (xx - 13) ** 2 / 9**2 + (yy - 12) ** 2 / 7**2 < 1
    data[:, ~footprint] = np.nan
    data[7, 10, 10] = np.nan  # validity that changes with wavelength
    data[3:9, 15, 5:9] = np.nan
    err = rng.uniform(0.5, 1.5, data.shape).astype(np.float32)
    valid = np.isfinite(data)
    fast = translate_cube(data, err, valid, shift, (25, 27), kernel=kernel)
    general = resample_cube(
        data, err, valid, bilinear_footprint(xx + shift[0], yy + shift[1], (25, 27)), kernel=kernel
    )
    np.testing.assert_array_equal(fast[2], general[2])
    np.testing.assert_allclose(fast[0], general[0], atol=1e-5, equal_nan=True)
    np.testing.assert_allclose(fast[1], general[1], atol=1e-5, equal_nan=True)


def test_footprint_area_is_preserved():
    """Valid exactly where the nearest input voxel is valid: no spaxel lost, no rim added."""
    data = np.full((1, 20, 22), 3.0, np.float32)
    yy, xx = np.mgrid[:20, :22]
    data[:, (xx - 11) ** 2 + (yy - 10) ** 2 > 49] = np.nan
    valid = np.isfinite(data)
    for shift in [(0.3, 0.4), (-0.45, 0.2), (2.4, -1.3)]:
        _, _, v = translate_cube(data, np.ones_like(data), valid, shift, (20, 22))
        assert v.sum() == valid.sum()


def test_collapse_mean_error_and_partial_spaxels():
    from jwst_ifualign.algorithms.collapse import chunk_bounds, collapse

    data = np.ones((10, 2, 2)) * np.arange(10)[:, None, None]
    err = np.full(data.shape, 2.0)
    valid = np.ones(data.shape, bool)
    valid[:6, 0, 0] = False  # only 4 of 10 planes: below the half needed
    image, image_err = collapse(data, err, valid)
    assert np.isnan(image[0, 0])
    assert image[1, 1] == pytest.approx(4.5)
    assert image_err[1, 1] == pytest.approx(2.0 / np.sqrt(10))
    assert chunk_bounds(0, 10, 3) == [(0, 3), (3, 7), (7, 10)]
    assert chunk_bounds(5, 7, 5) == [(5, 6), (6, 7)]


# reproject is used where it does the job (white-light images of members that are not
# translations of the reference grid, the diagnostic images). The cube resampling keeps its own
# code for the reasons the next tests show.


def _tan_wcs(crpix, angle_deg=0.0):
    from astropy.wcs import WCS

    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [150.0, 2.0]
    w.wcs.crpix = crpix
    w.wcs.cdelt = [-0.13 / 3600, 0.13 / 3600]
    c, s = np.cos(np.deg2rad(angle_deg)), np.sin(np.deg2rad(angle_deg))
    w.wcs.pc = [[c, -s], [s, c]]
    return w


def test_reproject_interpolates_errors_where_they_must_be_propagated():
    """reproject has no error propagation: reprojecting ERR interpolates it. Sampling a field of
    independent errors e half-way between four pixels gives e / 2 (sqrt of the sum of squared
    bilinear weights times e^2), which resample_cube returns; reproject returns e."""
    from reproject import reproject_interp

    shape = (15, 17)
    err = np.ones(shape)
    w_in, w_out = _tan_wcs([9.0, 8.0]), _tan_wcs([8.5, 7.5])  # half a pixel in x and y
    theirs = reproject_interp((err, w_in), w_out, shape_out=shape, order="bilinear")[0]
    xx, yy = _grid(shape)
    fp = bilinear_footprint(xx + 0.5, yy + 0.5, shape)
    ones = np.ones((1, *shape), bool)
    _, ours, valid = resample_cube(
        np.ones((1, *shape)), err[None], ones, fp, kernel="bilinear"
    )
    inner = np.s_[2:-2, 2:-2]
    np.testing.assert_allclose(theirs[inner], 1.0, rtol=1e-6)
    assert valid[0][inner].all()
    np.testing.assert_allclose(ours[0][inner], 0.5, rtol=1e-5)


def test_reproject_bicubic_with_nan_border_is_all_nan():
    """reproject #464: order='bicubic' turns an input with a NaN border (every cube_build cube)
    into an all-NaN output; resample_cube's bicubic falls back to bilinear at the edge only."""
    from reproject import reproject_interp

    shape = (21, 23)
    xx, yy = _grid(shape)
    image = np.exp(-((xx - 11.3) ** 2 + (yy - 10.2) ** 2) / 8.0)
    image[:2], image[:, :2] = np.nan, np.nan
    w_in, w_out = _tan_wcs([12.0, 11.0]), _tan_wcs([11.7, 10.6])
    theirs = reproject_interp((image, w_in), w_out, shape_out=shape, order="bicubic")[0]
    assert not np.isfinite(theirs).any()
    fp = bilinear_footprint(xx + 0.3, yy + 0.4, shape)
    valid = np.isfinite(image)[None]
    ours = resample_cube(image[None], np.ones((1, *shape)), valid, fp, kernel="bicubic")[0][0]
    assert np.isfinite(ours[4:-2, 4:-2]).all()


@pytest.mark.parametrize(
    "pa_deg, tabular, shape", [(0.0, False, (8, 15, 17)), (30.0, True, (8, 16, 14))]
)
def test_celestial_wcs_is_the_cube_wcs(pa_deg, tabular, shape):
    """The 2-D WCS given to reproject (from meta.wcsinfo) puts every spaxel where meta.wcs does."""
    from jwst_ifualign.adapter.wcs_mapping import celestial_wcs
    from jwst_ifualign.testing.simulate import make_cube

    model = make_cube(shape=shape, pa_deg=pa_deg, tabular=tabular, snr=np.inf)
    yy, xx = np.mgrid[: shape[1], : shape[2]].astype(float)
    ra, dec, _ = model.meta.wcs(xx, yy, np.full(xx.shape, 3.0), with_bounding_box=False)
    sky = celestial_wcs(model).pixel_to_world(xx, yy)
    np.testing.assert_allclose(sky.ra.deg, ra, rtol=0, atol=1e-10)
    np.testing.assert_allclose(sky.dec.deg, dec, rtol=0, atol=1e-10)
    shifted = celestial_wcs(model, shift=(0.4, -1.5)).pixel_to_world(xx, yy)
    ra2, dec2, _ = model.meta.wcs(
        xx + 0.4, yy - 1.5, np.full(xx.shape, 3.0), with_bounding_box=False
    )
    np.testing.assert_allclose(shifted.ra.deg, ra2, rtol=0, atol=1e-10)
    np.testing.assert_allclose(shifted.dec.deg, dec2, rtol=0, atol=1e-10)
