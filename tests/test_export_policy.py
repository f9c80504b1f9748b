"""Which findings an export applies, and how they change a label map (pure functions)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from labelaudit.export import apply_findings, parse_policy, select_findings


@dataclass
class F:
    id: int
    image_id: int
    score: float
    kind: str = "flip"
    suggested_class: int = 0
    box: tuple[int, int, int, int] = (0, 0, 1, 1)  # y0, y1, x0, x1

    def mask(self, shape=None):
        m = np.zeros(shape, bool)
        y0, y1, x0, x1 = self.box
        m[y0:y1, x0:x1] = True
        return m


FINDINGS = [F(1, 10, 0.95), F(2, 10, 0.6), F(3, 11, 0.9), F(4, 12, 0.99), F(5, 13, 0.97)]


def test_accepted_policy_applies_accepted_findings_and_accepted_images_only():
    chosen = select_findings(FINDINGS, {2: "accept", 4: "reject"}, {12: "accept", 11: "accept"},
                             parse_policy("accepted"))
    # finding 4's own rejection beats its image's acceptance; image 11 accepted: finding 3 too
    assert {k: [f.id for f in v] for k, v in chosen.items()} == {10: [2], 11: [3]}


def test_threshold_policy_skips_rejected_and_relabel_findings():
    chosen = select_findings(FINDINGS, {4: "relabel", 1: "reject"}, {13: "relabel"},
                             parse_policy("threshold:0.9"))
    assert {k: [f.id for f in v] for k, v in chosen.items()} == {11: [3]}
    assert parse_policy("threshold:0.9").threshold == 0.9
    for bad in ("threshold:2", "threshold:x", "all"):
        with pytest.raises(ValueError):
            parse_policy(bad)


def test_apply_findings_whole_part_and_boundary_per_pixel():
    label = np.zeros((4, 4), np.uint8)
    label[:2] = 3
    teacher = np.full((4, 4), 7, np.uint8)
    teacher[0, 0] = 3
    fixes = [F(1, 0, 1.0, "flip", 5, (0, 1, 0, 2)),       # row 0, cols 0-1 -> class 5
             F(2, 0, 1.0, "boundary", 0, (0, 2, 0, 1))]    # col 0, rows 0-1 -> teacher's labels
    out = apply_findings(label, fixes, teacher)
    expected = label.copy()
    expected[0, 1] = 5
    expected[0, 0] = 3  # flip made it 5, the boundary finding gives it the teacher's 3 back
    expected[1, 0] = 7
    assert np.array_equal(out.label, expected) and out.n_applied == 2
    assert np.array_equal(label[:2], np.full((2, 4), 3))  # the input is not modified
    assert {(c.finding_id, c.pixels, c.before, c.after) for c in out.changes} == {
        (1, 2, 3, 5), (2, 1, 5, 3), (2, 1, 3, 7)}
    # without the teacher's map a boundary finding takes its suggested class
    assert apply_findings(label, fixes[1:], None).label[1, 0] == 0
