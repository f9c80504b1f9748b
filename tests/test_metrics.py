"""Metrics against hand-computed confusion matrices (docs/design.md §8)."""
import numpy as np
import pytest

from labelaudit.data.classes import LAPA
from labelaudit.metrics import (
    ConfusionAccumulator,
    confusion_matrix,
    f1_from_confusion,
    iou_from_confusion,
    merge_classes,
    parsing_scores,
)


def test_confusion_matrix_counts_and_drops_ignore():
    label = np.array([[0, 1, 1], [2, 255, 2]])
    pred = np.array([[0, 1, 2], [2, 0, 1]])
    cm = confusion_matrix(label, pred, 3)
    # by hand: (0,0)=1, (1,1)=1, (1,2)=1, (2,2)=1, (2,1)=1; the 255 pixel is dropped
    expected = np.array([[1, 0, 0], [0, 1, 1], [0, 1, 1]])
    np.testing.assert_array_equal(cm, expected)


def test_f1_and_iou_by_hand():
    cm = np.array([[5, 1, 0], [2, 3, 1], [0, 0, 0]])
    # class 0: tp 5, fp 2, fn 1 -> f1 10/13, iou 5/8; class 1: tp 3, fp 1, fn 3 -> 6/10, 3/7
    f1 = f1_from_confusion(cm)
    iou = iou_from_confusion(cm)
    assert f1[0] == pytest.approx(10 / 13)
    assert f1[1] == pytest.approx(6 / 10)
    assert iou[0] == pytest.approx(5 / 8)
    assert iou[1] == pytest.approx(3 / 7)
    # class 2: fp 1 (a class-1 pixel predicted 2), no tp -> 0, not NaN
    assert f1[2] == 0.0


def test_absent_class_is_nan_and_excluded_from_means():
    cm = np.array([[4, 0, 0], [0, 2, 0], [0, 0, 0]])
    s = parsing_scores(cm, ("background", "a", "b"))
    assert np.isnan(s.f1[2])
    assert s.mean_f1 == pytest.approx(100.0)
    assert s.miou == pytest.approx(100.0)


def test_mean_f1_excludes_background_and_miou_includes_it():
    cm = np.array([[8, 2], [2, 8]])
    s = parsing_scores(cm, ("background", "skin"))
    assert s.mean_f1 == pytest.approx(80.0)  # skin only: 16/20
    assert s.miou == pytest.approx(100 * (8 / 12 + 8 / 12) / 2)
    # background and skin F1 differ here, so including background would show
    cm = np.array([[18, 2], [0, 4]])  # background 36/38, skin 8/10
    assert parsing_scores(cm, ("background", "skin")).mean_f1 == pytest.approx(80.0)


def test_helen_overall_merges_inner_face_classes():
    c = LAPA.num_classes
    cm = np.zeros((c, c), dtype=np.int64)
    l_eye, r_eye, nose, skin = (LAPA.index(n) for n in ("l_eye", "r_eye", "nose", "skin"))
    cm[l_eye, r_eye] = 10  # left/right confusion: wrong per class, right once merged
    cm[nose, nose] = 10
    cm[nose, skin] = 5  # a real miss of the merged class
    cm[skin, skin] = 20
    s = parsing_scores(cm, LAPA.names)
    # merged inner class: tp 20, fn 5, fp 0 -> 40/45
    assert s.overall_f1 == pytest.approx(100 * 40 / 45)
    assert s.f1[l_eye] == 0.0


def test_merge_classes_keeps_totals():
    cm = np.arange(16).reshape(4, 4)
    m = merge_classes(cm, [[1, 3]])
    assert m.shape == (3, 3)
    assert m.sum() == cm.sum()
    assert m[1, 1] == cm[1, 1] + cm[1, 3] + cm[3, 1] + cm[3, 3]


def test_accumulator_equals_one_big_matrix():
    rng = np.random.default_rng(0)
    labels = [rng.integers(0, 4, (5, 7)) for _ in range(3)]
    preds = [rng.integers(0, 4, (5, 7)) for _ in range(3)]
    acc = ConfusionAccumulator(4)
    for lab, pr in zip(labels, preds):
        acc.update(lab, pr)
    whole = confusion_matrix(np.concatenate([x.ravel() for x in labels]),
                             np.concatenate([x.ravel() for x in preds]), 4)
    np.testing.assert_array_equal(acc.matrix, whole)


def test_shape_mismatch_and_range_errors():
    with pytest.raises(ValueError):
        confusion_matrix(np.zeros((2, 2)), np.zeros((2, 3)), 2)
    with pytest.raises(ValueError):
        confusion_matrix(np.array([3]), np.array([0]), 2)
