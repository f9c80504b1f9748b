"""Memorisation evidence from an ensemble teacher's members (scan.memorisation)."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
from scanhelp import make_dataset, plant_flip

from labelaudit.data import open_source
from labelaudit.scan import ScanOptions, run_scan, summarize
from labelaudit.scan.memorisation import learnt_pixels, region_agreement
from labelaudit.store import Finding, ImageScore, open_db


def test_region_agreement_counts_members_whose_majority_is_the_suggestion():
    votes = np.zeros((4, 3, 3), np.uint8)
    votes[0, :2, :2] = 5  # member 0: class 5 on the whole region
    votes[1, 0, 0] = 5  # member 1: 5 on one pixel of four: its majority is 0
    votes[2, :2, :2] = 5
    votes[2, 1, 1] = 7  # member 2: 5 on three of four
    mask = np.ones((2, 2), bool)
    assert region_agreement(votes, (0, 0, 2, 2), mask, 5) == 0.5
    assert region_agreement(votes, (1, 1, 2, 2), mask, 5) == 0.0


def test_learnt_pixels_are_taken_by_the_newest_against_the_older_half():
    label = np.array([[1, 1, 2, 255]], np.uint8)
    votes = np.array([[[3, 1, 3, 3]],   # older half: disagrees on pixels 0, 2 (and the ignored 3)
                      [[3, 1, 3, 3]],
                      [[0, 0, 0, 0]],   # the middle member does not count
                      [[1, 1, 0, 255]]], np.uint8)  # newest: takes the label on pixels 0 (and 3)
    assert learnt_pixels(votes, label) == 1
    assert learnt_pixels(votes[:1], label) == 0


def _one_hot_maps(root: Path, out: Path, use_given: bool) -> None:
    """Sharp maps of the clean labels (a member that sees the noise) or of the given labels
    (one that learnt it), written with plain numpy."""
    src = open_source("synthetic", root)
    c = src.classes.num_classes
    out.mkdir(parents=True)
    (out / "classes.json").write_text(json.dumps(list(src.classes.names)))
    for split in ("train", "val"):
        for rec in src.records(split):
            lab = cv2.imread(str(rec.label_path), cv2.IMREAD_UNCHANGED) if use_given else \
                src.load_clean_label(rec)
            p = np.eye(c, dtype=np.float32)[lab].transpose(2, 0, 1) * 0.9 + 0.1 / c
            path = out / rec.image_path.relative_to(root).with_suffix(".npz")
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez(path, probs=p)


def test_an_ensemble_scan_stores_agreement_and_learnt_pixels(tmp_path):
    root = make_dataset(tmp_path / "d", n=20, size=64)
    flipped = plant_flip(root, "synth_00003", 2, 4)
    _one_hot_maps(root, tmp_path / "sees", use_given=False)
    _one_hot_maps(root, tmp_path / "learnt", use_given=True)
    members = (tmp_path / "sees",) * 4 + (tmp_path / "learnt",)  # oldest first
    res = run_scan(ScanOptions(run_dir=tmp_path / "a", probs=members, dataset="synthetic",
                               root=root, precision=0.0, progress=False))
    store = open_db(res.db_url)
    with store.session() as s:
        learnt = {sc.image.image_relpath: sc.learnt_pixels for sc in s.query(ImageScore)}
        found = [(f.image.image_relpath, f.given_class, f.suggested_class, f.agreement)
                 for f in s.query(Finding)]
    assert learnt.pop("train/images/synth_00003.jpg") == flipped > 0
    assert set(learnt.values()) == {0}
    flip = [f for f in found if f[:3] == ("train/images/synth_00003.jpg", 4, 2)]
    assert flip and all(abs(f[3] - 4 / 5) < 1e-9 for f in flip)
    assert summarize(store, res.run_id).learnt[:2] == (1, flipped)
    store.close()
