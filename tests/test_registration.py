"""Every registration method returns the package's one convention, on odd and even sizes."""

import warnings

import numpy as np
import pytest
from scipy.special import erf

from jwst_ifualign.algorithms.registration import (
    METHODS,
    RegistrationError,
    chi2_map,
    measure_offset,
    resolution,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from image_registration import cross_correlation_shifts
    from image_registration.chi2_shifts import chi2n_map


def _pixel_gaussian(shape, x0, y0, sigma, flux):
    """Pixel-integrated 2-D Gaussian (exact, no interpolation)."""
    ny, nx = shape

    def frac(c, n):
        edges = np.arange(n + 1) - 0.5
        return 0.5 * np.diff(erf((edges - c) / (np.sqrt(2) * sigma)))

    return flux * frac(y0, ny)[:, None] * frac(x0, nx)[None, :]


def scene(shape, dx=0.0, dy=0.0):
    """A PSF, an extended blob and a background, moved by (dx, dy) pixels."""
    ny, nx = shape
    xc, yc = (nx - 1) / 2 + 0.17, (ny - 1) / 2 - 0.23
    return (
        _pixel_gaussian(shape, xc + dx, yc + dy, 0.95, 100.0)
        + _pixel_gaussian(shape, xc + 3.1 + dx, yc - 2.4 + dy, 4.0, 400.0)
        + 0.5
    )


SHAPES = [(45, 47), (44, 46), (47, 45), (30, 30)]
SHIFTS = [(2.3, -0.7), (-1.6, 0.45), (0.123, -0.377)]
TOLERANCE = {"chi2": 0.01, "dft": 0.01, "cross_correlation": 0.01, "centroid": 0.02}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("shift", SHIFTS, ids=lambda s: f"{s[0]:+}{s[1]:+}")
@pytest.mark.parametrize("smoothing", [0.0, 1.0], ids=["unsmoothed", "smoothed"])
def test_injected_shift_recovered(method, shape, shift, smoothing):
    ref = scene(shape)
    img = scene(shape, *shift)
    # NaN borders at different places, as footprints of two exposures.
    ref[:3] = np.nan
    img[:, -4:] = np.nan
    err = np.full(shape, 0.01)
    off = measure_offset(
        ref, img, method=method, reference_err=err, image_err=err, smoothing=smoothing
    )
    assert off.dx == pytest.approx(shift[0], abs=TOLERANCE[method])
    assert off.dy == pytest.approx(shift[1], abs=TOLERANCE[method])


@pytest.mark.parametrize("method", METHODS)
def test_reference_against_itself_is_zero(method):
    ref = scene((35, 37))
    off = measure_offset(ref, ref.copy(), method=method)
    assert abs(off.dx) < 0.005 and abs(off.dy) < 0.005


def test_library_defect_odd_sizes_and_fix():
    """cross_correlation_shifts adds +0.5 px on odd-length axes; the wrapper does not."""
    shape = (45, 47)  # both odd, as cube_build writes
    ref, img = scene(shape), scene(shape, 1.0, -2.0)  # whole-pixel shift: no peak-fit bias
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = cross_correlation_shifts(ref - ref.mean(), img - img.mean())
    assert raw[0] == pytest.approx(1.0 + 0.5, abs=0.02)
    assert raw[1] == pytest.approx(-2.0 + 0.5, abs=0.02)
    fixed = measure_offset(ref, img, method="cross_correlation")
    assert fixed.dx == pytest.approx(1.0, abs=0.005)
    assert fixed.dy == pytest.approx(-2.0, abs=0.005)


def test_library_peak_fit_bias_and_refinement():
    """The library's 3x3 peak fit is biased for sub-pixel shifts; the refined wrapper is not."""
    shape = (44, 46)  # even: no half-pixel defect, only the peak-fit bias
    ref, img = scene(shape), scene(shape, 0.4, -0.3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = cross_correlation_shifts(ref - ref.mean(), img - img.mean())
    assert abs(raw[0] - 0.4) > 0.01
    fixed = measure_offset(ref, img, method="cross_correlation")
    assert abs(fixed.dx - 0.4) < 0.005 and abs(fixed.dy + 0.3) < 0.005


@pytest.mark.parametrize("method", ["dft", "chi2"])
def test_moving_window_removes_edge_bias(method):
    """A common, stationary mask through extended emission biases the result toward zero."""
    shape = (35, 37)
    shift = (0.65, 0.42)

    def sky(dx, dy):
        return _pixel_gaussian(shape, 16.0 + dx, 18.0 + dy, 1.0, 300.0) + _pixel_gaussian(
            shape, 14.0 + dx, 18.0 + dy, 3.3, 2000.0
        )

    ref, img = sky(0, 0), sky(*shift)
    ref[:, :10] = np.nan  # footprint edges through the extended emission
    img[:, :6] = np.nan
    stationary = measure_offset(ref, img, method=method, max_iterations=0)
    moving = measure_offset(ref, img, method=method)
    assert abs(stationary.dx - shift[0]) > 0.08
    assert moving.dx == pytest.approx(shift[0], abs=0.005)
    assert moving.dy == pytest.approx(shift[1], abs=0.005)


@pytest.mark.parametrize("shape", [*SHAPES, (70, 72)], ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("sigma", [1.0, 0.37])
def test_chi2_map_is_image_registrations_chi2_surface(shape, sigma):
    """``chi2_map`` is ``chi2n_map(boundary="wrap")``: same values, same layout (lag 0 at the
    centre index that ``_chi2`` reads), on odd and even sizes, for an off-centre shifted scene
    with noise, a zero background and a non-zero one."""
    rng = np.random.default_rng(7)
    for background in (0.0, 3.0):
        ref = scene(shape) - 0.5 + background + rng.normal(0, 0.1, shape)
        img = scene(shape, 1.7, -2.2) - 0.5 + background + rng.normal(0, 0.1, shape)
        expected = chi2n_map(ref, img, err=sigma, boundary="wrap")
        got = chi2_map(ref, img, sigma)
        assert got.shape == expected.shape
        # chi2 = sum(ref**2) + sum(img**2) - 2 cross: rounding relative to the largest term.
        scale = (np.sum(ref**2) + np.sum(img**2)) / sigma**2
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12 * scale)
        assert np.unravel_index(np.argmin(got), shape) == np.unravel_index(
            np.argmin(expected), shape
        )
        # img(p - k) = ref(p) at lag k = -(dx, dy) = (-1.7, 2.2) -> (kx, ky) = (-2, 2) pixels
        # from the centre index.
        assert np.unravel_index(np.argmin(got), shape) == (
            (shape[0] - 1) // 2 + 2,
            (shape[1] - 1) // 2 - 2,
        )


def test_chi2_reports_uncertainty_that_scales_with_noise():
    shape = (35, 37)
    rng = np.random.default_rng(3)
    errs = []
    for sigma in (0.05, 0.5):
        ref = scene(shape) + rng.normal(0, sigma, shape)
        img = scene(shape, 0.3, 0.2) + rng.normal(0, sigma, shape)
        e = np.full(shape, sigma)
        off = measure_offset(ref, img, method="chi2", reference_err=e, image_err=e)
        errs.append(off.dx_err)
    assert 0 < errs[0] < errs[1]
    assert errs[1] / errs[0] == pytest.approx(10, rel=0.5)


def test_too_few_common_pixels_raise():
    ref = scene((20, 20))
    img = np.full((20, 20), np.nan)
    img[0, :5] = 1.0
    with pytest.raises(RegistrationError, match="valid in both"):
        measure_offset(ref, img)


def test_unknown_method_and_shape_mismatch():
    with pytest.raises(ValueError, match="method must be one of"):
        measure_offset(scene((10, 10)), scene((10, 10)), method="phase")
    with pytest.raises(ValueError, match="one shape"):
        measure_offset(scene((10, 10)), scene((10, 12)))


def test_resolution_floor():
    # dft: the mean of two results on grids offset by half the DFT's step of 1 / upsample_factor
    assert resolution("dft") == pytest.approx(0.005 / np.sqrt(12))
    assert resolution("dft", 1000) == pytest.approx(0.0005 / np.sqrt(12))
    assert resolution("cross_correlation") == 0.0


@pytest.mark.parametrize("shape", [(80, 80), (64, 71), (75, 81), (75, 80)])
@pytest.mark.parametrize("shift", [(0.37, -1.21), (-2.5, 0.5), (3.0, 0.0)])
def test_fourier_shift_with_real_transforms_equals_the_full_transform(shape, shift):
    """The real-transform phase ramp (Nyquist terms on even sizes) gives the full one's result."""
    from jwst_ifualign.algorithms.registration import _fourier_shift

    image = np.random.default_rng(1).normal(size=shape)
    dx, dy = shift
    ky = np.fft.fftfreq(shape[0])[:, None]
    kx = np.fft.fftfreq(shape[1])[None, :]
    full = np.real(np.fft.ifft2(np.fft.fft2(image) * np.exp(-2j * np.pi * (kx * dx + ky * dy))))
    np.testing.assert_allclose(_fourier_shift(image, dx, dy), full, rtol=0, atol=1e-12)


def _hole_next_to_peak(image, shape, dx=0.0, dy=0.0):
    """NaN at the pixel one step along +x from the PSF peak of ``scene(shape, dx, dy)``."""
    ny, nx = shape
    x = int(np.rint((nx - 1) / 2 + 0.17 + dx)) + 1
    y = int(np.rint((ny - 1) / 2 - 0.23 + dy))
    image[y, x] = np.nan
    return image


@pytest.mark.parametrize("method", ["chi2", "dft", "cross_correlation"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("shift", SHIFTS, ids=lambda s: f"{s[0]:+}{s[1]:+}")
@pytest.mark.parametrize("where", ["reference", "image"])
def test_hole_next_to_the_peak_does_not_bias(method, shape, shift, where):
    # One missing pixel beside the PSF's peak: cut out of the moving window as an edge, it
    # biased every method by 0.02-0.2 px; filled from the other image at the current shift it
    # carries no information and costs none.
    ref, img = scene(shape), scene(shape, *shift)
    if where == "reference":
        _hole_next_to_peak(ref, shape)
    else:
        _hole_next_to_peak(img, shape, *shift)
    ref[:3] = np.nan
    img[:, -4:] = np.nan
    err = np.full(shape, 0.01)
    off = measure_offset(ref, img, method=method, reference_err=err, image_err=err)
    assert off.dx == pytest.approx(shift[0], abs=0.005)
    assert off.dy == pytest.approx(shift[1], abs=0.005)


def test_spatial_error_matches_noise_error_on_noise_and_sees_a_static_pattern():
    from jwst_ifualign.algorithms.registration import measure_offset_details

    shape = (45, 47)
    rng = np.random.default_rng(11)
    ratios = []
    for _ in range(8):
        ref = scene(shape) + rng.normal(0, 0.2, shape)
        img = scene(shape, 0.31, -0.42) + rng.normal(0, 0.2, shape)
        e = np.full(shape, 0.2)
        reg = measure_offset_details(ref, img, method="chi2", reference_err=e, image_err=e)
        ratios.append(np.array(reg.spatial_err) / (reg.offset.dx_err, reg.offset.dy_err))
    # Noise alone: the spatial error scatters about the noise (chi2) error.
    assert 0.6 < np.median(ratios) < 1.6
    # A column striping fixed on each image (the same pattern would cancel): far above.
    x = np.arange(shape[1])
    ref = scene(shape) * (1 + 0.15 * np.cos(2 * np.pi * x / 3 + 0.4))
    img = scene(shape, 0.31, -0.42) * (1 + 0.15 * np.cos(2 * np.pi * x / 3 + 2.5))
    e = np.full(shape, 0.2)
    reg = measure_offset_details(ref, img, method="chi2", reference_err=e, image_err=e)
    assert reg.spatial_err[0] > 5 * reg.offset.dx_err
    assert abs(reg.offset.dx - 0.31) <= 2 * reg.spatial_err[0]


def _striped(image, phase):
    """``image`` times a column striping ``1 + 0.15 cos(2 pi x / 3 + phase)``."""
    x = np.arange(image.shape[1])
    return image * (1 + 0.15 * np.cos(2 * np.pi * x / 3 + phase))


@pytest.mark.parametrize("method", ["chi2", "dft"])
def test_smoothing_suppresses_column_striping(method):
    from jwst_ifualign.algorithms.registration import measure_offset_details

    # Each image striped with its own phase (each exposure has its own): 9 pairs.
    shape = (45, 47)
    e = np.full(shape, 0.2)
    errors = {0.0: [], 1.0: []}
    for shift in [(0.31, -0.42), (-0.77, 0.2), (1.13, 0.6)]:
        for phase_ref, phase_img in [(0.4, 2.5), (1.0, -2.0), (3.0, 0.1)]:
            ref = _striped(scene(shape), phase_ref)
            img = _striped(scene(shape, *shift), phase_img)
            for smoothing, out in errors.items():
                reg = measure_offset_details(
                    ref, img, method=method, reference_err=e, image_err=e, smoothing=smoothing
                )
                out.append(reg.offset.dx - shift[0])
    plain, smoothed = (np.abs(errors[k]) for k in (0.0, 1.0))
    # Unfiltered: off by up to 0.23 (chi2) and 0.32 px (dft); band-pass filtered (1 px): 0.12
    # and 0.13 px.
    assert smoothed.max() < 0.14
    assert smoothed.max() < 0.6 * plain.max()
    assert np.median(smoothed) < np.median(plain)


def test_noise_error_of_the_smoothed_estimator_matches_its_scatter():
    from jwst_ifualign.algorithms.registration import measure_offset_details

    # The curvature of a chi2 surface of smoothed (correlated) pixels is not the covariance of
    # the smoothed estimator: the reported noise error is computed for that estimator.
    shape = (45, 47)
    rng = np.random.default_rng(1)
    e = np.full(shape, 0.2)
    shifts, errs = [], []
    for _ in range(40):
        ref = scene(shape) + rng.normal(0, 0.2, shape)
        img = scene(shape, 0.31, -0.42) + rng.normal(0, 0.2, shape)
        reg = measure_offset_details(
            ref, img, method="chi2", reference_err=e, image_err=e, smoothing=1.0
        )
        shifts.append((reg.offset.dx, reg.offset.dy))
        errs.append((reg.offset.dx_err, reg.offset.dy_err))
    ratio = np.median(errs, axis=0) / np.std(shifts, axis=0, ddof=1)
    assert np.all((0.8 < ratio) & (ratio < 1.4))


def test_library_dft_quantisation_and_the_half_step_grid():
    """register_images is quantised to 1 / usfac (errors up to 0.005 px at usfac=100); the
    wrapper averages it with a grid offset by half a step, which halves the error."""
    from image_registration import register_images

    shape = (45, 47)
    ref = scene(shape)
    ours, library = [], []
    for d in np.linspace(0.3, 0.31, 11):
        img = scene(shape, d, -d / 2)
        off = measure_offset(ref, img, method="dft")
        ours += [off.dx - d, off.dy + d / 2]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            lx, ly = register_images(ref, img, usfac=100)
        library += [lx - d, ly + d / 2]
    ours, library = np.abs(ours), np.abs(library)
    assert library.max() > 0.004
    assert ours.max() <= 0.0026
    assert ours.mean() < 0.65 * library.mean()
