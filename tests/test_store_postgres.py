"""The store on a real PostgreSQL server gives what SQLite gives: a scan (both scorers),
decisions, the export, the calibrated scan's final rescoring."""
from __future__ import annotations

import pytest
from scanhelp import make_dataset, make_run, oracle_predictor, plant_flip

from labelaudit.data import open_source
from labelaudit.export import export_labels
from labelaudit.scan import ScanOptions, run_scan
from labelaudit.store import Finding, ImageScore, open_db, repo


def _snapshot(url: str, run_id: int) -> tuple[list, list]:
    store = open_db(url)
    with store.session() as s:
        found = sorted((f.image.image_relpath, f.given_class, f.suggested_class, f.kind,
                        round(f.score, 6), f.area, f.bbox, f.mask_rle)
                       for f in s.query(Finding).filter(Finding.run_id == run_id))
        images = sorted((sc.image.image_relpath, round(sc.label_quality, 6), sc.n_findings)
                        for sc in s.query(ImageScore).filter(ImageScore.run_id == run_id))
    store.close()
    return found, images


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
    assert _snapshot(lite_url, lite.run_id) == _snapshot(pg, res.run_id)
    assert len(_snapshot(pg, res.run_id)[0]) > 0
    store = open_db(pg)
    with store.session() as s:
        top = repo.iter_findings(s, s.get(repo.Run, res.run_id))
        fid = next(f.id for f in top if f.image.image_relpath.endswith(f"{stem}.jpg"))
    with store.session() as s:
        repo.record_decision(s, finding_id=fid, verdict="accept", source="cli")
    out = export_labels(store, tmp_path / "fixed", run_id=res.run_id)
    store.close()
    assert out.n_findings_applied == 1 and out.n_images_changed == 1
