"""Evidence that a teacher may have learnt the noise it should find, from an ensemble's members.

An ensemble teacher (the `snapshots` teacher: students kept along one training, oldest first; or
several models' probabilities) votes once per member: each member's per-pixel argmax. Two
numbers come of it, stored with the scan:

- per finding, `agreement`: the share of members whose majority class over the finding's region
  is the suggested class. 1.0: every member sees the error; a low value with a high p_error
  means the mean is carried by a few members.
- per image, `learnt_pixels`: labelled pixels where the older half of the members mostly
  disagrees with the given label but the newest member takes it. Networks fit clean labels
  before they memorise noisy ones, so these are the pixels where the final network may have
  learnt a wrong label: the errors a converged teacher no longer flags.

Single-model teachers have no votes: both are None.
"""
from __future__ import annotations

import numpy as np

from labelaudit.data.classes import IGNORE_INDEX


def region_agreement(votes: np.ndarray, bbox: tuple[int, int, int, int], mask: np.ndarray,
                     suggested: int) -> float:
    """Share of members (votes: (M, H, W) argmax) whose majority class on the region (`mask`
    cropped to `bbox` = x, y, w, h) is `suggested`."""
    x, y, w, h = bbox
    inside = votes[:, y:y + h, x:x + w][:, mask]  # (M, n)
    if inside.shape[1] == 0:
        return float("nan")
    n_classes = int(max(inside.max(), suggested)) + 1
    majority = np.array([np.bincount(row, minlength=n_classes).argmax() for row in inside])
    return float((majority == suggested).mean())


def learnt_pixels(votes: np.ndarray, label: np.ndarray) -> int:
    """Labelled pixels where most of the older half disagrees with `label` and the newest agrees.

    With fewer than two members there is no older half: 0."""
    m = votes.shape[0]
    if m < 2:
        return 0
    older = votes[: m // 2]
    disagree = (older != label[None]).mean(0) > 0.5
    valid = label != IGNORE_INDEX
    return int((disagree & (votes[-1] == label) & valid).sum())
