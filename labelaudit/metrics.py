"""Face-parsing metrics computed the way the DML-CSR paper reports them (docs/design.md §8).

One confusion matrix is accumulated over a whole split at the original label size (pixels
labelled 255 are dropped); F1 and IoU per class come from that single matrix, not from a mean
of per-image scores.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from labelaudit.data.classes import HELEN_OVERALL_CLASSES, IGNORE_INDEX


def confusion_matrix(label: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """(C, C) int64 matrix M[g, p] = number of pixels with given label g predicted as p.

    label, pred: integer arrays of the same shape; label pixels equal to 255 are skipped.
    """
    if label.shape != pred.shape:
        raise ValueError(f"label shape {label.shape} != prediction shape {pred.shape}")
    label = label.reshape(-1).astype(np.int64)
    pred = pred.reshape(-1).astype(np.int64)
    keep = label != IGNORE_INDEX
    label, pred = label[keep], pred[keep]
    if label.size and (label.max() >= num_classes or pred.max() >= num_classes or pred.min() < 0):
        raise ValueError(f"class index out of range for {num_classes} classes")
    return np.bincount(label * num_classes + pred, minlength=num_classes**2).reshape(
        num_classes, num_classes
    )


def f1_from_confusion(cm: np.ndarray) -> np.ndarray:
    """(C,) per-class F1 = 2TP / (2TP + FP + FN); NaN for a class absent from labels and predictions."""
    tp = np.diag(cm).astype(np.float64)
    denom = cm.sum(0) + cm.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, 2 * tp / denom, np.nan)


def iou_from_confusion(cm: np.ndarray) -> np.ndarray:
    """(C,) per-class IoU = TP / (TP + FP + FN); NaN for a class absent from labels and predictions."""
    tp = np.diag(cm).astype(np.float64)
    denom = cm.sum(0) + cm.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, tp / denom, np.nan)


def merge_classes(cm: np.ndarray, groups: list[list[int]]) -> np.ndarray:
    """Confusion matrix after merging each group of classes into one (unlisted classes stay)."""
    c = cm.shape[0]
    target = np.arange(c)
    merged_ids = {}
    for g in groups:
        for k in g:
            target[k] = g[0]
    # renumber to a compact range keeping the original order
    for k in range(c):
        merged_ids.setdefault(int(target[k]), len(merged_ids))
    index = np.array([merged_ids[int(target[k])] for k in range(c)])
    n = len(merged_ids)
    out = np.zeros((n, n), dtype=cm.dtype)
    np.add.at(out, (index[:, None], index[None, :]), cm)
    return out


@dataclass
class ParsingScores:
    """Split-level scores in percent, as in the paper's tables."""

    class_names: tuple[str, ...]
    f1: np.ndarray  # (C,) percent
    iou: np.ndarray  # (C,) percent
    mean_f1: float  # over all classes except background
    miou: float  # including background
    overall_f1: float | None = None  # Helen: merged inner-face classes
    extra: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, float]:
        out = {"mean_f1": self.mean_f1, "miou": self.miou}
        if self.overall_f1 is not None:
            out["overall_f1"] = self.overall_f1
        for name, f, i in zip(self.class_names, self.f1, self.iou):
            out[f"f1/{name}"] = float(f)
            out[f"iou/{name}"] = float(i)
        return out


def parsing_scores(cm: np.ndarray, class_names: tuple[str, ...] | list[str]) -> ParsingScores:
    """Per-class F1/IoU, mean F1 without background (class 0), mIoU with it, Helen overall F1.

    The overall F1 is filled when every class of HELEN_OVERALL_CLASSES is in class_names (LaPa and
    Helen vocabularies): those classes are merged into one and that class's F1 is reported.
    """
    names = tuple(class_names)
    f1 = f1_from_confusion(cm) * 100
    iou = iou_from_confusion(cm) * 100
    mean_f1 = float(np.nanmean(f1[1:])) if len(f1) > 1 else float("nan")
    miou = float(np.nanmean(iou))
    overall = None
    if all(n in names for n in HELEN_OVERALL_CLASSES):
        group = [names.index(n) for n in HELEN_OVERALL_CLASSES]
        merged = merge_classes(cm, [group])
        # the merged class sits where its first member was, after renumbering
        pos = sorted(set(range(len(names))) - set(group[1:])).index(group[0])
        overall = float(f1_from_confusion(merged)[pos] * 100)
    return ParsingScores(names, f1, iou, mean_f1, miou, overall)


class ConfusionAccumulator:
    """Adds up confusion matrices image by image (streaming; memory O(C^2))."""

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.matrix = np.zeros((num_classes, num_classes), dtype=np.int64)

    def update(self, label: np.ndarray, pred: np.ndarray) -> None:
        self.matrix += confusion_matrix(label, pred, self.num_classes)

    def scores(self, class_names: tuple[str, ...] | list[str]) -> ParsingScores:
        return parsing_scores(self.matrix, class_names)
