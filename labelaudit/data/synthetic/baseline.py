"""Colour-only baseline: how well a per-pixel RGB classifier parses the generated faces.

A low score shows that the data needs spatial context (left vs right, upper vs lower lip, nose
vs skin), i.e. that a face-parsing network has something to learn that colour cannot give.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from labelaudit.data.classes import CELEBAMASK, LAPA
from labelaudit.metrics import confusion_matrix, f1_from_confusion


def _read_rgb(path: Path, size: int | None = None) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise OSError(f"unreadable image {path}")
    if size is not None and img.shape[0] != size:
        img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    return img[..., ::-1]


def iter_split(root: Path, format: str, split: str) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(image (H, W, 3) RGB at label size, given label (H, W)) for one split of a generated set.

    Reads only what `generate` writes (a stand-in for the real loaders, which may not be
    installed where this runs).
    """
    from labelaudit.data.synthetic.writers import SPLITS, merge_celebamask_parts, merge_helen_labels

    root = Path(root)
    if format == "lapa":
        for img_path in sorted((root / split / "images").glob("*.jpg")):
            label = cv2.imread(str(root / split / "labels" / f"{img_path.stem}.png"),
                               cv2.IMREAD_UNCHANGED)
            yield _read_rgb(img_path), label
    elif format == "helen":
        name = {"train": "exemplars.txt", "val": "tuning.txt", "test": "testing.txt"}[split]
        for line in (root / name).read_text().splitlines():
            stem = line.split(",")[1].strip()
            yield _read_rgb(root / "images" / f"{stem}.jpg"), merge_helen_labels(root, stem)
    elif format == "celebamask":
        part = {ln.split()[0]: int(ln.split()[1])
                for ln in (root / "list_eval_partition.txt").read_text().splitlines()}
        size = json.loads((root / "synthetic.json").read_text())["size"]
        lines = (root / "CelebA-HQ-to-CelebA-mapping.txt").read_text().splitlines()[1:]
        for ln in lines:
            i, _, orig = ln.split()
            if SPLITS[part[orig]] != split:
                continue
            yield (_read_rgb(root / "CelebA-HQ-img" / f"{i}.jpg", size),
                   merge_celebamask_parts(root, int(i), size))
    else:
        raise ValueError(f"unknown format {format!r}")


def colour_only_baseline_f1(root: Path | str, format: str | None = None, bins: int = 16) -> float:
    """Mean F1 (no background) on `val` of a colour-histogram Bayes classifier fit on `train`.

    The classifier predicts, per RGB bin (bins^3 of them), the most frequent training label;
    F1 per class comes from one confusion matrix over the whole val split. Classes 1..C-1 are
    averaged (LaPa/Helen: the 10 LaPa classes; CelebAMask: 18), skipping classes absent from
    both labels and predictions. `format` defaults to the one in the set's synthetic.json.
    """
    root = Path(root)
    if format is None:
        format = json.loads((root / "synthetic.json").read_text())["format"]
    if bins not in (2, 4, 8, 16, 32, 64, 128, 256):
        raise ValueError(f"bins must be a power of two <= 256, got {bins}")
    num_classes = CELEBAMASK.num_classes if format == "celebamask" else LAPA.num_classes
    shift = 8 - int(np.log2(bins))

    def bin_index(img: np.ndarray) -> np.ndarray:
        q = (img >> shift).astype(np.int64)
        return (q[..., 0] * bins + q[..., 1]) * bins + q[..., 2]

    counts = np.zeros(bins ** 3 * num_classes, np.int64)
    for img, label in iter_split(root, format, "train"):
        keep = label < num_classes
        idx = bin_index(img)[keep] * num_classes + label[keep]
        counts += np.bincount(idx, minlength=counts.size)
    lut = counts.reshape(bins ** 3, num_classes).argmax(1)   # unseen colours -> background

    cm = np.zeros((num_classes, num_classes), np.int64)
    for img, label in iter_split(root, format, "val"):
        cm += confusion_matrix(label, lut[bin_index(img)], num_classes)
    return float(np.nanmean(f1_from_confusion(cm)[1:]))
