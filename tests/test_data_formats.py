"""Each format read from a tiny tree in its exact on-disk layout, plus bad-input handling."""
from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from labelaudit.data import (
    CELEBAMASK, CELEBAMASK_PARTS, LAPA, BadInputError, open_source, read_label, write_label,
)
from labelaudit.data.formats.celebamask import merge_sequence
from labelaudit.data.formats.folder import hash_split
from labelaudit.data.formats.helen import parse_split_list


# ---- builders ------------------------------------------------------------------------------
def face_label(h: int, w: int) -> np.ndarray:
    """A cartoon face in LaPa classes: skin, brows, eyes, nose, lips, hair."""
    lab = np.zeros((h, w), np.uint8)
    cv2.ellipse(lab, (w // 2, h // 2), (w // 3, h * 2 // 5), 0, 0, 360, 1, -1)
    lab[: h // 6, :] = 10
    lab[h * 3 // 10: h * 3 // 10 + 2, w // 4: w * 2 // 5] = 2
    lab[h * 3 // 10: h * 3 // 10 + 2, w * 3 // 5: w * 3 // 4] = 3
    lab[h * 2 // 5: h * 2 // 5 + 3, w // 4: w * 2 // 5] = 4
    lab[h * 2 // 5: h * 2 // 5 + 3, w * 3 // 5: w * 3 // 4] = 5
    lab[h // 2: h * 3 // 5, w * 9 // 20: w * 11 // 20] = 6
    lab[h * 13 // 20: h * 27 // 40, w * 2 // 5: w * 3 // 5] = 7
    lab[h * 27 // 40: h * 7 // 10, w * 2 // 5: w * 3 // 5] = 8
    lab[h * 7 // 10: h * 3 // 4, w * 2 // 5: w * 3 // 5] = 9
    return lab


def image_for(label: np.ndarray) -> np.ndarray:
    """An RGB image whose colour follows the label (so a warp test can see misalignment)."""
    palette = np.random.default_rng(1).integers(0, 256, size=(256, 3), dtype=np.uint8)
    return palette[label]


def write_rgb(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), rgb[:, :, ::-1])


def make_lapa(root: Path, splits=None, size=(40, 48)) -> dict[str, np.ndarray]:
    """LaPa layout; returns {stem: label}."""
    splits = splits or {"train": ["a1", "a2", "a3"], "val": ["b1"], "test": ["c1"]}
    labels = {}
    for split, stems in splits.items():
        for k, stem in enumerate(stems):
            lab = face_label(*size)
            lab = np.roll(lab, k, axis=1)
            write_rgb(root / split / "images" / f"{stem}.jpg", image_for(lab))
            write_label(root / split / "labels" / f"{stem}.png", lab)
            (root / split / "landmarks").mkdir(parents=True, exist_ok=True)
            (root / split / "landmarks" / f"{stem}.txt").write_text("106\n")
            labels[stem] = lab
    return labels


def make_celebamask(root: Path, n: int, size=16, img_size=32, parts_of=None):
    """CelebAMask-HQ layout with n images; parts_of(i) -> {part: bool mask}."""
    for i in range(n):
        write_rgb(root / "CelebA-HQ-img" / f"{i}.jpg",
                  np.full((img_size, img_size, 3), (i * 10) % 256, np.uint8))
        folder = root / "CelebAMask-HQ-mask-anno" / str(i // 2000)
        folder.mkdir(parents=True, exist_ok=True)
        parts = parts_of(i) if parts_of else {"skin": np.ones((size, size), bool)}
        for k, (part, mask) in enumerate(parts.items()):
            m = mask.astype(np.uint8) * 255
            if k % 2:  # the release mixes 1- and 3-channel masks
                m = np.dstack([m] * 3)
            cv2.imwrite(str(folder / f"{i:05d}_{part}.png"), m)
    lines = ["idx         orig_idx    orig_file   "]
    lines += [f"{i:<12d}{1000 + i:<12d}{1001 + i:06d}.jpg" for i in range(n)]
    (root / "CelebA-HQ-to-CelebA-mapping.txt").write_text("\n".join(lines) + "\n")


def glasses_parts(i: int) -> dict[str, np.ndarray]:
    s = 16
    skin = np.zeros((s, s), bool)
    skin[2:14, 2:14] = True
    glasses = np.zeros((s, s), bool)
    glasses[5:9, 3:13] = True
    l_eye = np.zeros((s, s), bool)
    l_eye[6:8, 4:7] = True
    hair = np.zeros((s, s), bool)
    hair[0:2, :] = True
    return {"skin": skin, "eye_g": glasses, "l_eye": l_eye, "hair": hair}


def make_helen(root: Path, ids_by_file: dict[str, list[str]], size=(20, 24)):
    maps_by_id = {}
    for fname, ids in ids_by_file.items():
        lines = []
        for k, id_ in enumerate(ids, 1):
            # spacing variants seen in the wild
            lines.append([f"{k} , {id_}", f"{k},{id_}", f" {k} ,  {id_} "][k % 3])
            h, w = size
            maps = np.zeros((11, h, w), np.uint8)
            maps[0] = 100
            maps[1, 3:17, 4:20] = 180   # skin beats background
            maps[4, 6:9, 6:10] = 240    # left eye beats skin
            maps[5, 6:9, 14:18] = 240
            maps[10, 0:3, :] = 150      # hair beats background
            maps[6, 12, 12] = 180       # tie with skin -> lower class (skin) wins
            label_dir = root / "labels" / id_
            label_dir.mkdir(parents=True, exist_ok=True)
            for c in range(11):
                cv2.imwrite(str(label_dir / f"{id_}_lbl{c:02d}.png"), maps[c])
            write_rgb(root / "images" / f"{id_}.jpg", np.full((h, w, 3), 128, np.uint8))
            maps_by_id[id_] = maps
        (root / fname).write_text("\n".join(lines) + "\n")
    return maps_by_id


def make_folder(root: Path, stems, classes=("background", "skin", "l_eye", "r_eye", "left_ear",
                                             "right_ear"), splits=None, size=(12, 10)):
    (root / "classes.txt").parent.mkdir(parents=True, exist_ok=True)
    (root / "classes.txt").write_text("\n".join(classes) + "\n\n")
    labels = {}
    for k, stem in enumerate(stems):
        lab = np.zeros(size, np.uint8)
        lab[2:8, 2:8] = 1
        lab[3, 3] = 2
        lab[3, 6] = 3
        lab[0, 0] = 255
        lab[-1, -1] = k % len(classes)
        ext = ".png" if k % 2 else ".jpg"
        write_rgb(root / "images" / f"{stem}{ext}", image_for(lab))
        write_label(root / "labels" / f"{stem}.png", lab)
        labels[stem] = lab
    if splits:
        (root / "splits").mkdir(exist_ok=True)
        for split, names in splits.items():
            (root / "splits" / f"{split}.txt").write_text("\n".join(names) + "\n")
    return labels


# ---- LaPa ------------------------------------------------------------------------------------
def test_lapa_layout(tmp_path):
    labels = make_lapa(tmp_path)
    src = open_source("lapa", tmp_path)
    assert src.kind == "lapa" and src.classes == LAPA and src.merge_order is None
    recs = src.records("train")
    assert [r.id for r in recs] == ["a1", "a2", "a3"]
    assert all(r.split == "train" for r in recs)
    r = recs[1]
    assert r.image_path == tmp_path / "train" / "images" / "a2.jpg"
    assert r.label_path == tmp_path / "train" / "labels" / "a2.png"
    assert r.clean_label_path is None and src.load_clean_label(r) is None
    image, label = src.load_pair(r)
    assert image.shape == (40, 48, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(label, labels["a2"])
    np.testing.assert_array_equal(src.load_label(r), labels["a2"])
    assert src.load_image(r).shape == (40, 48, 3)
    assert src.label_relpath(r) == Path("train/labels/a2.png")
    assert [x.id for x in src.records("test")] == ["c1"]


def test_orphan_label_files_are_reported(tmp_path, caplog):
    import shutil

    make_lapa(tmp_path)
    shutil.copy(tmp_path / "train" / "labels" / "a1.png", tmp_path / "train" / "labels" / "zz.png")
    with caplog.at_level("WARNING"):
        recs = open_source("lapa", tmp_path).records("train")
    assert [r.id for r in recs] == ["a1", "a2", "a3"]
    assert "1 label file(s) without an image" in caplog.text and "zz.png" in caplog.text


def test_lapa_clean_labels_and_synthetic_kind(tmp_path):
    labels = make_lapa(tmp_path)
    clean = labels["a1"].copy()
    clean[0, 0] = 7
    write_label(tmp_path / "train" / "labels_clean" / "a1.png", clean)
    src = open_source("synthetic", tmp_path)
    assert src.kind == "lapa"
    recs = {r.id: r for r in src.records("train")}
    assert recs["a1"].clean_label_path == tmp_path / "train" / "labels_clean" / "a1.png"
    assert recs["a2"].clean_label_path is None
    np.testing.assert_array_equal(src.load_clean_label(recs["a1"]), clean)


def test_missing_split_folder_names_expected_path(tmp_path):
    make_lapa(tmp_path, splits={"train": ["a"]})
    src = open_source("lapa", tmp_path)
    with pytest.raises(BadInputError) as e:
        src.records("val")
    assert str(tmp_path / "val" / "images") in str(e.value)
    with pytest.raises(ValueError):
        src.records("training")


def test_unknown_kind_and_missing_root(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset kind"):
        open_source("pascal", tmp_path)
    with pytest.raises(BadInputError, match="not found"):
        open_source("lapa", tmp_path / "nope")
    with pytest.raises(ValueError, match="merge_order"):
        open_source("lapa", tmp_path, merge_order="official")


# ---- CelebAMask-HQ -----------------------------------------------------------------------------
def test_celebamask_merge_orders_differ_where_glasses_cover_an_eye(tmp_path):
    make_celebamask(tmp_path, 3, parts_of=glasses_parts)
    official = open_source("celebamask", tmp_path)
    on_top = open_source("celebamask", tmp_path, merge_order="glasses_on_top",
                         cache_dir=tmp_path / "cache2")
    assert official.merge_order == "official" and on_top.merge_order == "glasses_on_top"
    assert official.classes == CELEBAMASK
    rec = official.records("train")[0]
    a = official.load_label(rec)
    b = on_top.load_label(rec)
    eye_g, l_eye = CELEBAMASK.index("eye_g"), CELEBAMASK.index("l_eye")
    assert (eye_g, l_eye) == (3, 4)
    assert a[6, 5] == l_eye and b[6, 5] == eye_g          # eye under glasses
    assert a[5, 10] == eye_g and b[5, 10] == eye_g        # glasses elsewhere
    assert a[10, 10] == 1 and a[15, 15] == 0 and a[0, 5] == CELEBAMASK.index("hair")
    assert ((a != b) == ((a == l_eye) & (b == eye_g))).all()
    # the whole eye disappears under glasses-on-top, nothing else changes
    assert (a == l_eye).sum() == 6 and (b == l_eye).sum() == 0


def test_merge_sequence_glasses_on_top():
    seq = merge_sequence("glasses_on_top")
    assert sorted(seq) == sorted(CELEBAMASK_PARTS)
    assert seq.index("eye_g") > seq.index("r_brow") > seq.index("l_eye")
    assert seq.index("eye_g") < seq.index("hair")
    assert merge_sequence("official") == CELEBAMASK_PARTS
    with pytest.raises(ValueError):
        merge_sequence("random")


def test_celebamask_image_resized_to_mask_frame(tmp_path):
    make_celebamask(tmp_path, 2, size=16, img_size=32)
    src = open_source("celebamask", tmp_path)
    rec = src.records("train")[1]
    image, label = src.load_pair(rec)
    assert image.shape == (16, 16, 3) and label.shape == (16, 16)
    assert abs(int(image[8, 8, 0]) - 10) <= 3      # image 1 is uniform grey 10
    assert src.load_image(rec).shape == (16, 16, 3)
    assert rec.label_path == tmp_path / "CelebAMask-HQ-mask-anno" / "0"
    assert rec.label_parts[0].name == "00001_skin.png" and len(rec.label_parts) == 18
    assert src.label_relpath(rec) == Path("labels/1.png")


def test_celebamask_aspect_mismatch_is_bad_input(tmp_path):
    make_celebamask(tmp_path, 1)
    write_rgb(tmp_path / "CelebA-HQ-img" / "0.jpg", np.zeros((32, 40, 3), np.uint8))
    src = open_source("celebamask", tmp_path)
    with pytest.raises(BadInputError, match="aspect") as e:
        src.load_pair(src.records("train")[0])
    assert "0.jpg" in str(e.value)


def test_celebamask_cache_written_and_invalidated(tmp_path):
    make_celebamask(tmp_path, 1, parts_of=glasses_parts)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    src = open_source("celebamask", tmp_path)
    rec = src.records("train")[0]
    first = src.load_label(rec)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # root untouched
    cached = src.cache_dir / "0.png"
    assert str(cached).startswith(os.environ["LABELAUDIT_CACHE"])
    np.testing.assert_array_equal(read_label(cached), first)
    # backdate everything, then make the cache itself stale by editing a part (newer mtime)
    old = 1_600_000_000
    for p in list((tmp_path / "CelebAMask-HQ-mask-anno" / "0").iterdir()) + [
            tmp_path / "CelebAMask-HQ-mask-anno" / "0"]:
        os.utime(p, (old, old))
    os.utime(cached, (old + 10, old + 10))
    np.testing.assert_array_equal(src.load_label(rec), first)  # fresh cache is used
    nose = np.zeros((16, 16), np.uint8)
    nose[10:12, 7:9] = 255
    part = tmp_path / "CelebAMask-HQ-mask-anno" / "0" / "00000_nose.png"
    cv2.imwrite(str(part), nose)
    os.utime(part, (old + 20, old + 20))
    again = src.load_label(rec)
    assert (again[10:12, 7:9] == CELEBAMASK.index("nose")).all()
    np.testing.assert_array_equal(read_label(cached), again)
    # a removed part changes the folder's mtime, which also invalidates
    os.utime(cached, (old + 30, old + 30))
    part.unlink()
    assert (src.load_label(rec)[10:12, 7:9] == 1).all()
    # a different order never reads this cache
    other = open_source("celebamask", tmp_path, merge_order="glasses_on_top")
    assert other.load_label(rec)[6, 5] == CELEBAMASK.index("eye_g")
    assert (other.cache_dir / "0.png").is_file() and other.cache_dir.parent == src.cache_dir.parent


def test_celebamask_cache_dir_override_and_off(tmp_path):
    make_celebamask(tmp_path, 1)
    src = open_source("celebamask", tmp_path, cache_dir=tmp_path / "elsewhere")
    src.load_label(src.records("train")[0])
    assert (tmp_path / "elsewhere" / "merged-official" / "0.png").is_file()
    nocache = open_source("celebamask", tmp_path, cache=False)
    nocache.load_label(nocache.records("train")[0])
    assert nocache.cache_dir is None


def test_celebamask_split_from_partition_file(tmp_path):
    make_celebamask(tmp_path, 6)
    # HQ image i is CelebA image 1001 + i; give them splits 0,0,1,2,0,1
    codes = [0, 0, 1, 2, 0, 1]
    lines = [f"{k:06d}.jpg 0" for k in range(1, 1001)]
    lines += [f"{1001 + i:06d}.jpg {c}" for i, c in enumerate(codes)]
    (tmp_path / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")
    src = open_source("celebamask", tmp_path)
    assert [r.id for r in src.records("train")] == ["0", "1", "4"]
    assert [r.id for r in src.records("val")] == ["2", "5"]
    assert [r.id for r in src.records("test")] == ["3"]
    # an explicit file elsewhere works the same; a missing one is named
    moved = tmp_path / "Eval" / "list_eval_partition.txt"
    moved.parent.mkdir()
    shutil.move(tmp_path / "list_eval_partition.txt", moved)
    src2 = open_source("celebamask", tmp_path, partition_file=moved)
    assert [r.id for r in src2.records("test")] == ["3"]
    with pytest.raises(BadInputError, match="partition"):
        open_source("celebamask", tmp_path, partition_file=tmp_path / "nope.txt")


def test_celebamask_deterministic_split_without_partition(tmp_path, caplog):
    make_celebamask(tmp_path, 20)
    with caplog.at_level(logging.INFO, logger="labelaudit.data.formats.celebamask"):
        src = open_source("celebamask", tmp_path)
        train = [r.id for r in src.records("train")]
    assert train == [str(i) for i in range(16)]  # numeric, not lexicographic, order
    assert [r.id for r in src.records("val")] == ["16", "17"]
    assert [r.id for r in src.records("test")] == ["18", "19"]
    assert "deterministic split" in caplog.text


def test_celebamask_missing_all_parts_is_missing_label(tmp_path):
    make_celebamask(tmp_path, 2)
    (tmp_path / "CelebAMask-HQ-mask-anno" / "0" / "00001_skin.png").unlink()
    src = open_source("celebamask", tmp_path, on_bad="skip")
    good = src.validate("train", progress=False)
    assert [r.id for r in good] == ["0"]
    assert len(src.skipped) == 1
    path, problem = src.skipped[0]
    assert "00001_" in str(path) and "not found" in problem


def test_celebamask_clean_labels(tmp_path):
    make_celebamask(tmp_path, 2)
    write_label(tmp_path / "labels_clean" / "1.png", np.full((16, 16), 2, np.uint8))
    src = open_source("celebamask", tmp_path)
    recs = src.records("train")
    assert recs[0].clean_label_path is None
    assert (src.load_clean_label(recs[1]) == 2).all()


# ---- Helen -------------------------------------------------------------------------------------
def test_helen_layout_and_argmax_merge(tmp_path):
    maps = make_helen(tmp_path, {"exemplars.txt": ["100032540_1", "100040721_1", "10405146_1"],
                                 "tuning.txt": ["1030333538_1"], "testing.txt": ["1344304961_1"]})
    src = open_source("helen", tmp_path)
    recs = src.records("train")
    assert [r.id for r in recs] == ["100032540_1", "100040721_1", "10405146_1"]
    r = recs[0]
    assert r.label_path == tmp_path / "labels" / "100032540_1"
    assert r.label_parts[10] == r.label_path / "100032540_1_lbl10.png"
    image, label = src.load_pair(r)
    assert image.shape == (20, 24, 3)
    expected = np.argmax(maps[r.id], axis=0)
    np.testing.assert_array_equal(label, expected)
    assert label[7, 7] == 4 and label[7, 15] == 5 and label[1, 1] == 10 and label[18, 1] == 0
    assert label[12, 12] == 1  # tie between skin and nose -> lower id
    assert [x.id for x in src.records("val")] == ["1030333538_1"]
    assert [x.id for x in src.records("test")] == ["1344304961_1"]
    assert src.label_relpath(r) == Path("labels/100032540_1.png")


def test_helen_split_list_spacing_variants(tmp_path):
    p = tmp_path / "x.txt"
    p.write_text("1 , 100032540_1\n2,100040721_1\n  3 ,   10405146_1  \n\n4 10405146_2\n")
    assert parse_split_list(p) == ["100032540_1", "100040721_1", "10405146_1", "10405146_2"]


def test_helen_missing_split_list_and_map(tmp_path):
    make_helen(tmp_path, {"exemplars.txt": ["a_1", "b_1"]})
    src = open_source("helen", tmp_path)
    with pytest.raises(BadInputError) as e:
        src.records("test")
    assert str(tmp_path / "testing.txt") in str(e.value)
    (tmp_path / "labels" / "b_1" / "b_1_lbl07.png").unlink()
    rec = src.records("train")[1]
    with pytest.raises(BadInputError) as e:
        src.load_label(rec)
    assert "b_1_lbl07.png" in str(e.value) and "not found" in str(e.value)


# ---- folder ------------------------------------------------------------------------------------
def test_folder_with_split_lists(tmp_path):
    labels = make_folder(tmp_path, ["x1", "x2", "x3", "x4"],
                         splits={"train": ["x3", "x1.jpg", "x2"], "val": ["x4"], "test": []})
    src = open_source("folder", tmp_path)
    assert src.kind == "folder"
    assert src.classes.names == ("background", "skin", "l_eye", "r_eye", "left_ear", "right_ear")
    assert set(src.classes.flip_pairs) == {(2, 3), (4, 5)}
    recs = src.records("train")
    assert [r.id for r in recs] == ["x1", "x2", "x3"]
    assert recs[1].image_path.name == "x2.png"
    np.testing.assert_array_equal(src.load_pair(recs[1])[1], labels["x2"])
    assert src.records("test") == []
    assert src.label_relpath(recs[0]) == Path("labels/x1.png")


def test_folder_hash_split_is_deterministic(tmp_path, caplog):
    stems = [f"img{i:03d}" for i in range(60)]
    make_folder(tmp_path, stems, size=(8, 8))
    with caplog.at_level(logging.INFO, logger="labelaudit.data.formats.folder"):
        src = open_source("folder", tmp_path)
        train = [r.id for r in src.records("train")]
        val = [r.id for r in src.records("val")]
    assert sorted(train + val) == stems and not set(train) & set(val)
    assert val == [s for s in stems if hash_split(s) == "val"]
    assert 0 < len(val) < 20
    assert "deterministic 90/10" in caplog.text
    with pytest.raises(BadInputError) as e:
        src.records("test")
    assert str(tmp_path / "splits" / "test.txt") in str(e.value)


def test_folder_classes_txt_problems(tmp_path):
    make_folder(tmp_path, ["a"])
    (tmp_path / "classes.txt").write_text("background\n\nskin\n")
    with pytest.raises(BadInputError, match="line 2 is empty"):
        open_source("folder", tmp_path)
    (tmp_path / "classes.txt").unlink()
    with pytest.raises(BadInputError) as e:
        open_source("folder", tmp_path)
    assert "classes.txt" in str(e.value)


def test_folder_missing_split_list(tmp_path):
    make_folder(tmp_path, ["a", "b"], splits={"train": ["a"]})
    src = open_source("folder", tmp_path)
    with pytest.raises(BadInputError) as e:
        src.records("val")
    assert str(tmp_path / "splits" / "val.txt") in str(e.value)


# ---- bad input: raise names file + problem; skip records it ------------------------------------
def _lapa_with_problem(tmp_path, problem):
    labels = make_lapa(tmp_path, splits={"train": ["a", "b", "c"]})
    d = tmp_path / "train"
    if problem == "corrupt_image":
        bad = d / "images" / "b.jpg"
        bad.write_bytes(b"not an image")
        return bad, "corrupt"
    if problem == "size":
        write_label(d / "labels" / "b.png", np.zeros((10, 10), np.uint8))
        return d / "labels" / "b.png", "differs from image size"
    if problem == "value":
        lab = labels["b"].copy()
        lab[5, 5] = 11
        write_label(d / "labels" / "b.png", lab)
        return d / "labels" / "b.png", ">= the 11 classes"
    if problem == "missing_label":
        (d / "labels" / "b.png").unlink()
        return d / "labels" / "b.png", "not found"
    if problem == "rgb_label":
        cv2.imwrite(str(d / "labels" / "b.png"), np.dstack([labels["b"]] * 3))
        return d / "labels" / "b.png", "RGB"
    if problem == "palette_label":
        from PIL import Image

        Image.fromarray(labels["b"]).convert("P").save(d / "labels" / "b.png")
        return d / "labels" / "b.png", "palette"
    raise AssertionError(problem)


PROBLEMS = ["corrupt_image", "size", "value", "missing_label", "rgb_label", "palette_label"]


@pytest.mark.parametrize("problem", PROBLEMS)
def test_bad_input_raises_with_path_and_problem(tmp_path, problem):
    path, words = _lapa_with_problem(tmp_path, problem)
    src = open_source("lapa", tmp_path)
    rec = src.records("train")[1]
    assert rec.id == "b"
    with pytest.raises(BadInputError) as e:
        src.load_pair(rec)
    assert str(path) in str(e.value) and words in str(e.value)
    assert e.value.path == path
    with pytest.raises(BadInputError):
        src.validate("train", progress=False)


@pytest.mark.parametrize("problem", PROBLEMS)
def test_bad_input_skip_records_it(tmp_path, problem, caplog):
    path, words = _lapa_with_problem(tmp_path, problem)
    src = open_source("lapa", tmp_path, on_bad="skip")
    with caplog.at_level(logging.WARNING):
        good = src.validate("train", progress=False)
    assert [r.id for r in good] == ["a", "c"]
    assert len(src.skipped) == 1
    assert src.skipped[0][0] == path and words in src.skipped[0][1]
    assert str(path) in caplog.text
    src.validate("train", progress=False)  # recorded once, not once per pass
    assert len(src.skipped) == 1


def test_label_255_is_allowed(tmp_path):
    labels = make_lapa(tmp_path, splits={"train": ["a"]})
    lab = labels["a"].copy()
    lab[:3] = 255
    write_label(tmp_path / "train" / "labels" / "a.png", lab)
    src = open_source("lapa", tmp_path)
    np.testing.assert_array_equal(src.load_label(src.records("train")[0]), lab)


def test_bad_clean_label_is_reported(tmp_path):
    make_lapa(tmp_path, splits={"train": ["a", "b"]})
    write_label(tmp_path / "train" / "labels_clean" / "a.png", np.zeros((5, 5), np.uint8))
    src = open_source("lapa", tmp_path, on_bad="skip")
    assert [r.id for r in src.validate("train", progress=False)] == ["b"]
    assert "clean label size" in src.skipped[0][1]


def test_duplicate_image_stems_are_bad_input(tmp_path):
    make_lapa(tmp_path, splits={"train": ["a", "b"]})
    write_rgb(tmp_path / "train" / "images" / "a.png", np.zeros((40, 48, 3), np.uint8))
    with pytest.raises(BadInputError, match="share this stem"):
        open_source("lapa", tmp_path).records("train")
    src = open_source("lapa", tmp_path, on_bad="skip")
    assert [r.id for r in src.records("train")] == ["b"]
    assert "a.*" in str(src.skipped[0][0])
