"""parallel=True under an active dask.distributed client whose workers are other processes."""

import numpy as np
import pytest
from helpers import members_of, small_association

from jwst_ifualign import IFUAlignStep
from jwst_ifualign.adapter.align import AlignOptions
from jwst_ifualign.adapter.assembly import (
    combine_block,
    combine_planes,
    output_grid,
    portable_block,
    resamplers,
)
from jwst_ifualign.adapter.measurement import placement
from jwst_ifualign.testing.simulate import write_association

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    )
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


@pytest.fixture(scope="module")
def rotated_asn(tmp_path_factory):
    """4 members, the last at another position angle (a general WCS mapping, not a translation)."""
    sim = small_association()
    sim.members[3] = small_association(pa_deg=30.0).members[3]
    return write_association(sim, tmp_path_factory.mktemp("distributed"))


def test_distributed_process_workers_give_the_serial_cube(client, rotated_asn):
    serial = IFUAlignStep.call(str(rotated_asn), chunk_size=16)
    with distributed.get_task_stream(client) as stream:
        parallel = IFUAlignStep.call(str(rotated_asn), chunk_size=16, parallel=True)
    ran = [t for t in stream.data if t["key"].startswith("combine_planes")]
    assert len(ran) == 4, "the 4 blocks of 16 planes must have run on the cluster's workers"
    assert {t["worker"] for t in ran} <= set(client.scheduler_info()["workers"])
    for name in ("data", "err", "dq", "weightmap"):
        a, b = getattr(serial, name), getattr(parallel, name)
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b, err_msg=name)
    assert serial.data.dtype == np.float32


@pytest.mark.parametrize("method", ["weighted_mean", "median"])
def test_portable_block_equals_the_block_in_process(method):
    """What a worker computes from the picklable planes equals the in-process block."""
    sim = small_association()
    sim.members[3] = small_association(pa_deg=30.0).members[3]
    members = members_of(sim)
    ref = members.models[0]
    places, varies = zip(*(placement(ref, m) for m in members.models), strict=True)
    from jwst_ifualign.adapter.measurement import measure_members

    nwave = ref.data.shape[0]
    results, _ = measure_members(
        members, 0, places, AlignOptions(), (0, nwave), [(0, nwave)], np.arange(nwave)
    )
    origin, shape = output_grid(ref, members, results, "reference")
    per_member = resamplers(ref, members, places, varies, results, origin, shape)
    assert any(r.footprint is not None for r in per_member)  # the rotated member
    direct = combine_block(members, per_member, 20, 37, method=method, kernel="bicubic",
                           out_shape=shape)
    planes, portable = portable_block(members, per_member, 20, 37)
    moved = combine_planes(planes, portable, method=method, kernel="bicubic", out_shape=shape)
    for a, b in zip(direct, moved, strict=True):
        np.testing.assert_array_equal(a, b)
