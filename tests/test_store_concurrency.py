"""Several writers on one store at once (SQLite and a real PostgreSQL server): a scan and a
process recording decisions."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest
from scanhelp import make_dataset, make_run, oracle_predictor, plant_flip

from labelaudit.data import open_source
from labelaudit.scan import ScanOptions, run_scan
from labelaudit.store import Decision, Finding, open_db

WRITER = r"""
import sys, time
from labelaudit.store import open_db, repo
db, finding, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
store = open_db(db)
print("ready", flush=True)
for i in range(n):
    with store.session() as s:
        repo.record_decision(s, finding_id=finding, verdict="reject", source="cli", note=str(i))
    time.sleep(0.01)
print("done", flush=True)
"""


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_scan_and_a_decision_writer_share_one_store(tmp_path, request, backend):
    root = make_dataset(tmp_path / "data", n=24, size=64)
    plant_flip(root, open_source("synthetic", root).records("train")[1].id, 6, 10)
    run = make_run(tmp_path / "run", root)
    db = str(tmp_path / "shared.db") if backend == "sqlite" else request.getfixturevalue("pg_url")
    oracle = oracle_predictor(root)
    first = run_scan(ScanOptions(run_dir=run, db_url=db, progress=False, scorer="rules"), predict=oracle)
    store = open_db(db)
    with store.session() as s:
        fid = s.query(Finding.id).filter(Finding.run_id == first.run_id).first()[0]
    writer = subprocess.Popen([sys.executable, "-c", WRITER, db, str(fid), "150"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "ready"
    t0 = time.perf_counter()
    second = run_scan(ScanOptions(run_dir=run, db_url=db, progress=False, scorer="rules",
                                  batch_size=1, resume=False), predict=oracle)
    overlap = writer.poll() is None  # the writer was still writing when the scan ended
    out, err = writer.communicate(timeout=120)
    assert writer.returncode == 0, err
    assert overlap, f"no overlap: the scan took {time.perf_counter() - t0:.1f} s"
    assert second.n_scored_now == first.n_scored_now
    with store.session() as s:
        assert s.query(Decision).filter(Decision.finding_id == fid).count() == 150
        assert s.query(Finding).filter(Finding.run_id == second.run_id).count() == \
            s.query(Finding).filter(Finding.run_id == first.run_id).count()
    store.close()
