"""Pixel/region/image scoring on hand-made masks with planted errors."""
import cv2
import numpy as np
import pytest

from labelaudit.scan.score import (
    ConfidenceStats, ScanParams, audit_image, self_confidence, top_class,
)

C = 11


def face(size=96, shift=0):
    lab = np.zeros((size, size), np.uint8)
    cv2.circle(lab, (48 + shift, 48), 34, 1, -1)  # skin
    cv2.circle(lab, (34, 40), 6, 4, -1)  # l_eye
    cv2.circle(lab, (62, 40), 6, 5, -1)  # r_eye
    cv2.rectangle(lab, (44, 46), (52, 60), 6, -1)  # nose
    return lab


def teacher(clean, conf=0.9):
    """Probabilities that put `conf` on the clean class, the rest spread evenly."""
    p = np.full((C,) + clean.shape, (1 - conf) / (C - 1), np.float32)
    np.put_along_axis(p, clean[None].astype(np.int64), conf, axis=0)
    return p


def thresholds_for(pairs):
    st = ConfidenceStats(C)
    for probs, lab in pairs:
        st.update(probs, lab)
    return st.thresholds()


def test_top_class_is_argmax_and_max_with_first_index_on_ties():
    rng = np.random.default_rng(0)
    p = rng.integers(0, 4, (C, 16, 16)).astype(np.float32)  # many ties
    pred, top = top_class(p)
    np.testing.assert_array_equal(pred, p.argmax(0))
    np.testing.assert_array_equal(top, p.max(0))


def test_self_confidence_ignores_255():
    lab = np.array([[0, 1], [255, 1]], np.uint8)
    p = np.zeros((2, 2, 2), np.float32)
    p[0] = [[0.8, 0.3], [0.5, 0.1]]
    p[1] = 1 - p[0]
    q = self_confidence(p, lab)
    np.testing.assert_allclose(q, [[0.8, 0.7], [1.0, 0.9]])


def test_planted_flip_ranks_first_and_is_a_flip():
    clean = face()
    flipped = clean.copy()
    flipped[clean == 4], flipped[clean == 5] = 5, 4
    images = [(teacher(clean), clean)] * 5 + [(teacher(clean), flipped)] + [(teacher(face(shift=2)), face(shift=2))] * 3
    th = thresholds_for(images)
    audits = [audit_image(p, l, th) for p, l in images]
    order = np.argsort([a.label_quality for a in audits])
    assert order[0] == 5
    bad = audits[5]
    assert bad.label_quality < 0.5
    kinds = {(r.given, r.suggested, r.kind) for r in bad.regions}
    assert kinds == {(4, 5, "flip"), (5, 4, "flip")}
    for a in (audits[i] for i in range(9) if i != 5):
        assert a.regions == [] and a.label_quality == pytest.approx(0.9, abs=1e-3)  # teacher conf


def test_thin_boundary_disagreement_is_not_a_finding_but_a_thick_shift_is():
    clean = face()
    thin = face(shift=1)  # skin edge moved by one pixel
    thick = clean.copy()
    grown = cv2.dilate((clean == 1).astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    thick[grown & (clean == 0)] = 1  # skin bleeds 4 px into background
    th = thresholds_for([(teacher(clean), clean)])
    assert audit_image(teacher(clean), thin, th).regions == []
    regions = audit_image(teacher(clean), thick, th).regions
    assert regions and all(r.kind == "boundary" and (r.given, r.suggested) == (1, 0) for r in regions)


def test_thin_parts_swapped_whole_are_a_flip_when_the_teacher_is_sure():
    """Lips 2 px thin (thinner than the opening) labelled upper for lower: kept as two flips while
    the teacher gives the label <= thin_sure; the same swap with an unsure teacher is not kept."""
    clean = face()
    clean[64:66, 40:57] = 7  # upper lip
    clean[66:68, 40:57] = 9  # lower lip
    noisy = clean.copy()
    noisy[clean == 7], noisy[clean == 9] = 9, 7
    th = thresholds_for([(teacher(clean), clean)])
    params = ScanParams()
    assert params.min_thickness > 2 and params.thin_sure >= 0.01
    regions = audit_image(teacher(clean), noisy, th, params).regions  # p[given] = 0.01
    assert sorted((r.kind, r.given, r.suggested, r.area) for r in regions) == [
        ("flip", 7, 9, 34), ("flip", 9, 7, 34)]
    unsure = mixed_teacher(clean, noisy, q_given=0.2)  # the given label still at 0.2
    assert params.thin_sure < 0.2 and audit_image(unsure, noisy, th, params).regions == []


def test_a_whole_part_finding_ranks_before_a_boundary_one_of_equal_evidence():
    clean = face()
    noisy = clean.copy()
    grown = cv2.dilate((clean == 1).astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    noisy[grown & (clean == 0)] = 1  # skin bleeds 4 px into background: large, partial
    noisy[clean == 6] = 1  # nose dropped: small, a whole part
    th = thresholds_for([(teacher(clean), clean)])
    regions = audit_image(teacher(clean), noisy, th).regions
    assert [r.kind for r in regions] == ["missing", "boundary"]  # same teacher confidence 0.9
    assert regions[1].area > regions[0].area
    assert regions[1].score == pytest.approx(ScanParams().partial_weight * regions[0].score)


def mixed_teacher(clean, noisy, q_given, conf=0.9):
    """`teacher(clean, conf)`, except that where `noisy` differs the given label gets `q_given`
    and the clean class the rest."""
    p = teacher(clean, conf)
    ys, xs = np.nonzero(noisy != clean)
    p[:, ys, xs] = 0.0
    p[noisy[ys, xs], ys, xs] = q_given
    p[clean[ys, xs], ys, xs] = 1.0 - q_given
    return p


def _left_eye_labelled_right(p_left: float, p_right: float, p_skin: float):
    """(clean, noisy, probs, eye mask): the left eye labelled as the right eye; the teacher
    splits the eye's pixels between left eye, right eye and skin, and is sure elsewhere."""
    clean = face()
    noisy = clean.copy()
    noisy[clean == 4] = 5
    probs = teacher(clean)
    eye = clean == 4
    probs[:, eye] = 0.0
    probs[4, eye], probs[5, eye], probs[1, eye] = p_left, p_right, p_skin
    return clean, noisy, probs, eye


def test_a_part_the_teacher_splits_between_two_classes_is_still_a_finding():
    """Left eye labelled as the right eye; the teacher gives it 0.6 left eye, 0.39 skin: below the
    left eye's confident threshold (0.9), but the given label (p 0.01) is confidently wrong."""
    clean, noisy, probs, eye = _left_eye_labelled_right(p_left=0.6, p_right=0.01, p_skin=0.39)
    th = thresholds_for([(teacher(clean), clean)])
    assert th[4] > 0.6  # the suggested class alone would not be confident
    (r,) = audit_image(probs, noisy, th).regions
    assert (r.given, r.suggested) == (5, 4) and r.area == int(eye.sum())
    assert r.score == pytest.approx(0.99, abs=1e-3)


def test_a_predicted_part_that_only_widens_a_labelled_one_ranks_as_partial():
    clean = face()
    dropped = clean.copy()
    dropped[clean == 6] = 1  # whole nose unlabelled
    widened = clean.copy()
    widened[(clean == 6) & (np.arange(96)[:, None] >= 50)] = 1  # nose labelled on its top 4 rows
    th = thresholds_for([(teacher(clean), clean)])
    (whole,) = audit_image(teacher(clean), dropped, th).regions
    (part,) = audit_image(teacher(clean), widened, th).regions
    assert whole.kind == part.kind == "missing" and part.area < whole.area
    assert part.score == pytest.approx(ScanParams().partial_weight * whole.score)


def test_findings_below_min_score_are_dropped_after_the_partial_weight():
    """Evidence 0.9 keeps a whole missing part (score 0.9) but not a boundary bleed (0.81)."""
    clean = face()
    noisy = clean.copy()
    grown = cv2.dilate((clean == 1).astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    noisy[grown & (clean == 0)] = 1
    noisy[clean == 6] = 1
    th = thresholds_for([(teacher(clean), clean)])
    params = ScanParams()
    assert params.partial_weight * 0.9 < params.min_score <= 0.9
    regions = audit_image(mixed_teacher(clean, noisy, q_given=0.1), noisy, th, params).regions
    assert [(r.kind, r.suggested) for r in regions] == [("missing", 6)]
    assert regions[0].score == pytest.approx(0.9, abs=1e-3)


def test_missing_and_spurious_parts():
    clean = face()
    dropped = clean.copy()
    dropped[clean == 6] = 1  # nose left unlabelled (painted as skin)
    spurious = clean.copy()
    cv2.circle(spurious, (48, 75), 5, 10, -1)  # a hair blob on the chin
    th = thresholds_for([(teacher(clean), clean)])
    (r,) = audit_image(teacher(clean), dropped, th).regions
    assert (r.given, r.suggested, r.kind) == (1, 6, "missing")
    assert r.area == int((clean == 6).sum())
    x, y, w, h = r.bbox
    assert (x, y, w, h) == (44, 46, 9, 15) and r.mask.shape == (15, 9)
    (s,) = audit_image(teacher(clean), spurious, th).regions
    assert (s.given, s.suggested, s.kind) == (10, 1, "spurious")


def test_unconfident_teacher_flags_nothing():
    clean = face()
    flipped = clean.copy()
    flipped[clean == 4] = 5
    probs = teacher(clean, conf=0.4)  # right but unsure: below the 0.5 floor
    th = thresholds_for([(teacher(clean), clean)])
    assert audit_image(probs, flipped, th).regions == []


def test_heatmap_is_one_minus_confidence():
    clean = face()
    a = audit_image(teacher(clean), clean, np.full(C, 0.5), ScanParams(), with_heatmap=True)
    assert a.suspicion.dtype == np.uint8
    assert a.suspicion.max() == round(0.1 * 255)


def test_a_flip_touching_an_unsure_disagreement_stays_its_own_finding():
    """The eye swap sits inside a wide skin/hair disagreement the teacher is unsure of: split by
    (given, suggested) pair, the swap is still found, and the unsure part is not."""
    clean = face()
    noisy = clean.copy()
    noisy[clean == 4] = 5  # left eye labelled as the right eye
    probs = teacher(clean)
    # around the left eye the teacher leans to hair (0.45 vs 0.40 skin): disagreement, not sure
    ring = cv2.dilate((clean == 4).astype(np.uint8), np.ones((25, 25), np.uint8)).astype(bool)
    ring &= clean == 1
    probs[:, ring] = 0.15 / (C - 2)
    probs[10, ring], probs[1, ring] = 0.45, 0.40
    th = thresholds_for([(teacher(clean), clean)])
    assert ring.sum() > 4 * (clean == 4).sum()  # the unsure blob dwarfs the eye
    regions = audit_image(probs, noisy, th).regions
    assert [(r.given, r.suggested, r.kind) for r in regions] == [(5, 4, "flip")]
    assert regions[0].area == int((clean == 4).sum())


def varied_teacher(clean, seed=0):
    """Probabilities whose confidence on the clean class varies by class (0.75-0.97) and by pixel
    (+-0.02 noise), the rest spread evenly: per-class thresholds and pixel order matter."""
    rng = np.random.default_rng(seed)
    per_class = rng.uniform(0.75, 0.97, C)
    conf = np.clip(per_class[clean] + rng.uniform(-0.02, 0.02, clean.shape), 0.5, 0.99)
    p = np.repeat(((1 - conf) / (C - 1))[None], C, axis=0).astype(np.float32)
    np.put_along_axis(p, clean[None].astype(np.int64), conf[None].astype(np.float32), axis=0)
    return p


def test_the_label_is_wrong_rule_uses_the_given_class_threshold():
    """A pixel counts as confidently mislabelled when p[given] <= 1 - t[given] (and its top class
    has a majority): with t[given] = 0.6 and p[given] = 0.1 it does; judged by the suggested
    class's threshold (0.95) it would not, and no finding would be left."""
    _, noisy, probs, _ = _left_eye_labelled_right(p_left=0.55, p_right=0.10, p_skin=0.35)
    th = np.full(C, 0.9)
    th[5], th[4] = 0.6, 0.95  # given r_eye: easy to doubt; suggested l_eye: hard to trust
    (r,) = audit_image(probs, noisy, th).regions
    assert (r.given, r.suggested) == (5, 4)
    th[5] = 0.95  # now p[given] 0.1 > 1 - 0.95: nothing about these pixels is sure
    assert audit_image(probs, noisy, th).regions == []


def test_label_quality_is_the_mean_of_exactly_the_worst_tail_pixels():
    clean = face(size=128)
    probs = varied_teacher(clean, seed=3)
    q = self_confidence(probs, clean)
    params = ScanParams()
    k = int(params.tail_frac * clean.size)  # 16 of 128 x 128
    assert k == 16
    expected = np.sort(q.ravel())[:k].mean()
    audit = audit_image(probs, clean, thresholds_for([(probs, clean)]), params)
    assert audit.label_quality == pytest.approx(expected, rel=1e-6)
    assert np.sort(q.ravel())[k] > np.sort(q.ravel())[k - 1]  # k +- 1 would give another mean


def test_planted_flip_ranks_first_under_a_teacher_that_varies_by_class_and_pixel():
    clean = face()
    noisy = clean.copy()
    noisy[clean == 6] = 1  # nose painted as skin
    probs = varied_teacher(clean, seed=1)
    th = thresholds_for([(varied_teacher(face(shift=2), seed=2), face(shift=2))])
    assert th.std() > 0.02  # per-class thresholds genuinely differ
    regions = audit_image(probs, noisy, th).regions
    assert regions and (regions[0].given, regions[0].suggested) == (1, 6)
    assert regions[0].area == int((clean == 6).sum())
