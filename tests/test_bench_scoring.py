"""Detection measures against hand-computed values."""
import numpy as np
import pytest
from scanhelp import one_flip_scene

from labelaudit.bench.scoring import (
    MaskCounts, PixelAP, RegionCounts, auroc, average_precision, bootstrap_interval, precision_at_k,
    true_regions,
)


def test_average_precision_by_hand():
    # ranking: pos, neg, pos, neg -> precisions at positives 1/1 and 2/3
    scores = np.array([0.9, 0.8, 0.7, 0.1])
    pos = np.array([True, False, True, False])
    assert average_precision(scores, pos) == pytest.approx((1 + 2 / 3) / 2)
    assert precision_at_k(scores, pos) == 0.5


def test_auroc_by_hand_with_tie():
    scores = np.array([0.9, 0.5, 0.5, 0.1])
    pos = np.array([True, True, False, False])
    # pairs (pos, neg): (0.9,0.5)=1 (0.9,0.1)=1 (0.5,0.5)=0.5 (0.5,0.1)=1 -> 3.5/4
    assert auroc(scores, pos) == pytest.approx(3.5 / 4)


def test_pixel_ap_matches_exact_ap_when_scores_are_distinct_bins():
    rng = np.random.default_rng(0)
    s = rng.permutation(1000) / 1000
    pos = rng.random(1000) < 0.2
    ap = PixelAP(bins=1000)
    ap.update(s[:500], pos[:500])
    ap.update(s[500:], pos[500:])
    assert ap.value() == pytest.approx(average_precision(s, pos))


def test_mask_counts():
    flagged = np.array([[1, 1, 0, 0]], bool)
    truth = np.array([[1, 0, 1, 0]], bool)
    m = MaskCounts()
    m.update(flagged, truth)
    assert m.prf() == pytest.approx((0.5, 0.5, 0.5))


def test_region_matching_iou_threshold_and_types():
    types = np.zeros((10, 10), np.uint8)
    types[0:4, 0:4] = 1  # a flip region of 16 px
    types[6:8, 6:10] = 2  # a drop region of 8 px
    truth = true_regions(types)
    assert sorted(k for _, k in truth) == ["drop", "flip"]
    good = np.zeros((10, 10), bool); good[0:4, 0:2] = True  # IoU 8/16 = 0.5
    weak = np.zeros((10, 10), bool); weak[6:7, 9:10] = True  # IoU 1/8 < 0.3
    stray = np.zeros((10, 10), bool); stray[9, 0] = True
    rc = RegionCounts(iou=0.3)
    rc.update([good, weak, stray], truth)
    assert rc.precision() == pytest.approx(1 / 3)
    assert rc.recall("flip") == 1.0 and rc.recall("drop") == 0.0 and rc.recall() == 0.5


def test_recall_at_precision_walks_findings_best_first():
    types = np.zeros((12, 12), np.uint8)
    types[0:3, 0:3] = 1   # flip A
    types[0:3, 6:9] = 1   # flip B
    types[8:11, 0:3] = 2  # drop C
    types[8:11, 6:9] = 3  # boundary D (not a part error)
    truth = true_regions(types)

    def box(y, x):
        m = np.zeros((12, 12), bool)
        m[y:y + 3, x:x + 3] = True
        return m

    stray = np.zeros((12, 12), bool)
    stray[5, 5] = True
    rc = RegionCounts(iou=0.3)
    # ranked: A (0.9), stray (0.8), B (0.7), D (0.6), C (0.2)
    rc.update([box(0, 0), stray, box(0, 6), box(8, 6), box(8, 0)], truth,
              scores=[0.9, 0.8, 0.7, 0.6, 0.2])
    # precision by rank: 1, 1/2, 2/3, 3/4, 4/5 -> >= 0.8 at rank 1 (1 of 3 part regions) and
    # at rank 5 (all 3): the best recall is 1.0
    assert rc.recall_at_precision(("flip", "drop"), 0.8) == pytest.approx(1.0)
    # at >= 0.9 only the first finding qualifies: A alone, 1 of 3
    assert rc.recall_at_precision(("flip", "drop"), 0.9) == pytest.approx(1 / 3)
    assert rc.recall_at_precision(("blob",), 0.8) != rc.recall_at_precision(("blob",), 0.8)  # NaN

    tied = RegionCounts(iou=0.3)
    # the stray finding ties with A: they enter together (precision 1/2), then B: 2/3
    tied.update([box(0, 0), stray, box(0, 6)], truth, scores=[0.9, 0.9, 0.5])
    assert tied.recall_at_precision(("flip", "drop"), 0.8) == 0.0


def test_recall_at_precision_weighs_images_for_a_bootstrap():
    truth, found, stray = one_flip_scene()  # one flip region in each image
    rc = RegionCounts(iou=0.3)
    rc.update([found], truth, scores=[0.9])  # image 0: its region found
    rc.update([stray], truth, scores=[0.95])  # image 1: a stray finding above it, region missed
    # each image once: the stray first (precision 0), then the hit (1/2): never >= 0.8
    assert rc.recall_at_precision(("flip",), 0.8) == 0.0
    # image 1 left out of the draw: one finding, right, its image's one region found
    assert rc.recall_at_precision(("flip",), 0.8, image_weight=np.array([1, 0])) == 1.0
    # image 0 drawn 4 times: precision 4/5 after the hit, recall 4 of the 5 regions drawn
    assert rc.recall_at_precision(("flip",), 0.8, image_weight=np.array([4, 1])) == pytest.approx(0.8)
    # no region of the kind in the draw: undefined
    assert np.isnan(rc.recall_at_precision(("flip",), 0.8, image_weight=np.array([0, 0])))


def test_bootstrap_interval_of_a_mean_by_hand():
    x = np.arange(100, dtype=np.float64)
    lo, hi = bootstrap_interval(lambda c: float((c * x).sum() / c.sum()), len(x))
    # the mean's standard error is 29.0 / sqrt(100) = 2.9: a 95 % interval of about +-5.7
    assert lo < 49.5 < hi and 9.0 < hi - lo < 14.0
    assert bootstrap_interval(lambda c: 0.5, 10) == (0.5, 0.5)
    assert all(np.isnan(bootstrap_interval(lambda c: float("nan"), 10)))
