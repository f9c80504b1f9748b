"""Colour-only baseline: how well a per-pixel RGB classifier parses the generated faces.

A low score shows that the data needs spatial context (left vs right, upper vs lower lip, nose
vs skin), i.e. that a face-parsing network has something to learn that colour cannot give.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from labelaudit.metrics import confusion_matrix, f1_from_confusion


def colour_only_baseline_f1(root: Path | str, format: str | None = None, bins: int = 16) -> float:
    """Mean F1 (no background) on `val` of a colour-histogram Bayes classifier fit on `train`.

    The classifier predicts, per RGB bin (bins^3 of them), the most frequent given training
    label; F1 per class comes from one confusion matrix over the whole val split. Classes
    1..C-1 are averaged (LaPa/Helen: the 10 LaPa classes; CelebAMask: 18), skipping classes
    absent from both labels and predictions. Data is read with the real loaders
    (`open_source`); `format` defaults to the one in the set's synthetic.json.
    """
    from labelaudit.data.formats import open_source

    root = Path(root)
    if format is None:
        format = json.loads((root / "synthetic.json").read_text())["format"]
    if bins not in (2, 4, 8, 16, 32, 64, 128, 256):
        raise ValueError(f"bins must be a power of two <= 256, got {bins}")
    options = {"cache": False} if format == "celebamask" else {}   # read-only: no merge cache
    source = open_source(format, root, **options)
    num_classes = source.classes.num_classes
    shift = 8 - int(np.log2(bins))

    def bin_index(img: np.ndarray) -> np.ndarray:
        q = (img >> shift).astype(np.int64)
        return (q[..., 0] * bins + q[..., 1]) * bins + q[..., 2]

    counts = np.zeros(bins ** 3 * num_classes, np.int64)
    for record in source.records("train"):
        img, label = source.load_pair(record)
        keep = label < num_classes
        counts += np.bincount(bin_index(img)[keep] * num_classes + label[keep],
                              minlength=counts.size)
    lut = counts.reshape(bins ** 3, num_classes).argmax(1)   # unseen colours -> background

    cm = np.zeros((num_classes, num_classes), np.int64)
    for record in source.records("val"):
        img, label = source.load_pair(record)
        cm += confusion_matrix(label, lut[bin_index(img)], num_classes)
    return float(np.nanmean(f1_from_confusion(cm)[1:]))
