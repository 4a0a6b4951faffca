"""Shared fixtures: small simulated associations built the way cube_build builds cubes."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest

# No test may reach a CRDS server; the step must work without one.
for _key in [k for k in os.environ if k.startswith("CRDS")]:
    del os.environ[_key]

# image_registration the way the step imports it (without the matplotlib.pyplot it never uses).
import jwst_ifualign.algorithms.registration  # noqa: F401 - imported for this side effect
from jwst_ifualign.simulate import (
    MIRI_CH1,
    NIRSPEC_G395H,
    simulate_association,
    write_association,
)

#: Small MIRI-like cubes: (nwave, ny, nx); odd spatial sizes as cube_build writes them.
MIRI_SMALL = (60, 35, 37)
#: Small NIRSpec-like cubes with even sizes (allowed, and must work).
NIRSPEC_SMALL = (60, 40, 40)


def small_association(**kwargs):
    """A 4-member association with the seed notebook's offsets, small and fast."""
    kwargs.setdefault("shape", MIRI_SMALL)
    kwargs.setdefault("snr", 30.0)
    return simulate_association(**kwargs)


@pytest.fixture(scope="session")
def miri_sim():
    return small_association()


@pytest.fixture(scope="session")
def miri_asn(tmp_path_factory, miri_sim):
    """Path of a written association of the small MIRI-like cubes (read-only for tests)."""
    folder = tmp_path_factory.mktemp("miri_asn")
    return write_association(miri_sim, folder)


def file_digests(folder):
    """{name: sha256} of every file in a folder, to prove inputs are left unchanged."""
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(Path(folder).iterdir())
        if p.is_file()
    }


def offset_errors(result_members, sim):
    """|measured - truth| per member along x and y, shape (nmember, 2)."""
    return np.array(
        [
            (r.measured.dx - m.truth_dx, r.measured.dy - m.truth_dy)
            for r, m in zip(result_members, sim.members, strict=True)
        ]
    )


__all__ = [
    "MIRI_CH1",
    "NIRSPEC_G395H",
    "MIRI_SMALL",
    "NIRSPEC_SMALL",
    "small_association",
    "file_digests",
    "offset_errors",
]
