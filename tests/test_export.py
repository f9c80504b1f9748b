"""Export: an accepted flip restores the clean label exactly; everything else is byte-identical."""
from __future__ import annotations

import csv
import hashlib
import json

import cv2
import numpy as np
import pytest
from scanhelp import copy_tree, make_dataset, make_run, oracle_predictor, plant_flip

from typer.testing import CliRunner

from labelaudit.cli import app
from labelaudit.data import FaceParsingDataset, open_source, read_label
from labelaudit.export import export_labels, parse_policy
from labelaudit.scan import ScanOptions, run_scan
from labelaudit.store import open_db, repo

NOSE, HAIR = 6, 10
runner = CliRunner()


@pytest.fixture
def scanned(tmp_path):
    root = make_dataset(tmp_path / "data", n=16)
    stems = [r.id for r in open_source("synthetic", root).records("train")]
    plant_flip(root, stems[2], NOSE, HAIR)
    run = make_run(tmp_path / "run", root)
    res = run_scan(ScanOptions(run_dir=run, db_url=str(tmp_path / "a.db"), progress=False,
                               scorer="rules"),  # export mechanics; calibration: test_scan_calibrated
                   predict=oracle_predictor(root))
    store = open_db(res.db_url)
    yield root, store, res.run_id, stems[2]
    store.close()


def _files(root):
    return {p.relative_to(root): p.read_bytes() for p in root.rglob("*.png")
            if "/labels/" in str(p)}


def test_accepted_flip_restores_the_clean_label(scanned, tmp_path):
    root, store, run_id, flipped = scanned
    before = _files(root)
    with store.session() as s:
        top = next(repo.iter_findings(s, s.get(repo.Run, run_id)))
        assert (top.given_class, top.suggested_class) == (HAIR, NOSE)
        repo.record_decision(s, finding_id=top.id, verdict="accept", source="cli")
    out = tmp_path / "fixed"
    res = export_labels(store, out)
    assert res.n_images_changed == 1 and res.n_findings_applied == 1
    fixed = read_label(out / "train" / "labels" / f"{flipped}.png")
    clean = read_label(root / "train" / "labels_clean" / f"{flipped}.png")
    assert np.array_equal(fixed, clean)
    # every other label file is a byte-for-byte copy; the source is untouched
    after = _files(out)
    assert set(after) == set(before)
    changed = [k for k in before if before[k] != after[k]]
    assert [str(k) for k in changed] == [f"train/labels/{flipped}.png"]
    assert _files(root) == before
    manifest = json.loads((out / "manifest.json").read_text())
    for rel, sha in manifest["files"].items():
        assert hashlib.sha256((out / rel).read_bytes()).hexdigest() == sha
    rows = list(csv.DictReader(open(out / "changes.csv")))
    assert {(r["from"], r["to"]) for r in rows} == {("hair", "nose")}
    assert sum(int(r["pixels"]) for r in rows) == int((clean != read_label(
        root / "train" / "labels" / f"{flipped}.png")).sum())
    # the tree is what `train --labels` reads
    ds = FaceParsingDataset(open_source("synthetic", root), "train", size=64, labels_dir=out)
    assert ds[2]["id"] == flipped
    with store.session() as s:
        assert len(repo.exports_for_run(s, s.get(repo.Run, run_id))) == 1


def test_nothing_accepted_changes_nothing_and_rejections_block_threshold(scanned, tmp_path):
    root, store, run_id, flipped = scanned
    res = export_labels(store, tmp_path / "same")
    assert res.n_images_changed == 0
    assert _files(tmp_path / "same") == _files(root)
    with store.session() as s:
        top = next(repo.iter_findings(s, s.get(repo.Run, run_id)))
        repo.record_decision(s, finding_id=top.id, verdict="reject", source="cli")
    res = export_labels(store, tmp_path / "thr", policy="threshold:0.1")
    assert res.n_findings_applied == 0


def test_image_accepts_and_thresholds_apply_exactly_the_findings_they_name(tmp_path):
    """Two planted flips, scored 0.9 and 0.5: an accepted image applies its own findings and no
    other's; a threshold applies the unrejected findings at or above it, and an accepted finding
    below it; a finding's own verdict wins over its image's."""
    root = make_dataset(tmp_path / "data", n=16)
    stems = [r.id for r in open_source("synthetic", root).records("train")]
    for stem in (stems[2], stems[5]):
        plant_flip(root, stem, NOSE, HAIR)
    res = run_scan(ScanOptions(run_dir=make_run(tmp_path / "run", root), db_url=str(tmp_path / "a.db"),
                               progress=False, scorer="rules"), predict=oracle_predictor(root))
    store = open_db(res.db_url)
    with store.session() as s:
        found = list(repo.iter_findings(s, s.get(repo.Run, res.run_id)))
        a, b = sorted({f.image_id for f in found})
        for f in found:  # scores the export reads back from the store
            f.score = 0.9 if f.image_id == a else 0.5
        s.commit()
        repo.record_decision(s, image_id=a, verdict="accept", source="cli")
    in_a = sorted(f.id for f in found if f.image_id == a)
    in_b = sorted(f.id for f in found if f.image_id == b)
    assert in_a and in_b

    def applied(name: str, policy: str = "accepted") -> list[int]:
        out = export_labels(store, tmp_path / name, policy=policy).out
        return json.loads((out / "manifest.json").read_text())["findings_applied"]

    assert applied("image") == in_a
    assert applied("all", "threshold:0.4") == sorted(in_a + in_b)
    with store.session() as s:
        repo.record_decision(s, image_id=a, verdict="reject", source="cli")
    assert applied("rejected", "threshold:0.4") == in_b
    with store.session() as s:
        repo.record_decision(s, finding_id=in_a[0], verdict="accept", source="cli")
    assert applied("own", "threshold:0.95") == [in_a[0]]
    with store.session() as s:  # a relabel verdict is not applied, and the export says so
        repo.record_decision(s, finding_id=in_b[0], verdict="relabel", source="cli")
    res = runner.invoke(app, ["export", "--db", res.db_url, "--out", str(tmp_path / "cli")])
    assert res.exit_code == 0, res.output
    assert "not applied: 1 relabel verdicts: need a hand correction" in res.output
    store.close()


def test_export_refuses_the_source_tree_and_non_export_folders(scanned, tmp_path):
    root, store, _, _ = scanned
    with pytest.raises(ValueError, match="refusing"):
        export_labels(store, root / "fixed")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="no labelaudit export"):
        export_labels(store, busy, overwrite=True)
    assert (busy / "x.txt").read_text() == "mine"
    with pytest.raises(ValueError):
        parse_policy("threshold:2")


def test_celebamask_round_trip_restores_the_part_masks(tmp_path):
    """scan -> decide -> export on CelebAMask-HQ: the accepted fix is in the exported part masks
    (the nose painted as hair goes back to its own part file), every other file byte for byte."""
    from labelaudit.data.synthetic import generate

    root = tmp_path / "data"
    generate(root, format="celebamask", n=16, size=64, noise_rate=0.0, seed=5, progress=False)
    src = open_source("synthetic", root)
    assert src.kind == "celebamask"
    rec = src.records("train")[1]
    nose_file = next(p for p in rec.label_parts if p.name.endswith("_nose.png"))
    hair_file = next(p for p in rec.label_parts if p.name.endswith("_hair.png"))
    nose = read_label(nose_file) > 0
    hair = read_label(hair_file)
    hair[nose] = 255
    cv2.imwrite(str(hair_file), hair)
    nose_file.unlink()  # the annotator painted the nose as hair: no nose part any more
    anno = root / "CelebAMask-HQ-mask-anno"
    before = {p.relative_to(root): p.read_bytes() for p in anno.rglob("*.png")}

    run = make_run(tmp_path / "run", root)
    res = run_scan(ScanOptions(run_dir=run, db_url=str(tmp_path / "c.db"), progress=False,
                               scorer="rules"),  # export mechanics; calibration: test_scan_calibrated
                   predict=oracle_predictor(root))
    store = open_db(res.db_url)
    names = src.classes.names
    with store.session() as s:
        found = [f for f in repo.iter_findings(s, s.get(repo.Run, res.run_id))
                 if (names[f.given_class], names[f.suggested_class]) == ("hair", "nose")]
        assert found, "the planted flip was not found"
        repo.record_decision(s, finding_id=found[0].id, verdict="accept", source="cli")
    out = tmp_path / "fixed"
    result = export_labels(store, out)
    _outline_lands_on(store, res.run_id, nose, tmp_path / "sheet.png")
    store.close()
    assert result.n_images_changed == 1
    exported = {p.relative_to(out): p.read_bytes() for p in (out / "CelebAMask-HQ-mask-anno").rglob("*.png")}
    rel_nose, rel_hair = nose_file.relative_to(root), hair_file.relative_to(root)
    assert rel_nose in exported and np.array_equal(read_label(out / rel_nose) > 0, nose)
    assert not (read_label(out / rel_hair)[nose] > 0).any()
    assert set(exported) == set(before) | {rel_nose}
    untouched = {k: v for k, v in before.items() if k not in (rel_nose, rel_hair)}
    assert {k: exported[k] for k in untouched} == untouched
    clean = src.load_clean_label(rec)
    merged = read_label(out / src.label_relpath(rec))
    assert np.array_equal(merged, clean)


def _outline_lands_on(store, run_id, part: np.ndarray, path) -> None:
    """The report's contact sheet outlines the worst image's finding where the part is, in the
    label frame (CelebAMask-HQ images are twice the label size)."""
    from labelaudit.report import contact_sheet

    tile = 160
    sheet = cv2.cvtColor(cv2.imread(str(contact_sheet(store, run_id, path, k=1, tile=tile))),
                         cv2.COLOR_BGR2RGB)
    cell = sheet[22:22 + tile, :tile].astype(int)  # below the header: row 1, the image tile
    yellow = (cell[..., 0] > 200) & (cell[..., 1] > 200) & (cell[..., 2] < 80)
    yellow[:36] = False  # the row's text
    assert yellow.sum() > 10
    ys, xs = np.nonzero(yellow)
    scale = part.shape[0] / tile
    py, px = np.nonzero(part)
    assert abs(ys.mean() * scale - py.mean()) < 4 and abs(xs.mean() * scale - px.mean()) < 4


def test_an_accepted_finding_on_a_removed_image_is_reported_not_applied(scanned, tmp_path):
    root, store, run_id, flipped = scanned
    with store.session() as s:
        top = next(repo.iter_findings(s, s.get(repo.Run, run_id)))
        repo.record_decision(s, finding_id=top.id, verdict="accept", source="cli")
    for p in root.glob(f"train/*/{flipped}.*"):  # the image, its label, its clean label
        p.unlink()
    res = export_labels(store, tmp_path / "fixed")
    assert res.n_findings_applied == 0
    assert res.not_applied == {"findings on images no longer in the dataset": 1}
    manifest = json.loads((tmp_path / "fixed" / "manifest.json").read_text())
    assert manifest["not_applied"] == res.not_applied and manifest["findings_applied"] == []


def test_a_hand_correction_is_written_instead_of_its_images_findings(scanned, tmp_path):
    """The correction in force (the latest) replaces the label; the image's accepted finding is
    not applied on top of it; a relabel verdict with a correction is no longer 'not applied'."""
    root, store, run_id, flipped = scanned
    label_path = root / "train" / "labels" / f"{flipped}.png"
    given = read_label(label_path)
    first, hand = given.copy(), given.copy()
    first[0, 0] = NOSE
    hand[:4, :4] = HAIR
    hand[given == 1] = 0  # the annotator erased the skin
    with store.session() as s:
        top = next(repo.iter_findings(s, s.get(repo.Run, run_id)))
        image_id = top.image_id
        repo.record_decision(s, finding_id=top.id, verdict="accept", source="cli")
        repo.record_decision(s, image_id=image_id, verdict="relabel", source="cli")
        repo.record_correction(s, image_id=image_id, label=first, pixels_changed=1, source="labelstudio")
        latest = repo.record_correction(s, image_id=image_id, label=hand, run_id=run_id,
                                        pixels_changed=int((hand != given).sum()), source="labelstudio")
    res = export_labels(store, tmp_path / "fixed")
    assert np.array_equal(read_label(tmp_path / "fixed" / "train" / "labels" / f"{flipped}.png"), hand)
    assert (res.n_corrections_applied, res.n_findings_applied, res.n_images_changed) == (1, 0, 1)
    assert res.n_pixels_changed == int((hand != given).sum())
    assert res.not_applied == {
        "findings on images corrected by hand (the correction is written instead)": 1}
    manifest = json.loads((tmp_path / "fixed" / "manifest.json").read_text())
    assert manifest["corrections_applied"] == [latest.id] and manifest["findings_applied"] == []
    rows = list(csv.DictReader(open(tmp_path / "fixed" / "changes.csv")))
    assert {r["correction"] for r in rows} == {str(latest.id)} and {r["finding"] for r in rows} == {""}
    assert sum(int(r["pixels"]) for r in rows) == res.n_pixels_changed
    assert {(r["from"], r["to"]) for r in rows} >= {("skin", "background")}


def test_a_correction_drawn_on_a_label_that_changed_since_is_not_applied(scanned, tmp_path):
    root, store, run_id, flipped = scanned
    label_path = root / "train" / "labels" / f"{flipped}.png"
    given = read_label(label_path)
    with store.session() as s:
        top = next(repo.iter_findings(s, s.get(repo.Run, run_id)))
        repo.record_decision(s, image_id=top.image_id, verdict="relabel", source="cli")
        repo.record_correction(s, image_id=top.image_id, label=np.zeros_like(given),
                               pixels_changed=int(given.astype(bool).sum()), source="labelstudio")
    edited = given.copy()
    edited[0, 0] = HAIR if given[0, 0] != HAIR else NOSE
    cv2.imwrite(str(label_path), edited)  # somebody fixed the file by other means
    res = export_labels(store, tmp_path / "fixed")
    assert res.n_corrections_applied == 0
    assert np.array_equal(read_label(tmp_path / "fixed" / "train" / "labels" / f"{flipped}.png"), edited)
    assert res.not_applied == {"hand corrections drawn on a label file that has changed since": 1,
                               "relabel verdicts: need a hand correction (labelaudit relabel)": 1}
