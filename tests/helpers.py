"""Builders and checks shared by the tests (imported as ``helpers``; fixtures are in conftest)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from jwst_ifualign.adapter.inputs import Members
from jwst_ifualign.testing.simulate import MIRI_CH1, NIRSPEC_G395H, simulate_association

__all__ = [
    "MIRI_CH1",
    "NIRSPEC_G395H",
    "MIRI_SMALL",
    "NIRSPEC_SMALL",
    "STRUN",
    "small_association",
    "members_of",
    "file_digests",
    "offset_errors",
    "run_strun",
]

#: Small MIRI-like cubes: (nwave, ny, nx); odd spatial sizes as cube_build writes them.
MIRI_SMALL = (60, 35, 37)
#: Small NIRSpec-like cubes with even sizes (allowed, and must work).
NIRSPEC_SMALL = (60, 40, 40)

#: The strun of the environment running the tests.
STRUN = str(Path(sys.executable).with_name("strun"))


def small_association(**kwargs):
    """A 4-member association with the seed notebook's offsets, small and fast."""
    kwargs.setdefault("shape", MIRI_SMALL)
    kwargs.setdefault("snr", 30.0)
    return simulate_association(**kwargs)


def members_of(sim):
    """The open members of a simulated association, as :func:`align_members` takes them."""
    models = [m.model for m in sim.members]
    return Members(models, [m.meta.filename for m in models], "test", [False] * len(models))


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


def run_strun(args, cwd):
    """Run strun with no CRDS variable in the environment; return the completed process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRDS")}
    env.pop("STPIPE_DISABLE_CRDS_STEPPARS", None)
    return subprocess.run(
        [STRUN, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
