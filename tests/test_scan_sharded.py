"""`torchrun --nproc_per_node 2 -m labelaudit scan`: two ranks score disjoint shards into one
store and give exactly the findings of a one-process scan (SQLite and PostgreSQL)."""
from __future__ import annotations

import dataclasses

import pytest
from scanhelp import make_dataset, make_run, scan_snapshot, torchrun

from labelaudit.scan import ScanOptions, run_scan
from labelaudit.store import Run, open_db


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_two_ranks_give_the_findings_of_one(tmp_path, request, backend):
    root = make_dataset(tmp_path / "data", n=30, size=64)
    run = make_run(tmp_path / "run", root)  # an untrained network: many disagreements to find
    one = run_scan(ScanOptions(run_dir=run, db_url=str(tmp_path / "one.db"), batch_size=1,
                               progress=False))
    db = f"sqlite:///{tmp_path / 'two.db'}" if backend == "sqlite" else request.getfixturevalue("pg_url")
    proc = torchrun("scan", "--run-dir", str(run), "--db", db, "--batch-size", "1", "--top", "2")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert proc.stdout.count("images scored") == 1  # rank 0 alone reports, for both ranks
    assert "24 images scored" in proc.stdout
    store = open_db(db)
    with store.session() as s:
        run_id = s.query(Run.id).filter(Run.kind == "scan").one()[0]
        progress = s.get(Run, run_id).progress
    store.close()
    assert sorted(progress["ranks"]) == ["0", "1"]  # each rank kept its own totals
    mine, theirs = scan_snapshot(str(tmp_path / "one.db"), one.run_id), scan_snapshot(db, run_id)
    assert len(mine[1]) == 24 and len(mine[0]) > 0
    assert theirs == mine


@pytest.mark.slow
def test_two_rank_predict_writes_the_one_process_maps(tmp_path):
    """`torchrun ... predict`: rank r writes shard r of n; together the one-process folder."""
    import numpy as np

    from labelaudit.scan.maps_out import write_probability_maps

    root = make_dataset(tmp_path / "d", n=12, size=64)
    run = make_run(tmp_path / "run", root)
    write_probability_maps(ScanOptions(run_dir=run, progress=False), tmp_path / "one")
    proc = torchrun("predict", "--run-dir", str(run), "--out", str(tmp_path / "two"), "--no-with-val")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    one = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*.npz"))
    two = sorted(p.relative_to(tmp_path / "two") for p in (tmp_path / "two").rglob("*.npz"))
    assert one == two and len(one) > 4
    for rel in one:
        with np.load(tmp_path / "one" / rel) as a, np.load(tmp_path / "two" / rel) as b:
            # one thread per rank vs two here: float sums differ in their last bits
            assert np.abs(a["probs"].astype(np.float32) - b["probs"]).max() < 2e-3, rel


def test_release_ends_only_the_process_group_setup_made(tmp_path, monkeypatch):
    """A group left to the interpreter's exit can abort a torchrun rank (gloo, SIGABRT), so a
    scan releases the group setup_distributed made; a caller's own group is left alone."""
    import torch.distributed as dist

    from labelaudit.distributed import release, setup_distributed

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        monkeypatch.setenv("WORLD_SIZE", "2")
        monkeypatch.setenv("RANK", "0")
        theirs = setup_distributed()
        assert theirs.enabled and not theirs.owns_group
        release(theirs)
        assert dist.is_initialized()  # the caller's group stays
        release(dataclasses.replace(theirs, owns_group=True))
        assert not dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
