"""How much a teacher believes each given label: pixel self-confidence and per-class thresholds.

Confident learning's two quantities, in cleanlab's convention (low = suspicious), shared by the
training run (which records the teacher's thresholds on the validation split) and the scan (which
uses them). Shapes: probs (C, H, W) summing to 1 over C; label (H, W) ints, 255 = ignored.
"""
from __future__ import annotations

import numpy as np

from labelaudit.data.classes import IGNORE_INDEX


def class_index(label: np.ndarray) -> np.ndarray:
    """The label as int64 class indices, ignored pixels as class 0 (callers mask them out)."""
    return np.where(label == IGNORE_INDEX, 0, label).astype(np.int64)


def self_confidence(probs: np.ndarray, label: np.ndarray) -> np.ndarray:
    """(H, W) p[given label] per pixel; ignored pixels get 1 (never suspicious)."""
    q = np.take_along_axis(probs, class_index(label)[None], axis=0)[0]
    return np.where(label != IGNORE_INDEX, q, 1.0).astype(np.float32)


class ConfidenceStats:
    """Streams the per-class mean self-confidence: the confident-learning thresholds t_j."""

    def __init__(self, num_classes: int) -> None:
        self.sum = np.zeros(num_classes, dtype=np.float64)
        self.count = np.zeros(num_classes, dtype=np.int64)

    def update(self, probs: np.ndarray, label: np.ndarray) -> None:
        valid = label != IGNORE_INDEX
        q = self_confidence(probs, label)
        c = len(self.sum)
        self.sum += np.bincount(label[valid].ravel(), weights=q[valid].ravel(), minlength=c)[:c]
        self.count += np.bincount(label[valid].ravel(), minlength=c)[:c]

    def thresholds(self, floor: float = 0.5) -> np.ndarray:
        """(C,) t_j = mean p_j over pixels labelled j, at least `floor` (1.0 for unseen classes)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            t = np.where(self.count > 0, self.sum / np.maximum(self.count, 1), 1.0)
        return np.maximum(t, floor)
