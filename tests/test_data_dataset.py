"""FaceParsingDataset: shapes, normalisation, reproducible augmentation, mapping back."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from labelaudit.data import (
    LAPA, BadInputError, FaceParsingDataset, collate, open_source, params_from_batch, warp_back,
    write_label,
)
from labelaudit.data.dataset import IMAGENET_MEAN, IMAGENET_STD, normalize_image, sample_rng


def make_lapa(root: Path, n: int = 4, h: int = 30, w: int = 40) -> dict[str, np.ndarray]:
    labels = {}
    for k in range(n):
        stem = f"s{k}"
        lab = np.zeros((h, w), np.uint8)
        cv2.ellipse(lab, (w // 2 + k, h // 2), (w // 3, h // 3), 0, 0, 360, 1, -1)
        lab[h // 3: h // 3 + 3, w // 4: w // 4 + 5] = 4
        lab[h // 3: h // 3 + 3, w - w // 4 - 5: w - w // 4] = 5
        lab[:3] = 10
        img = np.zeros((h, w, 3), np.uint8)
        img[..., 0] = lab * 20          # R follows the label
        img[..., 2] = 200               # B constant
        (root / "train" / "images").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / "train" / "images" / f"{stem}.png"), img[:, :, ::-1])
        write_label(root / "train" / "labels" / f"{stem}.png", lab)
        labels[stem] = lab
    return labels


@pytest.fixture
def lapa(tmp_path):
    labels = make_lapa(tmp_path)
    return open_source("lapa", tmp_path), labels


def test_item_shapes_dtypes_and_meta(lapa):
    src, labels = lapa
    ds = FaceParsingDataset(src, "train", size=48)
    assert len(ds) == 4
    it = ds[2]
    assert it["image"].shape == (3, 48, 48) and it["image"].dtype == torch.float32
    assert it["label"].shape == (48, 48) and it["label"].dtype == torch.int64
    assert it["index"] == 2 and it["id"] == "s2"
    assert set(it["label"].unique().tolist()) <= set(range(11)) | {255}
    # 40x30 letterboxed: top and bottom bands are ignore
    assert (it["label"][:4] == 255).all() and (it["label"][20:28] != 255).all()
    assert it["orig_h"] == 30 and it["orig_w"] == 40 and it["size"] == 48
    assert it["scale"] == 1.0 and it["rotation"] == 0.0 and it["flip"] is False
    assert it["center"].tolist() == [19.5, 14.5]


def test_normalisation_rgb_and_reference_bgr(lapa):
    src, _ = lapa
    rgb = FaceParsingDataset(src, "train", size=48)[0]["image"]
    bgr = FaceParsingDataset(src, "train", size=48, channel_order="bgr")[0]["image"]
    # a pixel inside the image, background class: R = 0, G = 0, B = 200
    px_rgb, px_bgr = rgb[:, 24, 2].numpy(), bgr[:, 24, 2].numpy()
    np.testing.assert_allclose(px_rgb, (np.array([0, 0, 200]) / 255 - IMAGENET_MEAN) / IMAGENET_STD,
                               atol=1e-5)
    # reference quirk: channel 0 holds blue but is shifted by the red mean
    np.testing.assert_allclose(px_bgr, (np.array([200, 0, 0]) / 255 - IMAGENET_MEAN) / IMAGENET_STD,
                               atol=1e-5)
    with pytest.raises(ValueError):
        normalize_image(np.zeros((2, 2, 3), np.uint8), "rbg")


def test_augmentation_reproducible_per_seed_epoch_index(lapa):
    src, _ = lapa
    kw = dict(size=40, augment=True, seed=3)
    a, b = FaceParsingDataset(src, "train", **kw), FaceParsingDataset(src, "train", **kw)
    for i in range(len(a)):
        x, y = a[i], b[i]
        assert torch.equal(x["image"], y["image"]) and torch.equal(x["label"], y["label"])
        assert (x["scale"], x["rotation"], x["flip"]) == (y["scale"], y["rotation"], y["flip"])
    again = a[1]
    assert torch.equal(again["image"], b[1]["image"])          # no hidden state consumed
    a.set_epoch(1)
    assert not torch.equal(a[1]["image"], b[1]["image"])
    assert a[1]["scale"] != b[1]["scale"]
    b.set_epoch(1)
    assert torch.equal(a[1]["label"], b[1]["label"])
    other_seed = FaceParsingDataset(src, "train", size=40, augment=True, seed=4)
    other_seed.set_epoch(1)
    assert other_seed[1]["scale"] != b[1]["scale"]
    # the random stream is a pure function of (seed, epoch, index)
    assert sample_rng(3, 1, 2).random() == sample_rng(3, 1, 2).random()
    assert sample_rng(3, 1, 2).random() != sample_rng(3, 2, 1).random()


def test_workers_see_the_same_augmentation(lapa):
    src, _ = lapa
    ds = FaceParsingDataset(src, "train", size=32, augment=True, seed=5)
    ds.set_epoch(2)
    serial = next(iter(DataLoader(ds, batch_size=4, collate_fn=collate)))
    parallel = next(iter(DataLoader(ds, batch_size=4, collate_fn=collate, num_workers=2)))
    assert torch.equal(serial["image"], parallel["image"])
    assert torch.equal(serial["flip"], parallel["flip"])


def test_augmentation_flips_swap_classes(lapa):
    src, labels = lapa
    plain = FaceParsingDataset(src, "train", size=40)[0]["label"].numpy()
    ds = FaceParsingDataset(src, "train", size=40, augment=True, scale_range=(1.0, 1.0),
                            rotation=0.0, seed=0)
    seen = set()
    for epoch in range(8):
        ds.set_epoch(epoch)
        it = ds[0]
        lab = it["label"].numpy()
        if it["flip"]:
            # mirrored, and where the plain view has l_eye (4) the mirror shows r_eye (5)
            mirrored = plain[:, ::-1]
            assert (lab[mirrored == 4] == 5).mean() > 0.9
            assert (lab[mirrored == 5] == 4).mean() > 0.9
            assert (lab[mirrored == 1] == 1).mean() > 0.95
        else:
            assert (lab == plain).mean() > 0.99
        seen.add(it["flip"])
    assert seen == {True, False}


def test_collate_and_warp_back_to_label_frame(lapa):
    src, labels = lapa
    ds = FaceParsingDataset(src, "train", size=64, augment=True, scale_range=(0.9, 1.0),
                            rotation=10.0, seed=1)
    batch = collate([ds[i] for i in range(3)])
    assert batch["image"].shape == (3, 3, 64, 64) and batch["label"].shape == (3, 64, 64)
    assert batch["index"].tolist() == [0, 1, 2] and batch["id"] == ["s0", "s1", "s2"]
    assert batch["center"].shape == (3, 2) and batch["flip"].dtype == torch.bool
    for i in range(3):
        p = params_from_batch(batch, i)
        assert p.src_size == (30, 40) and p.out_size == 64
        lab_w = batch["label"][i].numpy().astype(np.uint8)
        back = warp_back(lab_w, p, LAPA)
        assert (back == labels[f"s{i}"]).mean() > 0.97


def test_labels_dir_overrides_labels(lapa, tmp_path):
    src, labels = lapa
    fixed = tmp_path / "fixed"
    write_label(fixed / "train" / "labels" / "s0.png", np.full((30, 40), 6, np.uint8))
    ds = FaceParsingDataset(src, "train", size=32, labels_dir=fixed)
    lab = ds[0]["label"]
    assert set(lab.unique().tolist()) == {6, 255}
    with pytest.raises(BadInputError) as e:
        ds[1]
    assert str(fixed / "train" / "labels" / "s1.png") in str(e.value)


def test_on_bad_skip_substitutes_and_records(lapa, tmp_path):
    src, _ = lapa
    bad = tmp_path / "train" / "labels" / "s1.png"
    write_label(bad, np.full((30, 40), 42, np.uint8))
    strict = FaceParsingDataset(src, "train", size=32)
    with pytest.raises(BadInputError) as e:
        strict[1]
    assert str(bad) in str(e.value)
    lenient = FaceParsingDataset(src, "train", size=32, on_bad="skip")
    it = lenient[1]
    assert it["index"] == 2 and it["id"] == "s2"
    assert src.skipped == [(bad, src.skipped[0][1])] and "42" in src.skipped[0][1]
    # validate() drops it up front, so nothing is substituted afterwards
    checked = FaceParsingDataset(src, "train", size=32, on_bad="skip")
    dropped = checked.validate(progress=False)
    assert [r.id for r in checked.records] == ["s0", "s2", "s3"] and len(checked) == 3
    assert dropped == [] and len(src.skipped) == 1   # already recorded once
    assert [checked[i]["id"] for i in range(3)] == ["s0", "s2", "s3"]
