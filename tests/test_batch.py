"""ifualign-batch: many associations on dask.distributed, outputs exactly as strun writes them."""

import json
import os
from concurrent.futures import ThreadPoolExecutor

import asdf
import numpy as np
import pytest
from astropy.io import fits
from helpers import run_strun, small_association

from jwst_ifualign.testing.simulate import write_association

pytest.importorskip("distributed")
import dask  # noqa: E402 - after the skip (distributed brings it)
from distributed import Client  # noqa: E402

from jwst_ifualign.scripts.batch import local_cluster, main  # noqa: E402

N_ASSOCIATIONS = 8
#: A step option given on the command line; the method comes from a parameter file.
STEP_ARGS = ["--error_chunks=3"]


@pytest.fixture(scope="module")
def parameter_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("config") / "my_ifu_align.asdf"
    tree = {
        "class": "jwst_ifualign.step.IFUAlignStep",
        "name": "ifu_align",
        "parameters": {"method": "cross_correlation"},
    }
    with asdf.AsdfFile(tree) as af:
        af.write_to(path)
    return path


@pytest.fixture(scope="module")
def associations(tmp_path_factory):
    """8 small associations, each in its own folder (their members share file names)."""
    root = tmp_path_factory.mktemp("batch")
    paths = []
    for k in range(N_ASSOCIATIONS):
        sim = small_association(
            n_members=3, seed=10 + k, shape=(40, 35, 37), product_name=f"target{k}"
        )
        paths.append(write_association(sim, root / f"obs{k}"))
    return paths


def header_without_dates(header):
    return {k: v for k, v in header.items() if k not in ("DATE", "CHECKSUM", "DATASUM")}


def assert_same_outputs(a, b):
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    for name in names:
        pa, pb = a / name, b / name
        if name.endswith(".fits"):
            with fits.open(pa) as fa, fits.open(pb) as fb:
                assert [h.name for h in fa] == [h.name for h in fb]
                for ha, hb in zip(fa, fb, strict=True):
                    assert header_without_dates(ha.header) == header_without_dates(hb.header)
                    if ha.name == "ASDF":
                        continue  # the embedded tree carries the creation date
                    if ha.data is not None and not isinstance(ha.data, fits.FITS_rec):
                        where = f"{name}[{ha.name}]"
                        np.testing.assert_array_equal(ha.data, hb.data, err_msg=where)
        elif name.endswith(".ecsv"):
            assert pa.read_text() == pb.read_text(), name
        elif name.endswith(".asdf"):
            with asdf.open(pa) as ta, asdf.open(pb) as tb:
                for key in ("units", "filename", "raoffset", "decoffset"):
                    assert ta.tree[key] == tb.tree[key], (name, key)


def test_batch_writes_what_strun_writes_and_goes_on_after_a_failure(
    associations, parameter_file, tmp_path, capsys
):
    # A ninth association whose member is missing: reported, the others go on.
    bad = tmp_path / "broken" / "asn.json"
    bad.parent.mkdir()
    tree = json.loads(associations[0].read_text())
    tree["products"][0]["name"] = "broken"
    bad.write_text(json.dumps(tree))  # its members are not next to it

    batch_out = tmp_path / "batch_out"
    status = main(
        [*(str(p.parent) for p in associations), str(bad), f"--output_dir={batch_out}",
         "--workers=2", "--no-progress", f"--config={parameter_file}", *STEP_ARGS]
    )
    report = capsys.readouterr().out
    assert status == 1
    assert "8 of 9 associations ok" in report
    rows = {  # association (relative to the inputs' common folder) -> its summary row
        "/".join(line.split()[0].split("/")[-2:]): line
        for line in report.splitlines()
        if "asn.json" in line
    }
    assert sorted(rows) == sorted([f"obs{k}/asn.json" for k in range(8)] + ["broken/asn.json"])
    assert all(rows[f"obs{k}/asn.json"].split()[1] == "3" for k in range(8))  # members
    assert all(rows[f"obs{k}/asn.json"].rstrip().endswith("ok") for k in range(8))
    assert "failed: InputError" in rows["broken/asn.json"]
    assert "does not exist" in rows["broken/asn.json"]

    strun_out = tmp_path / "strun_out"
    strun_out.mkdir()
    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(
            lambda p: run_strun(
                [str(parameter_file), str(p), f"--output_dir={strun_out}", *STEP_ARGS],
                cwd=tmp_path,
            ),
            associations,
        ))
    assert all(r.returncode == 0 for r in runs), [r.stderr[-500:] for r in runs]
    assert len(list(strun_out.glob("*_ifualign.fits"))) == N_ASSOCIATIONS
    assert_same_outputs(batch_out, strun_out)
    with fits.open(next(batch_out.glob("*_ifualign.fits"))) as f:
        tree = f["ASDF"].data.tobytes()
    assert b"cross_correlation" in tree and b"error_chunks: 3" in tree  # both reached the step


def test_batch_refuses_associations_that_would_overwrite_each_other(associations, tmp_path):
    twin = tmp_path / "twin"
    twin.mkdir()
    (twin / "asn.json").write_text(associations[0].read_text())
    with pytest.raises(SystemExit):
        main([str(associations[0]), str(twin / "asn.json"), f"--output_dir={tmp_path / 'o'}"])
    assert not (tmp_path / "o").exists()


def test_local_cluster_workers_start_without_dasks_malloc_trim_and_profiler(monkeypatch):
    # dask's default worker environment sets MALLOC_TRIM_THRESHOLD_ (which made an association
    # 1.3-1.6x slower) and samples every task with its profiler; ifualign-batch's cluster has
    # neither. A variable left in this process by another cluster would be inherited: clear it.
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    assert dask.config.get("distributed.nanny.pre-spawn-environ")["MALLOC_TRIM_THRESHOLD_"]
    assert dask.config.get("distributed.worker.profile.enabled") is True
    with local_cluster(1) as cluster, Client(cluster) as client:
        seen = client.run(
            lambda: (os.environ.get("MALLOC_TRIM_THRESHOLD_"),
                     dask.config.get("distributed.worker.profile.enabled"))
        )
    assert list(seen.values()) == [(None, False)]
    assert dask.config.get("distributed.worker.profile.enabled") is True  # scoped to the cluster
