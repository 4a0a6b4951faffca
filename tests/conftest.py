"""Shared fixtures: small simulated associations built the way cube_build builds cubes.

Builders and checks used by several test modules are in ``helpers.py``.
"""

from __future__ import annotations

import os

import pytest

# No test may reach a CRDS server; the step must work without one.
for _key in [k for k in os.environ if k.startswith("CRDS")]:
    del os.environ[_key]

from helpers import small_association  # noqa: E402 - after the CRDS variables are gone

from jwst_ifualign.testing.simulate import write_association  # noqa: E402


@pytest.fixture(scope="session")
def miri_sim():
    return small_association()


@pytest.fixture(scope="session")
def miri_asn(tmp_path_factory, miri_sim):
    """Path of a written association of the small MIRI-like cubes (read-only for tests)."""
    folder = tmp_path_factory.mktemp("miri_asn")
    return write_association(miri_sim, folder)
