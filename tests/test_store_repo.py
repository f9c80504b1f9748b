"""The store functions that scan / review / export call, on a real SQLite file."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from labelaudit.store import (
    Dataset, Decision, Export, Finding, FindingRecord, Image, ImageResult, ImageRow, ImageScore,
    Run, open_db, repo,
)

CLASSES = ["background", "skin", "l_eye", "r_eye", "eye_g"]


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path):
    """Every store test runs on SQLite and on a real PostgreSQL server (tests/pgserver.py)."""
    return str(tmp_path / "audit.db") if request.param == "sqlite" else request.getfixturevalue("pg_url")


@pytest.fixture
def store(db_url):
    st = open_db(db_url)
    yield st
    st.close()


@pytest.fixture
def s(store):
    with store.session() as session:
        yield session


def _dataset(s, tmp_path, n=4):
    ds = repo.get_or_create_dataset(s, "lapa", tmp_path / "LaPa", CLASSES)
    ids = repo.upsert_images(s, ds, [
        ImageRow("train", f"train/images/{i}.jpg", f"train/labels/{i}.png", f"sha{i}", 64, 48)
        for i in range(n)])
    return ds, [ids[f"train/images/{i}.jpg"] for i in range(n)]


def _box_mask(h, w, box):
    """(h, w) frame with the (x, y, w, h) box set."""
    m = np.zeros((h, w), bool)
    x, y, bw, bh = box
    m[y:y + bh, x:x + bw] = True
    return m


def _count(s, model):
    return s.scalar(select(func.count()).select_from(model))


# --------------------------------------------------------------------------- round trips


def test_every_table_round_trips_through_a_fresh_connection(store, tmp_path, db_url):
    with store.session() as s:
        ds = repo.get_or_create_dataset(s, "celebamask_hq", tmp_path / "CM", CLASSES,
                                        merge_order="glasses_on_top")
        ids = repo.upsert_images(s, ds, [ImageRow("val", "img/1.jpg", "mask/1.png", "f" * 64,
                                                  1024, 512)])
        train = repo.start_run(s, "train", ds, {"lr": 1e-3, "root": tmp_path}, seed=7,
                               checkpoint=tmp_path / "best.pt")
        repo.finish_run(s, train, "done")
        scan = repo.start_run(s, "scan", ds, {"top": 5}, seed=7, parent=train)
        frame = np.zeros((512, 1024), bool)
        frame[100:103, 200:204] = True
        frame[101, 200] = False
        repo.write_scan_batch(s, scan, [ImageResult(ids["img/1.jpg"], 0.125, 42, [
            FindingRecord(3, 4, "flip", 0.75, 11, (200, 100, 4, 3), frame)],
            mean_self_confidence=0.5)])
        f_id = s.scalars(select(Finding.id)).one()
        repo.record_decision(s, finding_id=f_id, verdict="relabel", source="fiftyone",
                             note="glasses?")
        repo.record_export(s, scan, out_dir=tmp_path / "fixed", policy="accepted",
                           n_images_changed=1, n_pixels_changed=11, manifest_sha256="9" * 64)
        repo.finish_run(s, scan, "interrupted")

    with open_db(db_url) as again, again.session() as s:
        ds = s.scalars(select(Dataset)).one()
        assert (ds.kind, ds.root, ds.num_classes) == ("celebamask_hq", str(tmp_path / "CM"), 5)
        assert ds.class_names == CLASSES and ds.merge_order == "glasses_on_top"
        assert ds.created_at.tzinfo is timezone.utc
        im = s.scalars(select(Image)).one()
        assert (im.split, im.image_relpath, im.label_relpath, im.label_sha256, im.width,
                im.height) == ("val", "img/1.jpg", "mask/1.png", "f" * 64, 1024, 512)
        train, scan = s.scalars(select(Run).order_by(Run.id)).all()
        assert train.config == {"lr": 1e-3, "root": str(tmp_path)}
        assert train.checkpoint == str(tmp_path / "best.pt") and train.seed == 7
        assert train.status == "done" and train.finished_at >= train.started_at
        assert set(train.versions) == {"python", "torch", "labelaudit"}
        assert (scan.kind, scan.status, scan.parent_run_id) == ("scan", "interrupted", train.id)
        sc = s.scalars(select(ImageScore)).one()
        assert (sc.label_quality, sc.n_findings, sc.n_suspect_pixels,
                sc.mean_self_confidence) == (0.125, 1, 42, 0.5)
        f = s.scalars(select(Finding)).one()
        assert (f.given_class, f.suggested_class, f.kind, f.score, f.area, f.bbox) == \
            (3, 4, "flip", 0.75, 11, (200, 100, 4, 3))
        assert f.mask_rle == "0 4 1 7"  # cropped to the bbox, row-major
        np.testing.assert_array_equal(f.mask((512, 1024)), frame)
        assert f.fingerprint == f"{im.id}:3>4@{202 // 32},{101 // 32}"
        d = s.scalars(select(Decision)).one()
        assert (d.finding_id, d.verdict, d.source, d.note, d.fingerprint) == \
            (f.id, "relabel", "fiftyone", "glasses?", f.fingerprint)
        ex = s.scalars(select(Export)).one()
        assert (ex.run_id, ex.out_dir, ex.policy, ex.n_images_changed, ex.n_pixels_changed,
                ex.manifest_sha256) == (scan.id, str(tmp_path / "fixed"), "accepted", 1, 11,
                                        "9" * 64)
        assert repo.exports_for_run(s, scan) == [ex]


def test_dataset_identity(s, tmp_path):
    a = repo.get_or_create_dataset(s, "lapa", tmp_path / "LaPa", CLASSES)
    assert repo.get_or_create_dataset(s, "lapa", tmp_path / "x" / ".." / "LaPa", CLASSES).id == a.id
    other = repo.get_or_create_dataset(s, "lapa", tmp_path / "LaPa", CLASSES, merge_order="official")
    assert other.id != a.id
    with pytest.raises(ValueError, match="stored with classes"):
        repo.get_or_create_dataset(s, "lapa", tmp_path / "LaPa", CLASSES[:3])


def test_upsert_images_updates_in_place(s, tmp_path):
    ds, ids = _dataset(s, tmp_path, n=3)
    again = repo.upsert_images(s, ds, [
        ImageRow("train", "train/images/1.jpg", "train/labels/1.png", "changed"),
        ImageRow("train", "train/images/9.jpg", "train/labels/9.png")])
    assert again["train/images/1.jpg"] == ids[1]
    assert again["train/images/9.jpg"] not in ids
    assert _count(s, Image) == 4
    im = s.get(Image, ids[1])
    assert (im.label_sha256, im.width, im.height) == ("changed", 64, 48)  # size kept
    with pytest.raises(ValueError, match="twice"):
        repo.upsert_images(s, ds, [ImageRow("train", "a", "b"), ImageRow("val", "a", "b")])


def test_check_constraints_guard_the_enumerations(s):
    s.add(Run(kind="bogus", config={}, versions={}))
    with pytest.raises(IntegrityError, match="ck_runs_kind"):
        s.flush()
    s.rollback()
    with pytest.raises(ValueError, match="run kind"):
        repo.start_run(s, "bogus", None, {}, seed=0)


# --------------------------------------------------------------------------- scan batches


def _results(ids, qualities):
    return [ImageResult(i, q, 10, [FindingRecord(2, 4, "flip", 1 - q, 6, (1, 1, 3, 2)),
                                   FindingRecord(1, 0, "spurious", 0.5 * (1 - q), 4, (9, 9, 2, 2))])
            for i, q in zip(ids, qualities)]


def test_write_scan_batch_is_idempotent_and_resumable(s, tmp_path):
    ds, ids = _dataset(s, tmp_path, n=4)
    run = repo.start_run(s, "scan", ds, {}, seed=0)
    assert repo.write_scan_batch(s, run, _results(ids[:2], [0.2, 0.4])) == 2
    assert repo.scored_image_ids(s, run) == set(ids[:2])
    # a resumed scan re-sends the first batch (different numbers, even) and then the next one
    assert repo.write_scan_batch(s, run, _results(ids[:2], [0.9, 0.9])) == 0
    assert repo.write_scan_batch(s, run, _results(ids[1:], [0.9, 0.6, 0.8])) == 2
    assert _count(s, ImageScore) == 4 and _count(s, Finding) == 8
    assert s.get(ImageScore, 1).label_quality == 0.2  # the first write stands
    assert repo.scored_image_ids(s, run) == set(ids)
    other = repo.start_run(s, "scan", ds, {}, seed=1)
    assert repo.scored_image_ids(s, other) == set()


def test_a_batch_records_the_label_frame_of_images_that_have_none(s, tmp_path):
    ds = repo.get_or_create_dataset(s, "lapa", tmp_path / "LaPa", CLASSES)
    ids = repo.upsert_images(s, ds, [ImageRow("train", "train/images/a.jpg", "train/labels/a.png"),
                                     ImageRow("train", "train/images/b.jpg", "train/labels/b.png",
                                              None, 64, 48)])
    a, b = ids["train/images/a.jpg"], ids["train/images/b.jpg"]
    run = repo.start_run(s, "scan", ds, {}, seed=0)
    repo.write_scan_batch(s, run, _results([a, b], [0.2, 0.4]), frames={a: (30, 40), b: (10, 20)})
    s.expire_all()
    assert (s.get(Image, a).height, s.get(Image, a).width) == (30, 40)
    assert (s.get(Image, b).height, s.get(Image, b).width) == (48, 64)  # kept: it had one


def test_a_batch_is_one_transaction(s, tmp_path):
    ds, ids = _dataset(s, tmp_path, n=2)
    run = repo.start_run(s, "scan", ds, {}, seed=0)
    bad = _results(ids, [0.3, 0.5])
    bad[1].findings[0].score = 1.5
    with pytest.raises(ValueError, match="score"):
        repo.write_scan_batch(s, run, bad)
    assert repo.scored_image_ids(s, run) == set() and _count(s, Finding) == 0
    with pytest.raises(ValueError, match="scan run"):
        repo.write_scan_batch(s, repo.start_run(s, "train", ds, {}, seed=0), _results(ids, [0, 0]))


def test_top_images_lowest_quality_first(s, tmp_path):
    ds, ids = _dataset(s, tmp_path, n=4)
    run = repo.start_run(s, "scan", ds, {}, seed=0)
    repo.write_scan_batch(s, run, _results(ids, [0.9, 0.1, 0.5, 0.3]))
    top = repo.top_images(s, run, 3)
    assert [t.image_id for t in top] == [ids[1], ids[3], ids[2]]
    assert top[0].image.image_relpath == "train/images/1.jpg"


def test_findings_queries_order_and_filter(s, tmp_path):
    ds, ids = _dataset(s, tmp_path, n=3)
    run = repo.start_run(s, "scan", ds, {}, seed=0)
    repo.write_scan_batch(s, run, _results(ids, [0.9, 0.1, 0.5]))
    assert [f.score for f in repo.findings_for_image(s, run, ids[1])] == [0.9, 0.45]
    scores = [f.score for f in repo.iter_findings(s, run, batch_size=2)]
    assert scores == sorted(scores, reverse=True) and len(scores) == 6
    assert [round(f.score, 2) for f in repo.iter_findings(s, run, min_score=0.45)] == \
        [0.9, 0.5, 0.45]


def test_findings_of_many_images_grouped_sorted_and_read_by_the_image_index(store, s, tmp_path, db_url):
    """One query per 500 images, each image's findings most suspicious first; on SQLite the
    (run_id, image_id) index answers it (with an ORDER BY on the score the planner walked every
    finding of the run for each image: the 100k review build took 45 minutes)."""
    from sqlalchemy import event

    ds, ids = _dataset(s, tmp_path, n=4)
    run = repo.start_run(s, "scan", ds, {}, seed=0)
    repo.write_scan_batch(s, run, _results(ids[:3], [0.9, 0.1, 0.5]))
    seen: list[tuple[str, object]] = []

    def keep(conn, cursor, statement, params, context, executemany):
        if "FROM findings" in statement:
            seen.append((statement, params))

    event.listen(store.engine, "before_cursor_execute", keep)
    try:
        got = repo.findings_for_images(s, run, [ids[1], ids[3], ids[0]])
    finally:
        event.remove(store.engine, "before_cursor_execute", keep)
    assert list(got) == [ids[1], ids[3], ids[0]]
    assert [round(f.score, 2) for f in got[ids[1]]] == [0.9, 0.45] and got[ids[3]] == []
    assert {f.image_id for f in got[ids[0]]} == {ids[0]} and len(got[ids[0]]) == 2
    assert len(seen) == 1
    if not db_url.startswith("postgres"):
        statement, params = seen[0]
        with store.engine.connect() as c:
            plan = " ".join(str(r[-1]) for r in c.exec_driver_sql("EXPLAIN QUERY PLAN " + statement,
                                                                  params).fetchall())
        assert "ix_findings_run_image" in plan, plan


def test_confusion_pairs_on_hand_made_findings(s, tmp_path):
    ds, ids = _dataset(s, tmp_path, n=2)
    run = repo.start_run(s, "scan", ds, {}, seed=0)
    f = FindingRecord
    repo.write_scan_batch(s, run, [
        ImageResult(ids[0], 0.5, 0, [f(2, 4, "flip", 0.9, 30, (0, 0, 6, 5)),
                                     f(3, 4, "flip", 0.8, 25, (10, 0, 5, 5)),
                                     f(1, 0, "spurious", 0.3, 7, (20, 20, 7, 1))]),
        ImageResult(ids[1], 0.5, 0, [f(2, 4, "flip", 0.7, 12, (0, 0, 4, 3)),
                                     f(0, 1, "missing", 0.6, 7, (5, 5, 7, 1)),
                                     f(1, 0, "boundary", 0.2, 9, (30, 30, 3, 3))]),
    ])
    assert repo.confusion_pairs(s, run) == [(2, 4, 2, 42), (1, 0, 2, 16), (3, 4, 1, 25),
                                            (0, 1, 1, 7)]
    assert repo.confusion_pairs(s, repo.start_run(s, "scan", ds, {}, seed=1)) == []
    assert [(x.image_id, x.score) for x in repo.pair_findings(s, run, 2, 4)] == [(ids[0], 0.9), (ids[1], 0.7)]
    assert [x.score for x in repo.pair_findings(s, run, 1, 0, limit=1)] == [0.3]
    assert repo.pair_findings(s, run, 4, 2) == []


def test_latest_run(s, tmp_path):
    ds, _ = _dataset(s, tmp_path, n=1)
    assert repo.latest_run(s, "scan") is None
    a = repo.start_run(s, "scan", ds, {}, seed=0)
    repo.finish_run(s, a, "done")
    b = repo.start_run(s, "scan", ds, {}, seed=0)
    repo.start_run(s, "train", ds, {}, seed=0)
    assert repo.latest_run(s, "scan").id == b.id
    assert repo.latest_run(s, "scan", status="done").id == a.id


# --------------------------------------------------------------------------- cascades


def test_cascade_delete(s, tmp_path):
    ds, ids = _dataset(s, tmp_path, n=2)
    run = repo.start_run(s, "scan", ds, {}, seed=0)
    repo.write_scan_batch(s, run, _results(ids, [0.2, 0.4]))
    f = repo.findings_for_image(s, run, ids[0])[0]
    fingerprint = f.fingerprint
    kept = repo.record_decision(s, finding_id=f.id, verdict="accept", source="cli")
    repo.record_decision(s, image_id=ids[1], verdict="reject", source="cli")
    repo.record_export(s, run, out_dir="o", policy="accepted", n_images_changed=1,
                       n_pixels_changed=6, manifest_sha256="0" * 64)

    s.delete(run)
    s.commit()
    s.expire_all()
    assert _count(s, ImageScore) == _count(s, Finding) == _count(s, Export) == 0
    d = s.get(Decision, kept.id)  # the decision outlives its finding, by fingerprint
    assert d.finding_id is None and d.fingerprint == fingerprint

    train = repo.start_run(s, "train", ds, {}, seed=0)
    s.execute(delete(Dataset).where(Dataset.id == ds.id))  # Core delete: the DB cascades
    s.commit()
    s.expire_all()
    assert _count(s, Image) == 0
    assert _count(s, Decision) == 1  # the image decision went with its image
    assert s.get(Run, train.id).dataset_id is None  # runs stay as history


# --------------------------------------------------------------------------- decisions


def test_latest_decision_wins(s, tmp_path):
    ds, ids = _dataset(s, tmp_path, n=2)
    run = repo.start_run(s, "scan", ds, {}, seed=0)
    repo.write_scan_batch(s, run, _results(ids, [0.2, 0.4]))
    f = repo.findings_for_image(s, run, ids[0])[0]
    t0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
    repo.record_decision(s, finding_id=f.id, verdict="reject", source="cli", decided_at=t0)
    repo.record_decision(s, finding_id=f.id, verdict="accept", source="fiftyone",
                         decided_at=t0 + timedelta(hours=1))
    repo.record_decision(s, finding_id=f.id, verdict="relabel", source="cli",
                         decided_at=t0 - timedelta(hours=1))  # late sync of an older tag
    repo.record_decision(s, image_id=ids[1], verdict="reject", source="cli")
    got = repo.decisions_for_run(s, run)
    assert {k: d.verdict for k, d in got.findings.items()} == {f.id: "accept"}
    assert {k: d.verdict for k, d in got.images.items()} == {ids[1]: "reject"}
    with pytest.raises(ValueError, match="exactly one"):
        repo.record_decision(s, finding_id=f.id, image_id=ids[0], verdict="accept", source="cli")
    with pytest.raises(ValueError, match="verdict"):
        repo.record_decision(s, finding_id=f.id, verdict="maybe", source="cli")


def test_region_iou():
    a = Finding(bbox_x=0, bbox_y=0, bbox_w=4, bbox_h=2, mask_rle="0 8")  # 8 px
    b = Finding(bbox_x=2, bbox_y=0, bbox_w=4, bbox_h=2, mask_rle="0 8")  # overlaps 4 px
    assert repo.region_iou(a, b) == pytest.approx(4 / 12)
    c = Finding(bbox_x=2, bbox_y=0, bbox_w=4, bbox_h=2, mask_rle="2 2 2 2")  # right half only
    assert repo.region_iou(a, c) == 0.0
    far = Finding(bbox_x=40, bbox_y=40, bbox_w=4, bbox_h=2, mask_rle="0 8")
    assert repo.region_iou(a, far) == 0.0


def _rescan_setup(s, tmp_path):
    """Run 1 on one image with three findings; decisions on two of them."""
    ds, ids = _dataset(s, tmp_path, n=1)
    img = ids[0]
    run1 = repo.start_run(s, "scan", ds, {}, seed=0)
    eye = FindingRecord(2, 4, "flip", 0.9, 40, (8, 8, 8, 5), _box_mask(48, 64, (8, 8, 8, 5)))
    lip = FindingRecord(1, 0, "spurious", 0.6, 36, (28, 4, 6, 6), _box_mask(48, 64, (28, 4, 6, 6)))
    hair = FindingRecord(0, 1, "missing", 0.5, 20, (40, 40, 5, 4))
    repo.write_scan_batch(s, run1, [ImageResult(img, 0.3, 96, [eye, lip, hair])])
    f_eye, f_lip, _ = repo.findings_for_image(s, run1, img)
    t0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
    repo.record_decision(s, finding_id=f_eye.id, verdict="accept", source="fiftyone", decided_at=t0)
    repo.record_decision(s, finding_id=f_lip.id, verdict="reject", source="cli", decided_at=t0,
                         note="it is a mole")
    return ds, img, run1, t0


def _rescan_findings():
    return [
        # the eye flip again, moved 2 px: same fingerprint cell
        FindingRecord(2, 4, "flip", 0.8, 40, (10, 9, 8, 5), _box_mask(48, 64, (10, 9, 8, 5))),
        # the lip region moved 1 px, its centre across a cell border (x 31 -> 32): new
        # fingerprint, matched by region IoU 30/42
        FindingRecord(1, 0, "spurious", 0.6, 36, (29, 4, 6, 6), _box_mask(48, 64, (29, 4, 6, 6))),
        # a different finding at the eye: other suggested class -> no decision
        FindingRecord(2, 3, "flip", 0.7, 40, (8, 8, 8, 5), _box_mask(48, 64, (8, 8, 8, 5))),
        # same pair as the lip, nearby but barely overlapping (IoU 4/68) -> no decision
        FindingRecord(1, 0, "spurious", 0.4, 36, (32, 8, 6, 6), _box_mask(48, 64, (32, 8, 6, 6))),
    ]


def test_decisions_are_carried_to_a_rescan_at_write_time(s, tmp_path):
    ds, img, run1, t0 = _rescan_setup(s, tmp_path)
    run2 = repo.start_run(s, "scan", ds, {}, seed=1, parent=run1)
    repo.write_scan_batch(s, run2, [ImageResult(img, 0.3, 96, _rescan_findings())])
    new = {(f.given_class, f.suggested_class, f.bbox_x, f.bbox_y): f.id
           for f in repo.findings_for_image(s, run2, img)}
    got = repo.decisions_for_run(s, run2).findings
    assert {k: got[v].verdict for k, v in new.items() if v in got} == {
        (2, 4, 10, 9): "accept", (1, 0, 29, 4): "reject"}
    carried = got[new[(1, 0, 29, 4)]]
    assert carried.note == "it is a mole" and carried.decided_at == t0
    assert carried.carried_from_id is not None and carried.source == "cli"
    assert repo.carry_decisions(s, run1, run2) == 0  # nothing left to carry: idempotent


def test_carry_decisions_explicitly_and_latest_wins(s, tmp_path):
    ds, img, run1, t0 = _rescan_setup(s, tmp_path)
    run2 = repo.start_run(s, "scan", ds, {}, seed=1, parent=run1)
    repo.write_scan_batch(s, run2, [ImageResult(img, 0.3, 96, _rescan_findings())], carry=False)
    assert repo.decisions_for_run(s, run2).findings == {}
    assert repo.carry_decisions(s, run1, run2) == 2
    assert repo.carry_decisions(s, run1, run2) == 0
    eye2 = repo.findings_for_image(s, run2, img)[0]
    assert (eye2.given_class, eye2.suggested_class) == (2, 4)

    # a fresh verdict on the rescan beats the inherited one...
    repo.record_decision(s, finding_id=eye2.id, verdict="reject", source="cli",
                         decided_at=t0 + timedelta(days=1))
    assert repo.decisions_for_run(s, run2).findings[eye2.id].verdict == "reject"
    assert repo.carry_decisions(s, run1, run2) == 0  # ...and is not overwritten by carrying
    # ...until someone changes their mind on the old run later still
    eye1 = repo.findings_for_image(s, run1, img)[0]
    repo.record_decision(s, finding_id=eye1.id, verdict="relabel", source="fiftyone",
                         decided_at=t0 + timedelta(days=2))
    assert repo.carry_decisions(s, run1, run2) == 1
    assert repo.decisions_for_run(s, run2).findings[eye2.id].verdict == "relabel"


def test_decisions_survive_deleting_the_old_run(s, tmp_path):
    ds, img, run1, _ = _rescan_setup(s, tmp_path)
    s.delete(run1)
    s.commit()
    run3 = repo.start_run(s, "scan", ds, {}, seed=2)
    repo.write_scan_batch(s, run3, [ImageResult(img, 0.3, 96, _rescan_findings())])
    got = repo.decisions_for_run(s, run3).findings
    # only the fingerprint match remains possible once the old masks are gone
    assert sorted(d.verdict for d in got.values()) == ["accept"]


def test_two_processes_review_while_scanning(tmp_path, db_url):
    """A reader holding a snapshot can still write after another connection committed."""
    scan_store, review_store = open_db(db_url), open_db(db_url)
    try:
        with scan_store.session() as scan, review_store.session() as review:
            ds, ids = _dataset(scan, tmp_path, n=3)
            run = repo.start_run(scan, "scan", ds, {}, seed=0)
            repo.write_scan_batch(scan, run, _results(ids[:1], [0.2]))
            worst = repo.top_images(review, run, 5)  # review opens a read snapshot
            repo.write_scan_batch(scan, run, _results(ids[1:], [0.1, 0.3]))  # scan writes on
            repo.record_decision(review, image_id=worst[0].image_id, verdict="accept",
                                 source="fiftyone")
            assert [t.image_id for t in repo.top_images(review, run, 5)] == [ids[1], ids[0],
                                                                             ids[2]]
    finally:
        scan_store.close()
        review_store.close()


def test_merge_order_is_stored_as_a_string_and_old_character_lists_read_back(s, tmp_path):
    ds = repo.get_or_create_dataset(s, "celebamask", tmp_path / "C", CLASSES, "glasses_on_top")
    assert ds.merge_order == "glasses_on_top" and repo.merge_order_of(ds) == "glasses_on_top"
    assert repo.get_or_create_dataset(s, "celebamask", tmp_path / "C", CLASSES, "glasses_on_top").id == ds.id
    assert repo.get_or_create_dataset(s, "celebamask", tmp_path / "C", CLASSES, "official").id != ds.id
    ds.merge_order = list("official")  # what stores written before the fix hold
    s.commit()
    assert repo.merge_order_of(ds) == "official"
    assert repo.merge_order_of(repo.get_or_create_dataset(s, "lapa", tmp_path / "L", CLASSES)) is None
