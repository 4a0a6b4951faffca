"""A simulated MIRI MRS program: dithers x the two detectors of each exposure, in one association.

MIRIFUSHORT (channel 1 here) and MIRIFULONG (channel 3 here) are exposed at the same time, so the
two cubes of one exposure share one pointing error; they differ in wavelength grid, spaxel size,
field of view and PSF width. Each detector's cubes are made by
:func:`jwst_ifualign.testing.simulate.simulate_association` with the same dithers and pointing
errors; the truth of each cube is against the cube of its own detector from the first exposure.
"""

from __future__ import annotations

from .simulate import (
    MIRI_CH1,
    InstrumentSetup,
    SimulatedAssociation,
    simulate_association,
)

__all__ = ["MIRI_CH3", "simulate_program"]

#: MIRI MRS channel 3A-like (MIRIFULONG): 0.20" spaxels, 11.55-13.47 um, a wider PSF and field.
MIRI_CH3 = InstrumentSetup(
    name="MIRI",
    exp_type="MIR_MRS",
    spaxel_arcsec=0.20,
    wave_range_um=(11.55, 13.47),
    fov_arcsec=(5.2, 6.2),
    fwhm_um_slope=0.033,
    fwhm_arcsec_at_zero=0.106,
    shape=(770, 39, 41),
    extra_meta={"detector": "MIRIFULONG", "channel": "3", "band": "SHORT"},
)


def simulate_program(
    *,
    dithers_arcsec=((0.0, 0.0), (0.51, -0.32), (-0.47, 0.36), (0.29, 0.55)),
    errors_arcsec=((0.0, 0.0), (0.0, 0.0), (0.085, -0.055), (0.085, -0.055)),
    shapes=((40, 35, 37), (40, 35, 33)),
    snr=50.0,
    seed=1,
    product_name="sim_program",
    shared_pointing=True,
    band_offset_arcsec=(0.0, 0.0),
):
    """Simulate ``len(dithers_arcsec)`` exposures x 2 detectors as one association.

    Parameters
    ----------
    dithers_arcsec, errors_arcsec : sequence of (float, float)
        Commanded dithers and true pointing errors of each exposure, arcsec (shared by its two
        detectors).
    shapes : tuple of two tuples
        ``(nwave, ny, nx)`` of the channel-1 and of the channel-3 cubes.
    snr : float
        Per-voxel S/N of the brightest spaxel.
    seed : int
        Seed of the noise (the channel-3 cubes use ``seed + 1``).
    product_name : str
        The association's product name.
    shared_pointing : bool
        True: the two cubes of an exposure share its pointing (the two MIRI detectors). False: the
        channel-3 cubes are other exposures (exposure number 00002), as for another band of the
        grating wheel, whose pointing differs from the channel-1 exposures' by
        ``band_offset_arcsec`` on top of their errors.
    band_offset_arcsec : tuple of float
        Pointing error common to every channel-3 exposure, arcsec (only without
        ``shared_pointing``): the band-to-band difference their WCS does not know.

    Returns
    -------
    SimulatedAssociation
        Channel-1 cubes of every exposure, then channel-3 cubes (file names
        ``jw..._mirifushort_s3d.fits`` and ``jw..._mirifulong_s3d.fits``); each member's truth is
        against its own detector's cube of the first exposure.
    """
    n = len(dithers_arcsec)
    parts = []
    for k, (setup, shape) in enumerate(zip((MIRI_CH1, MIRI_CH3), shapes, strict=True)):
        errors = errors_arcsec
        if k == 1 and not shared_pointing:
            errors = [(e[0] + band_offset_arcsec[0], e[1] + band_offset_arcsec[1]) for e in errors]
        sim = simulate_association(
            setup=setup,
            shape=shape,
            n_members=n,
            dithers_arcsec=dithers_arcsec,
            errors_arcsec=errors,
            snr=snr,
            seed=seed + k,
        )
        detector = setup.extra_meta["detector"].lower()
        for m in sim.members:
            name = m.model.meta.filename.replace("mirifushort", detector)
            if k == 1 and not shared_pointing:
                name = name.replace("_00001_", "_00002_")
            m.model.meta.filename = name
        parts.extend(sim.members)
    return SimulatedAssociation(members=parts, product_name=product_name)
