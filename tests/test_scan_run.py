"""`run_scan` end to end: store writes, ranking, resume, bad inputs, CSVs, real network path."""
from __future__ import annotations

import csv
import sqlite3

import cv2
import numpy as np
import pytest
from scanhelp import copy_tree, make_dataset, make_run, oracle_predictor, plant_flip, plant_shift

from labelaudit.data import open_source, read_label
from labelaudit.scan import ScanOptions, resolve_scan_run, run_scan, summarize, write_csvs
from labelaudit.scan.layout import ScanMaps, encode_maps
from labelaudit.store import open_db, repo

L_EYE, R_EYE, NOSE, HAIR = 4, 5, 6, 10


@pytest.fixture(scope="module")
def clean_set(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("scanset") / "data")


@pytest.fixture
def planted(clean_set, tmp_path):
    """A copy of the clean set with one whole-part flip and one boundary shift planted."""
    root = copy_tree(clean_set, tmp_path / "data")
    stems = [r.id for r in open_source("synthetic", root).records("train")]
    flipped, shifted = stems[7], stems[3]
    n = plant_flip(root, flipped, NOSE, HAIR)
    assert n > 20
    plant_shift(root, shifted, HAIR, pixels=1)
    run = make_run(tmp_path / "run", root)
    return root, run, flipped, shifted


def _opts(run, **kw):
    kw.setdefault("scorer", "rules")  # these tests pin the rules; tests/test_scan_calibrated.py the rest
    return ScanOptions(run_dir=run, progress=False, db_url=str(run / "audit.db"), **kw)


def test_planted_flip_is_found_and_ranked_first(planted):
    root, run, flipped, shifted = planted
    res = run_scan(_opts(run), predict=oracle_predictor(root))
    n_train = len(open_source("synthetic", root).records("train"))
    assert res.n_scored_now == n_train and res.n_resumed == 0 and not res.bad
    store = open_db(res.db_url)
    with store.session() as s:
        r = s.get(repo.Run, res.run_id)
        worst = repo.top_images(s, r, 3)
        assert worst[0].image.image_relpath == f"train/images/{flipped}.jpg"
        assert worst[0].label_quality < 0.5
        fs = repo.findings_for_image(s, r, worst[0].image_id)
        assert (fs[0].given_class, fs[0].suggested_class) == (HAIR, NOSE)
        assert fs[0].kind == "flip"
        # the finding's mask is exactly the relabelled nose (clean nose = given hair there)
        given = read_label(root / "train" / "labels" / f"{flipped}.png")
        clean = read_label(root / "train" / "labels_clean" / f"{flipped}.png")
        truth = (clean == NOSE) & (given == HAIR)
        m = fs[0].mask(given.shape)
        iou = (m & truth).sum() / (m | truth).sum()
        assert iou > 0.8
        # a 1-px boundary shift makes no finding (too thin) but its image ranks second: its
        # wrong pixels are real; untouched images rank after it
        tops = repo.top_images(s, r, 100)
        assert tops[1].image.image_relpath == f"train/images/{shifted}.jpg"
        assert repo.findings_for_image(s, r, tops[1].image_id) == []
        assert tops[0].label_quality < tops[1].label_quality < min(t.label_quality for t in tops[2:])
    sm = summarize(store, res.run_id)
    assert (sm.pairs[0].given, sm.pairs[0].suggested) == ("hair", "nose")
    assert sm.noise_rate["hair"] > 0 and sm.noise_rate["l_eye"] == 0
    store.close()


def test_csv_outputs_name_images_and_masks(planted, tmp_path):
    root, run, flipped, _ = planted
    res = run_scan(_opts(run), predict=oracle_predictor(root))
    store = open_db(res.db_url)
    images_csv, findings_csv = write_csvs(store, res.run_id, tmp_path / "out")
    store.close()
    rows = list(csv.DictReader(open(images_csv)))
    assert rows[0]["image"] == f"train/images/{flipped}.jpg"
    assert float(rows[0]["label_quality"]) <= float(rows[-1]["label_quality"])
    f = list(csv.DictReader(open(findings_csv)))[0]
    assert (f["given"], f["suggested"], f["kind"]) == ("hair", "nose", "flip")
    mask = read_label(tmp_path / "out" / f["mask"])  # 0/255 PNG in the label frame
    given = read_label(root / "train" / "labels" / f"{flipped}.png")
    assert mask.shape == given.shape
    assert int((mask > 0).sum()) == int(f["area"])
    x, y, w, h = (int(f[k]) for k in "xywh")
    ys, xs = np.nonzero(mask)
    assert (xs.min(), ys.min(), xs.max() + 1 - x, ys.max() + 1 - y) == (x, y, w, h)


def test_interrupted_scan_resumes_without_duplicates(planted):
    root, run, flipped, _ = planted
    oracle = oracle_predictor(root)
    calls = {"n": 0}

    def dies_after_two_batches(k, batch):
        calls["n"] += 1
        if calls["n"] > 3:  # 1 val batch for the thresholds, then 2 scan batches
            raise KeyboardInterrupt
        return oracle(k, batch)

    with pytest.raises(KeyboardInterrupt):
        run_scan(_opts(run, batch_size=4), predict=dies_after_two_batches)
    db = str(run / "audit.db")
    con = sqlite3.connect(db)
    (run_id, status), = con.execute("select id, status from runs where kind='scan'").fetchall()
    assert status == "interrupted"
    assert con.execute("select count(*) from image_scores").fetchone()[0] == 8
    con.close()
    res = run_scan(_opts(run, batch_size=4), predict=oracle)
    assert res.run_id == run_id and res.n_resumed == 8
    con = sqlite3.connect(db)
    n_train = len(open_source("synthetic", root).records("train"))
    assert con.execute("select count(*), count(distinct image_id) from image_scores").fetchone() \
        == (n_train, n_train)
    assert con.execute("select status from runs where id=?", (run_id,)).fetchone()[0] == "done"
    # the resumed run's findings equal a fresh uninterrupted scan's
    fresh = run_scan(_opts(run, batch_size=4, resume=False), predict=oracle)
    q = "select image_id, given_class, suggested_class, area, mask_rle from findings where run_id=? order by 1,2,3,4"
    assert con.execute(q, (run_id,)).fetchall() == con.execute(q, (fresh.run_id,)).fetchall()
    con.close()


def test_bad_files_are_reported_and_the_scan_goes_on(planted):
    root, run, flipped, _ = planted
    stems = [r.id for r in open_source("synthetic", root).records("train")]
    (root / "train" / "images" / f"{stems[0]}.jpg").write_bytes(b"not a jpeg")
    (root / "train" / "labels" / f"{stems[1]}.png").write_bytes(b"\x89PNG truncated")
    res = run_scan(_opts(run), predict=oracle_predictor(root))
    bad = {p.split("/")[-1] for p, _ in res.bad}
    assert bad == {f"{stems[0]}.jpg", f"{stems[1]}.png"}
    assert res.n_scored_now == len(stems) - 2
    store = open_db(res.db_url)
    sm = summarize(store, res.run_id)
    assert len(sm.bad_inputs) == 2 and sm.worst[0].image == f"train/images/{flipped}.jpg"
    store.close()


def test_real_network_teachers_scan_and_rescan_keeps_decisions(planted):
    """The real path: networks loaded from the run, forward, warp back; decisions carried."""
    root, run, _, _ = planted
    res = run_scan(_opts(run, teacher="csr", limit=4))
    assert res.n_scored_now == 4 and res.forward_seconds > 0
    assert res.maps_dir.parent == run.resolve() / "scans" and res.maps_dir.name.startswith(f"{res.run_id}-")
    assert not res.maps_dir.exists()  # the maps are in the store; files only where a reader needs them
    store = open_db(res.db_url)
    with store.session() as s:
        scan = s.get(repo.Run, res.run_id)
        worst = repo.top_images(s, scan, 10)
        ids, frame = [sc.image_id for sc in worst], (worst[0].image.height, worst[0].image.width)
        stored = repo.scan_map_pngs(s, scan, ids)
    assert len(ids) == 4 and stored.keys() == set(ids)
    teacher, suspicion = ScanMaps.of(scan).read(ids[0], stored[ids[0]])
    assert teacher.shape == suspicion.shape == frame and teacher.max() < 11
    assert resolve_scan_run(store) == res.run_id
    dml = run_scan(_opts(run, teacher="dml", limit=4))
    assert dml.run_id != res.run_id and dml.teacher == "dml"
    store.close()


def test_two_stores_on_one_run_folder_keep_their_own_maps(planted):
    """A SQLite file and a second store both number their scans from 1: each scan's maps must
    stay its own (the review shows them next to that store's findings), in the store and in
    the files made from it."""
    root, run, _, _ = planted
    first = run_scan(_opts(run), predict=oracle_predictor(root, sharpness=0.9))
    other = ScanOptions(run_dir=run, progress=False, db_url=str(run / "other.db"), scorer="rules")
    second = run_scan(other, predict=oracle_predictor(root, sharpness=0.6))
    assert second.run_id == first.run_id  # the same number in the other store
    assert second.maps_dir != first.maps_dir
    files = []
    for res in (first, second):
        store = open_db(res.db_url)
        with store.session() as s:
            scan = s.get(repo.Run, res.run_id)
            ids = [sc.image_id for sc in repo.top_images(s, scan, 100)]
            stored = repo.scan_map_pngs(s, scan, ids)
            maps = ScanMaps.of(scan)
        store.close()
        assert maps.root == res.maps_dir and len(stored) == len(stems_of(root))
        made = {i: maps.files(i, stored[i])[1] for i in ids}
        assert all(p.read_bytes() == stored[i][1] for i, p in made.items())
        files.append({i: p.read_bytes() for i, p in made.items()})
    assert files[0].keys() == files[1].keys() and files[0] != files[1]


def test_maps_of_scans_before_v7_are_read_from_their_files(tmp_path):
    """Scans stored before the maps moved into the store wrote them as files: still read."""
    maps = ScanMaps(tmp_path / "scans" / "3")
    teacher = np.arange(12, dtype=np.uint8).reshape(3, 4)
    maps.teacher(7).parent.mkdir(parents=True)
    cv2.imwrite(str(maps.teacher(7)), teacher)
    got_teacher, got_suspicion = maps.read(7, None)
    assert np.array_equal(got_teacher, teacher) and got_suspicion is None
    assert maps.files(7, None) == (maps.teacher(7), maps.suspicion(7))


def test_stored_maps_become_files_once_and_again_when_a_crash_left_them_empty(tmp_path):
    maps = ScanMaps(tmp_path / "scans" / "3-ab")
    stored = encode_maps(np.full((3, 4), 2, np.uint8), np.full((3, 4), 200, np.uint8))
    teacher, suspicion = maps.files(7, stored)
    assert teacher.read_bytes() == stored[0] and suspicion.read_bytes() == stored[1]
    teacher.write_bytes(b"")  # what a crash before the disk got the data may leave
    suspicion.write_bytes(b"kept")  # a file that is there is not written again
    maps.files(7, stored)
    assert teacher.read_bytes() == stored[0] and suspicion.read_bytes() == b"kept"
    assert np.array_equal(maps.read(7, stored)[1], np.full((3, 4), 200, np.uint8))


def stems_of(root):
    return [r.id for r in open_source("synthetic", root).records("train")]


def test_decision_survives_rescan(planted):
    root, run, flipped, _ = planted
    oracle = oracle_predictor(root)
    first = run_scan(_opts(run), predict=oracle)
    store = open_db(first.db_url)
    with store.session() as s:
        f = next(repo.iter_findings(s, s.get(repo.Run, first.run_id)))
        fid = f.id
    with store.session() as s:
        repo.record_decision(s, finding_id=fid, verdict="accept", source="cli")
    second = run_scan(_opts(run, resume=False), predict=oracle)
    with store.session() as s:
        dec = repo.decisions_for_run(s, s.get(repo.Run, second.run_id))
        assert [d.verdict for d in dec.findings.values()] == ["accept"]
    store.close()


def test_the_heap_trimmer_finds_malloc_trim_on_glibc():
    import platform

    from labelaudit.scan.heap import HeapTrimmer

    trim = HeapTrimmer()
    assert trim.active is (platform.libc_ver()[0] == "glibc")
    trim()  # callable either way


def test_a_scan_keeps_the_objects_it_found_out_of_the_collector_and_hands_them_back(planted):
    import gc

    root, run, _, _ = planted
    inside: list[int] = []
    run_scan(_opts(run), predict=oracle_predictor(root), on_image=lambda im: inside.append(gc.get_freeze_count()))
    assert inside and min(inside) > 10_000  # the libraries' objects, at least
    assert gc.get_freeze_count() == 0


def test_objects_the_caller_froze_stay_frozen_after_a_scan(planted):
    import gc

    root, run, _, _ = planted
    gc.freeze()
    try:
        mine = gc.get_freeze_count()
        run_scan(_opts(run), predict=oracle_predictor(root))
        # still frozen, and nothing more (a few frozen objects may have been freed meanwhile)
        assert 0.99 * mine < gc.get_freeze_count() <= mine
    finally:
        gc.unfreeze()
