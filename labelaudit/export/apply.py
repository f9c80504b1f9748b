"""Applying findings to one label map: a pure function, no files.

A whole-part finding (flip / missing / spurious) relabels its region as its suggested class, the
"given->suggested" the reviewer accepted; a boundary finding takes the teacher's label pixel by
pixel (its region can border several classes), when the teacher's map is at hand.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np


class _Finding(Protocol):
    id: int
    kind: str
    suggested_class: int

    def mask(self, frame_shape: tuple[int, int] | None = None) -> np.ndarray | None: ...


@dataclass(frozen=True)
class Change:
    """`pixels` pixels of one finding went from class `before` to class `after`."""

    finding_id: int
    pixels: int
    before: int
    after: int


@dataclass
class Applied:
    label: np.ndarray  # (H, W) uint8, a new array
    changes: list[Change]
    n_applied: int  # findings that had a mask to apply


def pixel_changes(before: np.ndarray, after: np.ndarray) -> list[tuple[int, int, int]]:
    """(class before, class after, pixels) for each pair of classes that changed, in order."""
    diff = before != after
    pairs, counts = np.unique(np.stack([before[diff], after[diff]]), axis=1, return_counts=True)
    return [(int(a), int(b), int(n)) for (a, b), n in zip(pairs.T.tolist(), counts.tolist())]


def apply_findings(label: np.ndarray, findings: Sequence[_Finding], teacher: np.ndarray | None = None) -> Applied:
    """`label` (H, W) uint8 with `findings` applied in order; `teacher` (H, W) uint8 or None.

    A later finding overwrites an earlier one where they overlap; `changes` counts each pixel
    once per finding that changed it.
    """
    new = label.copy()
    changes: list[Change] = []
    n_applied = 0
    for f in findings:
        m = f.mask(label.shape)
        if m is None:
            continue
        before = new[m]
        per_pixel = f.kind == "boundary" and teacher is not None and teacher.shape == label.shape
        after = teacher[m] if per_pixel else np.full(before.shape, f.suggested_class, np.uint8)
        changes += [Change(f.id, n, a, b) for a, b, n in pixel_changes(before, after)]
        new[m] = after
        n_applied += 1
    return Applied(new, changes, n_applied)
