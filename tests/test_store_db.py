"""Opening the store: SQLite pragmas, default location, schema creation, upgrade and refusal."""
from __future__ import annotations

import sqlite3
from datetime import timezone
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, select, text

from labelaudit.store import (
    CURRENT_VERSION, Decision, Finding, ImageScore, Run, SchemaTooNewError, StoreError,
    default_db_url, open_db, repo,
)
from labelaudit.store import db as store_db
from labelaudit.store.migrations import MIGRATIONS, Migration, v1_statements
from labelaudit.store.rows import FindingRecord, ImageResult, finding_fingerprint


def test_sqlite_pragmas_are_on_for_every_connection(tmp_path):
    store = open_db(tmp_path / "a.db")
    try:
        with store.engine.connect() as c1, store.engine.connect() as c2:  # two pool connections
            for conn in (c1, c2):
                assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
                assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
                assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
                assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        assert (tmp_path / "a.db-wal").exists() or (tmp_path / "a.db").exists()
    finally:
        store.close()


def test_plain_path_url_and_parent_folders(tmp_path):
    deep = tmp_path / "runs" / "r1" / "labelaudit.db"
    with open_db(deep) as store:
        assert store.location == str(deep)
        assert store.schema_version() == CURRENT_VERSION
    assert deep.is_file()
    with open_db(f"sqlite:///{deep}") as store:  # same file through a URL string
        assert store.schema_version() == CURRENT_VERSION
    with open_db("sqlite://") as store:  # in-memory: one DB shared by all sessions
        with store.session() as s:
            run = repo.start_run(s, "train", None, {}, seed=0)
        with store.session() as s:
            assert s.get(Run, run.id) is not None


def test_default_db_url(tmp_path, monkeypatch):
    monkeypatch.delenv("LABELAUDIT_DB", raising=False)
    monkeypatch.chdir(tmp_path)
    assert default_db_url() == f"sqlite:///{tmp_path / 'labelaudit.db'}"
    run_dir = tmp_path / "run7"
    assert default_db_url(run_dir) == f"sqlite:///{run_dir / 'labelaudit.db'}"
    with open_db(default_db_url(run_dir)):
        pass
    assert (run_dir / "labelaudit.db").is_file()
    monkeypatch.setenv("LABELAUDIT_DB", "postgresql+psycopg://u:secret@db/audit")
    assert default_db_url(run_dir) == "postgresql+psycopg://u:secret@db/audit"
    assert store_db.describe(store_db.to_url(default_db_url())) == \
        "postgresql+psycopg://u:***@db/audit"


# --------------------------------------------------------------------------- migrations


def _schema(url: str) -> dict:
    """Everything about a schema that a migration could get wrong, names included."""
    eng = create_engine(url)
    conn = eng.connect()
    insp = inspect(conn)
    out = {}
    for t in sorted(insp.get_table_names()):
        out[t] = {
            "columns": [(c["name"], str(c["type"]), c["nullable"]) for c in insp.get_columns(t)],
            "pk": insp.get_pk_constraint(t)["constrained_columns"],
            # SQLite's own view of the FKs: SQLAlchemy's reflection misses ON DELETE on a
            # column-level REFERENCES (the form ALTER TABLE ADD COLUMN has to use)
            "fks": sorted((r[3], r[2], r[4], r[6]) for r in conn.exec_driver_sql(
                f"PRAGMA foreign_key_list({t})")),
            "indexes": sorted((i["name"], tuple(i["column_names"]), bool(i["unique"]))
                              for i in insp.get_indexes(t)),
            "uniques": sorted((u["name"], tuple(u["column_names"]))
                              for u in insp.get_unique_constraints(t)),
            "checks": sorted((c["name"], " ".join(c["sqltext"].split()))
                             for c in insp.get_check_constraints(t)),
        }
    conn.close()
    eng.dispose()
    return out


def _build_v1(path: Path) -> None:
    """A database exactly as labelaudit 0.1 left it, with one of everything in it."""
    con = sqlite3.connect(path)
    con.execute("PRAGMA foreign_keys=ON")
    for stmt in v1_statements():
        con.execute(stmt)
    con.executescript("""
        INSERT INTO datasets VALUES (1, 'lapa', '/data/LaPa', 11, '["bg","skin"]', NULL,
                                     '2024-05-01 10:00:00.000000');
        INSERT INTO images VALUES (1, 1, 'train', 'train/images/a.jpg', 'train/labels/a.png',
                                   'abc', 64, 48);
        INSERT INTO runs VALUES (1, 'scan', 1, '{"top": 5, "class_pixels": [7, 8], "bad_inputs": [["x.png", "unreadable"]]}', '/ckpt.pt', 'done', 3,
                                 '{"python": "3.11"}', '2024-05-01 10:01:00.000000',
                                 '2024-05-01 10:02:00.000000', NULL);
        INSERT INTO image_scores VALUES (1, 1, 1, 0.25, 1, 40, 0.8);
        INSERT INTO findings VALUES (1, 1, 1, 4, 2, 'flip', 0.9, 30, 10, 12, 6, 5, '0 30', NULL);
        INSERT INTO decisions VALUES (1, 1, NULL, 'accept', 'fiftyone',
                                      '2024-05-02 09:00:00.000000', 'clearly glasses');
        INSERT INTO decisions VALUES (2, NULL, 1, 'reject', 'cli',
                                      '2024-05-02 09:05:00.000000', NULL);
    """)
    con.commit()
    con.close()


def test_v1_database_is_upgraded_in_place_keeping_its_data(tmp_path):
    old, fresh = tmp_path / "v1.db", tmp_path / "fresh.db"
    _build_v1(old)
    assert _schema(f"sqlite:///{old}")["findings"]["columns"][-1][0] == "mask_path"

    with open_db(old) as store:
        assert store.schema_version() == CURRENT_VERSION == 7
        old_id = store.store_id
        with store.session() as s:
            versions = s.execute(text("SELECT version FROM schema_version ORDER BY version"))
            assert [v for (v,) in versions] == [1, 2, 3, 4, 5, 6, 7]
            assert s.execute(text("PRAGMA foreign_key_check")).all() == []
            run = s.get(Run, 1)
            assert (run.kind, run.status, run.seed, run.config) == ("scan", "done", 3, {"top": 5})
            assert run.progress == {"class_pixels": [7, 8], "bad_inputs": [["x.png", "unreadable"]]}
            assert run.started_at.tzinfo is timezone.utc and run.started_at.hour == 10
            score = s.scalars(select(ImageScore)).one()
            assert (score.label_quality, score.n_suspect_pixels) == (0.25, 40)
            assert score.learnt_pixels is None and s.get(Finding, 1).agreement is None
            f = s.get(Finding, 1)
            assert f.fingerprint == finding_fingerprint(1, 4, 2, (10, 12, 6, 5)) == "1:4>2@0,0"
            assert f.mask().all() and f.mask().shape == (5, 6)
            d_finding, d_image = s.get(Decision, 1), s.get(Decision, 2)
            assert d_finding.fingerprint == f.fingerprint and d_finding.note == "clearly glasses"
            assert d_image.fingerprint is None and d_image.image_id == 1
            # the migrated decision is inherited by a rescan of the same region
            rescan = repo.start_run(s, "scan", run.dataset, {}, seed=4, parent=run)
            repo.write_scan_batch(s, rescan, [ImageResult(1, 0.3, 30, [
                FindingRecord(4, 2, "flip", 0.8, 30, (11, 12, 6, 5))])])
            in_force = repo.decisions_for_run(s, rescan)
            assert [d.verdict for d in in_force.findings.values()] == ["accept"]
            assert in_force.images[1].verdict == "reject"

    with open_db(fresh) as store:
        assert len(store.store_id) == len(old_id) == 32 and store.store_id != old_id
    assert _schema(f"sqlite:///{old}") == _schema(f"sqlite:///{fresh}")


def test_failed_migration_leaves_the_database_untouched(tmp_path, monkeypatch):
    path = tmp_path / "v1.db"
    _build_v1(path)

    def half_then_fail(conn):
        MIGRATIONS[0].apply(conn)  # all of the real v2 DDL and backfill...
        raise RuntimeError("disk on fire")  # ...then a crash before the version stamp

    monkeypatch.setattr(store_db, "MIGRATIONS", (Migration(2, "boom", half_then_fail),))
    with pytest.raises(RuntimeError, match="disk on fire"):
        open_db(path)
    schema = _schema(f"sqlite:///{path}")
    assert "fingerprint" not in [c[0] for c in schema["findings"]["columns"]]  # DDL rolled back
    con = sqlite3.connect(path)
    assert con.execute("SELECT max(version) FROM schema_version").fetchone() == (1,)
    con.close()
    monkeypatch.undo()
    with open_db(path) as store:  # and the real upgrade still works afterwards
        assert store.schema_version() == CURRENT_VERSION


def test_newer_database_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "from-the-future.db"
    with open_db(path):
        pass
    con = sqlite3.connect(path)
    con.execute("INSERT INTO schema_version VALUES (99, '2030-01-01 00:00:00')")
    con.commit()
    con.close()
    with pytest.raises(SchemaTooNewError) as err:
        open_db(path)
    assert str(path) in str(err.value) and "99" in str(err.value)


def test_foreign_database_is_refused(tmp_path):
    path = tmp_path / "other.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE photos (id INTEGER)")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="not a labelaudit database"):
        open_db(path)
