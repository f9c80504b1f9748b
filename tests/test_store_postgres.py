"""The store on a real PostgreSQL server gives what SQLite gives: a scan (both scorers),
decisions, the export, the calibrated scan's final rescoring."""
from __future__ import annotations

import pytest
from scanhelp import make_dataset, make_run, oracle_predictor, plant_flip, scan_snapshot

from labelaudit.data import open_source
from labelaudit.export import export_labels
from labelaudit.scan import ScanOptions, run_scan
from labelaudit.store import open_db, repo


@pytest.mark.slow
@pytest.mark.parametrize("scorer", ["rules", "calibrated"])
def test_postgres_store_matches_sqlite(tmp_path, pg_url, scorer):
    root = make_dataset(tmp_path / "data", n=30, size=64)
    stem = open_source("synthetic", root).records("train")[3].id
    plant_flip(root, stem, 6, 10)
    run = make_run(tmp_path / "run", root)
    oracle = oracle_predictor(root)
    results = {}
    for name, url in (("sqlite", f"sqlite:///{tmp_path / 'a.db'}"), ("postgres", pg_url)):
        res = run_scan(ScanOptions(run_dir=run, db_url=url, progress=False, scorer=scorer), predict=oracle)
        results[name] = (url, res)
    (lite_url, lite), (pg, res) = results["sqlite"], results["postgres"]
    assert pg.startswith("postgresql+psycopg://")
    assert scan_snapshot(lite_url, lite.run_id) == scan_snapshot(pg, res.run_id)
    assert len(scan_snapshot(pg, res.run_id)[0]) > 0
    maps = []
    for url, r in ((lite_url, lite), (pg, res)):  # the maps' bytes come back from BYTEA as stored
        with open_db(url) as st, st.session() as s:
            scan = s.get(repo.Run, r.run_id)
            by_path = {sc.image.image_relpath: sc.image_id for sc in repo.top_images(s, scan, 100)}
            stored = repo.scan_map_pngs(s, scan, list(by_path.values()))
            maps.append({rel: stored[i] for rel, i in by_path.items()})
    assert len(maps[0]) == 24 and maps[0] == maps[1]
    store = open_db(pg)
    with store.session() as s:
        top = repo.iter_findings(s, s.get(repo.Run, res.run_id))
        fid = next(f.id for f in top if f.image.image_relpath.endswith(f"{stem}.jpg"))
    with store.session() as s:
        repo.record_decision(s, finding_id=fid, verdict="accept", source="cli")
    out = export_labels(store, tmp_path / "fixed", run_id=res.run_id)
    store.close()
    assert out.n_findings_applied == 1 and out.n_images_changed == 1


def test_many_processes_opening_a_new_postgres_store_create_it_once(pg_url):
    import subprocess
    import sys

    code = "import sys; from labelaudit.store import open_db; open_db(sys.argv[1]).close()"
    procs = [subprocess.Popen([sys.executable, "-c", code, pg_url], stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), errors
    store = open_db(pg_url)
    with store.session() as s:
        from sqlalchemy import text

        assert s.execute(text("SELECT count(*) FROM schema_version")).scalar() == 1
    store.close()


def test_postgres_store_refuses_a_newer_schema_and_a_foreign_database(pg_url):
    from sqlalchemy import create_engine, text

    from labelaudit.store import SchemaTooNewError, StoreError

    open_db(pg_url).close()
    eng = create_engine(pg_url)
    with eng.begin() as c:
        c.execute(text("INSERT INTO schema_version VALUES (99, '2030-01-01 00:00:00')"))
    with pytest.raises(SchemaTooNewError, match="99"):
        open_db(pg_url)
    with eng.begin() as c:
        c.execute(text("DROP SCHEMA public CASCADE"))
        c.execute(text("CREATE SCHEMA public"))
        c.execute(text("CREATE TABLE photos (id INTEGER)"))
    eng.dispose()
    with pytest.raises(StoreError, match="not a labelaudit database"):
        open_db(pg_url)


def _columns(url: str) -> dict[str, list[tuple]]:
    """Each table's columns (name, type, nullable) and indexes (name, columns)."""
    from sqlalchemy import create_engine, inspect

    eng = create_engine(url)
    insp = inspect(eng)
    out = {t: [(c["name"], str(c["type"]), c["nullable"]) for c in insp.get_columns(t)]
           + sorted((i["name"], tuple(i["column_names"])) for i in insp.get_indexes(t))
           for t in sorted(insp.get_table_names())}
    eng.dispose()
    return out


def test_a_v3_postgres_store_is_upgraded_in_place(pg_url):
    """PostgreSQL stores exist since schema v3: every later step must run there too."""
    from sqlalchemy import create_engine, text

    from labelaudit.store import CURRENT_VERSION

    open_db(pg_url).close()
    want = _columns(pg_url)
    eng = create_engine(pg_url)
    with eng.begin() as c:  # the store as schema v3 made it
        c.execute(text("ALTER TABLE findings DROP COLUMN agreement"))
        c.execute(text("ALTER TABLE image_scores DROP COLUMN learnt_pixels"))
        c.execute(text("DROP TABLE store_meta"))
        c.execute(text("DROP INDEX ix_findings_run_pair"))
        c.execute(text("DROP TABLE corrections"))
        c.execute(text("DROP TABLE scan_maps"))
        c.execute(text("DELETE FROM schema_version"))
        c.execute(text("INSERT INTO schema_version VALUES (3, '2026-12-01 00:00:00')"))
    eng.dispose()
    assert _columns(pg_url) != want
    with open_db(pg_url) as store:
        assert store.schema_version() == CURRENT_VERSION == 7
        assert len(store.store_id) == 32
    assert _columns(pg_url) == want
