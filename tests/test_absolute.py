"""Absolute mode: a cube tied to a reference image or a catalog recovers its true pointing error."""

from types import SimpleNamespace

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from jwst_ifualign import InputError
from jwst_ifualign.adapter.absolute import (
    correction_from_catalog,
    correction_from_image,
    load_reference_catalog,
    load_reference_image,
    load_throughput,
)
from jwst_ifualign.testing.imaging import (
    MIRI_F560W,
    NIRCAM_F444W,
    filter_throughput_table,
    make_reference_image,
    reference_catalog,
)
from jwst_ifualign.testing.simulate import MIRI_CH1, NIRSPEC_G395H, make_cube

SOURCE = (150.0, 2.0)


def mispointed_cube(error, *, setup=MIRI_CH1, shape=(80, 35, 37), seed=3):
    """One cube whose data show the sky moved by ``error`` (arcsec), which its WCS ignores.

    The correction that puts it on the true sky is ``+error`` (cube_build's convention).
    """
    return make_cube(
        setup=setup,
        shape=shape,
        pointing=SOURCE,
        source=SOURCE,
        pointing_error_arcsec=error,
        snr=20.0,
        rng=np.random.default_rng(seed),
        filename="jw01234001001_02101_00001_mirifushort_s3d.fits",
    )


@pytest.mark.parametrize("method", ["chi2", "dft"])
@pytest.mark.parametrize(
    "error, shape",
    [((0.09, -0.06), (80, 35, 37)), ((-0.12, 0.05), (80, 34, 36))],
    ids=["plus-minus-odd", "minus-plus-even"],
)
def test_image_tie_recovers_pointing_error(method, error, shape):
    cube = mispointed_cube(error, shape=shape)
    image = load_reference_image(make_reference_image(rng=np.random.default_rng(5)))
    c = correction_from_image(cube, image, method=method)
    assert c.kind == "image"
    assert abs(c.ra_offset - error[0]) < 0.010 and abs(c.dec_offset - error[1]) < 0.010, c
    assert 0 < c.ra_offset_err < 0.010 and 0 < c.dec_offset_err < 0.010


def test_catalog_tie_recovers_pointing_error(tmp_path):
    error = (-0.08, 0.11)
    cube = mispointed_cube(error)
    path = tmp_path / "gaia.ecsv"
    reference_catalog([SOURCE, (150.01, 2.01)], error_arcsec=0.002).write(path)
    c = correction_from_catalog([cube], load_reference_catalog(path))
    assert abs(c.ra_offset - error[0]) < 0.010 and abs(c.dec_offset - error[1]) < 0.010, c
    assert len(c.details["sources"]) == 1  # the second source is outside the cube
    assert c.ra_offset_err >= 0.002  # the catalog's own error is included


def test_nircam_image_of_nirspec_like_cube():
    error = (0.07, 0.09)
    cube = mispointed_cube(error, setup=NIRSPEC_G395H, shape=(80, 40, 40))
    image = make_reference_image(
        imager=NIRCAM_F444W, cube_setup=NIRSPEC_G395H, rng=np.random.default_rng(2)
    )
    c = correction_from_image(cube, load_reference_image(image), method="chi2")
    assert abs(c.ra_offset - error[0]) < 0.012 and abs(c.dec_offset - error[1]) < 0.012, c


def test_image_from_plain_fits_and_throughput_table(tmp_path):
    error = (0.05, 0.05)
    cube = mispointed_cube(error)
    model = make_reference_image(rng=np.random.default_rng(1))
    model.save(tmp_path / "sim_i2d.fits")
    # A plain FITS image: only the SCI data and its header WCS, no filter keyword.
    with fits.open(tmp_path / "sim_i2d.fits") as hdul:
        fits.PrimaryHDU(hdul["SCI"].data, hdul["SCI"].header).writeto(tmp_path / "plain.fits")
    filter_throughput_table(MIRI_F560W).write(tmp_path / "f560w.ecsv")
    image = load_reference_image(tmp_path / "plain.fits")
    assert image.filter is None and np.all(np.isfinite(image.err))
    c = correction_from_image(
        cube, image, method="chi2", throughput=load_throughput(tmp_path / "f560w.ecsv")
    )
    assert abs(c.ra_offset - error[0]) < 0.010 and abs(c.dec_offset - error[1]) < 0.010, c


def test_clear_errors(tmp_path):
    cube = mispointed_cube((0.0, 0.0))
    # No celestial WCS.
    fits.PrimaryHDU(np.ones((20, 20), np.float32)).writeto(tmp_path / "nowcs.fits")
    with pytest.raises(InputError, match="nowcs.fits.*no celestial WCS"):
        load_reference_image(tmp_path / "nowcs.fits")
    with pytest.raises(InputError, match="does not exist"):
        load_reference_image(tmp_path / "missing_i2d.fits")
    # An image of another field.
    far = make_reference_image(centre=(150.2, 2.2))
    with pytest.raises(InputError, match="do not overlap"):
        correction_from_image(cube, load_reference_image(far), method="chi2")
    # A filter the cube does not cover.
    t = Table({"wavelength": [10.0, 11.0, 12.0], "throughput": [0.0, 1.0, 0.0]})
    t.write(tmp_path / "f1130w.ecsv")
    with pytest.raises(InputError, match="do not overlap the throughput table"):
        correction_from_image(
            cube,
            load_reference_image(make_reference_image()),
            method="chi2",
            throughput=load_throughput(tmp_path / "f1130w.ecsv"),
        )
    # Catalogs: a missing column; no source inside the cube.
    Table({"ra": [150.0]}).write(tmp_path / "bad.ecsv")
    with pytest.raises(InputError, match="needs columns 'ra' and 'dec'"):
        load_reference_catalog(tmp_path / "bad.ecsv")
    reference_catalog([(150.2, 2.2)]).write(tmp_path / "far.ecsv")
    with pytest.raises(InputError, match="No source of reference_catalog far.ecsv"):
        correction_from_catalog([cube], load_reference_catalog(tmp_path / "far.ecsv"))


@pytest.fixture(scope="module")
def mispointed_asn(tmp_path_factory):
    """4 dithers that ALL carry pointing errors (the first too), with an image and a catalog of
    the scene on the true sky, written as a user would have them."""
    from jwst_ifualign.testing.simulate import simulate_association, write_association

    errors = ((0.09, -0.06), (-0.05, 0.11), (0.14, 0.07), (-0.12, -0.10))
    sim = simulate_association(shape=(80, 35, 37), errors_arcsec=errors, snr=20.0, seed=4)
    folder = tmp_path_factory.mktemp("absolute")
    asn = write_association(sim, folder)
    make_reference_image(rng=np.random.default_rng(9)).save(folder / "jw01234_f560w_i2d.fits")
    reference_catalog([SOURCE], error_arcsec=0.001).write(folder / "gaia.ecsv")
    return sim, asn


@pytest.mark.parametrize("kind", ["image", "catalog"])
def test_step_offsets_put_every_member_on_the_true_sky(mispointed_asn, kind, tmp_path):
    import asdf
    from astropy import units as u
    from astropy.coordinates import SkyCoord
    from jwst.cube_build import CubeBuildStep

    from jwst_ifualign import IFUAlignStep

    sim, asn = mispointed_asn
    given = (
        {"reference_image": str(asn.parent / "jw01234_f560w_i2d.fits")}
        if kind == "image"
        else {"reference_catalog": str(asn.parent / "gaia.ecsv")}
    )
    out = IFUAlignStep.call(str(asn), save_results=True, output_dir=str(tmp_path), **given)
    assert out.meta.cal_step.ifu_align == "COMPLETE"
    record = out.meta.ifu_align.instance["absolute"]
    assert record["kind"] == kind
    table = Table.read(tmp_path / "sim_ifu_ifualign_offsets.ecsv")
    path = tmp_path / "sim_ifu_ifualign_offsets.asdf"
    with asdf.open(path) as af:
        ra, dec, names = np.array(af["raoffset"]), np.array(af["decoffset"]), list(af["filename"])
    # cube_build takes the file for the calibrated exposures (it looks them up by meta.filename).
    exposures = [SimpleNamespace(meta=SimpleNamespace(filename=n)) for n in names]
    applied = CubeBuildStep(offset_file=str(path)).check_offset_file(exposures)
    assert np.allclose(applied["raoffset"].to_value(u.arcsec), ra)
    truth = np.array([m.pointing_error_arcsec for m in sim.members])
    # Every member's offset file entry is its true correction onto the sky, within 10 mas.
    assert np.all(np.abs(ra - truth[:, 0]) < 0.010) and np.all(np.abs(dec - truth[:, 1]) < 0.010)
    assert np.allclose(ra, table["ra_offset_abs"]) and np.allclose(dec, table["dec_offset_abs"])
    assert np.all(table["ra_offset_abs_err"] > table["ra_offset_err"])
    # The combined cube's WCS is moved by the reference frame's correction.
    ref = sim.members[0].model
    moved = SkyCoord(*ref.meta.wcs(18, 17, 0)[:2], unit="deg").spherical_offsets_to(
        SkyCoord(*out.meta.wcs(18, 17, 0)[:2], unit="deg")
    )
    assert abs(moved[0].to_value(u.arcsec) - record["ra_offset"]) < 1e-4
    assert abs(moved[1].to_value(u.arcsec) - record["dec_offset"]) < 1e-4


def test_step_refuses_bad_absolute_parameters(mispointed_asn, tmp_path):
    from jwst_ifualign import IFUAlignStep, ParameterError

    _, asn = mispointed_asn
    with pytest.raises(ParameterError, match="both given"):
        IFUAlignStep.call(
            str(asn),
            reference_image=str(asn.parent / "jw01234_f560w_i2d.fits"),
            reference_catalog=str(asn.parent / "gaia.ecsv"),
        )
    with pytest.raises(InputError, match="reference_image .*nothere_i2d.fits does not exist"):
        IFUAlignStep.call(
            str(asn), reference_image=str(tmp_path / "nothere_i2d.fits"), output_dir=str(tmp_path)
        )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kind", ["catalog", "image"])
def test_several_settings_tied_to_the_sky(tmp_path, kind):
    """Two detectors x 4 dithers, every exposure mispointed: one run tied to a catalog, or to an
    F560W image that covers channel 1 only (channel 3 is tied through the shared frame), gives
    one offset file of absolute offsets for every _cal."""
    import asdf

    from jwst_ifualign import IFUAlignStep
    from jwst_ifualign.testing.program import simulate_program
    from jwst_ifualign.testing.simulate import write_association

    errors = ((0.09, -0.06), (-0.05, 0.11), (0.14, 0.07), (-0.12, -0.10))
    sim = simulate_program(errors_arcsec=errors, snr=30.0)
    asn = write_association(sim, tmp_path / "data")
    reference_catalog([SOURCE]).write(tmp_path / "data" / "source.ecsv")
    make_reference_image(rng=np.random.default_rng(3)).save(tmp_path / "data" / "f560w_i2d.fits")
    given = (
        {"reference_catalog": str(tmp_path / "data" / "source.ecsv")}
        if kind == "catalog"
        else {"reference_image": str(tmp_path / "data" / "f560w_i2d.fits")}
    )
    cubes = IFUAlignStep.call(
        str(asn),
        **given,
        save_results=True,
        output_dir=str(tmp_path / "out"),
    )
    assert len(cubes) == 2
    assert all(c.meta.ifu_align.instance["absolute"]["kind"] == kind for c in cubes)
    with asdf.open(tmp_path / "out" / "sim_program_ifualign_offsets.asdf") as af:
        names, ra, dec = list(af["filename"]), np.array(af["raoffset"]), np.array(af["decoffset"])
    assert len(names) == len(set(names)) == 8  # every _cal once, both detectors
    truth = {
        m.model.meta.filename.split("_mirifu")[0]: m.pointing_error_arcsec for m in sim.members
    }
    for name, r, d in zip(names, ra, dec, strict=True):
        e = truth[name.split("_mirifu")[0]]
        assert abs(r - e[0]) < 0.010 and abs(d - e[1]) < 0.010, (name, r, d, e)


def test_user_matching_kernel(mispointed_asn, tmp_path):
    """psf_kernel replaces the automatic Gaussian matching; a bad kernel is a clear error."""
    from astropy.convolution import Gaussian2DKernel

    from jwst_ifualign import IFUAlignStep

    sim, asn = mispointed_asn
    # The cube's PSF at the band's middle (MIRI-like: 0.106" + 0.033" per um) against the
    # image's 0.207", on the image's 0.11" pixels.
    sigma = np.sqrt((0.106 + 0.033 * 5.4) ** 2 - 0.207**2) / 2.3548 / 0.11
    np.save(tmp_path / "kernel.npy", Gaussian2DKernel(sigma, x_size=15).array)
    image = str(asn.parent / "jw01234_f560w_i2d.fits")
    out = IFUAlignStep.call(
        str(asn), reference_image=image, psf_kernel=str(tmp_path / "kernel.npy")
    )
    truth = np.array([m.pointing_error_arcsec for m in sim.members])
    members = out.meta.ifu_align.instance["members"]
    got = np.array([(m["ra_offset_abs"], m["dec_offset_abs"]) for m in members])
    assert np.all(np.abs(got - truth) < 0.010), got - truth
    np.save(tmp_path / "bad.npy", np.zeros((5, 5)))
    with pytest.raises(InputError, match="psf_kernel bad.npy is not a finite 2-D kernel"):
        IFUAlignStep.call(str(asn), reference_image=image, psf_kernel=str(tmp_path / "bad.npy"))
