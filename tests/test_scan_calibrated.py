"""The calibrated scorer: corruptions, candidates and their features, prior shift, the list,
and a calibrated scan end to end (oracle teacher: what is tested is the logic, not the network)."""
from __future__ import annotations

import numpy as np
import pytest
from scanhelp import copy_tree, make_dataset, make_run, oracle_predictor, plant_flip

from labelaudit.confidence import self_confidence
from labelaudit.data import open_source
from labelaudit.data.classes import IGNORE_INDEX
from labelaudit.scan.calibrate import calibration_path, candidate_truth
from labelaudit.scan.calibrator import (
    adjust, expected_calibration_error, expected_precision_cutoff, histogram, split_share,
    sampling_ece,
)
from labelaudit.scan.candidates import FEATURES, TeacherContext, find_candidates
from labelaudit.data.corrupt import RECIPES, _APPLY, corrupt
from labelaudit.scan.score import top_class
from labelaudit.store import open_db, repo

C = 4


def _face(h: int = 64, w: int = 64) -> np.ndarray:
    """Background, an elliptic 'skin', two small rectangular 'eyes' (classes 2 and 3), an
    ignored strip."""
    import cv2

    lab = np.zeros((h, w), np.uint8)
    cv2.ellipse(lab, (32, 32), (26, 30), 0, 0, 360, 1, -1)
    lab[20:28, 16:26] = 2
    lab[20:28, 38:48] = 3
    lab[:, 62:] = IGNORE_INDEX
    return lab


def _probs(label: np.ndarray, sure: float = 0.9) -> np.ndarray:
    lab = np.where(label == IGNORE_INDEX, 0, label)
    p = np.full((C,) + label.shape, (1 - sure) / (C - 1), np.float32)
    np.put_along_axis(p, lab[None].astype(np.int64), sure, axis=0)
    return p


def _ctx() -> TeacherContext:
    return TeacherContext(np.full(C, 0.8), np.zeros((C, C)), TeacherContext.mirror_matrix(C, ((2, 3),)))


def _candidates(given: np.ndarray, truth: np.ndarray):
    probs = _probs(truth)
    pred, top = top_class(probs)
    return find_candidates(probs, given, self_confidence(probs, given), pred, top, _ctx())


@pytest.mark.parametrize("recipe", RECIPES)
def test_every_recipe_changes_labels_but_never_ignored_pixels(recipe):
    lab = _face()
    changed_any = False
    for seed in range(8):
        out = lab.copy()
        _APPLY[recipe](out, np.random.default_rng(seed), C, ((2, 3),))
        assert (out[lab == IGNORE_INDEX] == IGNORE_INDEX).all()
        assert (out[lab != IGNORE_INDEX] != IGNORE_INDEX).all()
        changed_any |= bool((out != lab).any())
    assert changed_any


def test_corrupt_reports_what_it_did_and_changes_the_copy_only():
    lab = _face()
    before = lab.copy()
    out, done = corrupt(lab, np.random.default_rng(3), C, ((2, 3),), events=2)
    assert (lab == before).all() and len(done) == 2 and set(done) <= set(RECIPES)
    assert (out != lab).sum() >= 2


def test_a_relabelled_eye_is_one_flip_candidate_with_its_features():
    truth = _face()
    given = truth.copy()
    given[truth == 2] = 3  # the left eye painted as the right eye
    cands = _candidates(given, truth)
    big = int(np.argmax(cands.area))
    assert len(cands) == 1 and cands.area[big] == 80
    assert (cands.given[big], cands.suggested[big], cands.kind(big)) == (3, 2, "flip")
    f = dict(zip(FEATURES, cands.features[big]))
    assert f["cover_given"] == pytest.approx(1.0)  # the painted eye is a whole part of class 3
    assert f["frac_of_given_class"] == pytest.approx(80 / 160)  # half of all class-3 pixels
    assert f["cover_suggested"] == pytest.approx(1.0)
    assert f["mirror_pair"] == 1.0 and f["ring_given"] == 0.0  # surrounded by skin
    assert f["q_mean"] == pytest.approx(0.1 / 3, rel=1e-4)  # p[given] where the teacher says 2
    assert f["thickness"] >= 3.0  # an 8x10 block
    bbox, mask = cands.crop(big)
    assert bbox == (16, 20, 10, 8) and mask.all()


def test_a_one_pixel_boundary_shift_is_thin_and_hugs_the_boundary():
    truth = _face()
    given = truth.copy()
    given[20:28, 26] = 2  # the eye grown one column into the skin
    cands = _candidates(given, truth)
    assert len(cands) == 1 and cands.kind(0) == "boundary" and cands.area[0] == 8
    f = dict(zip(FEATURES, cands.features[0]))
    assert f["thickness"] <= 1.0 and f["boundary_dist"] <= 1.0 and f["ring_suggested"] > 0.3


def test_an_outline_drawn_off_all_round_is_disputed_all_round():
    truth = _face()
    grown, shifted = truth.copy(), truth.copy()
    grown[19:29, 15:27][grown[19:29, 15:27] == 1] = 2  # the eye drawn one pixel too big all round
    shifted[20:28, 26] = 2  # ... or one column too wide
    ring, = _candidates(grown, truth).features
    column, = _candidates(shifted, truth).features
    # the eye's outline in the given label: the border of a 10 x 12 block, every pixel disputed;
    # of an 8 x 11 block, 8 of its 34 border pixels disputed
    assert dict(zip(FEATURES, ring))["outline_disputed"] == pytest.approx(1.0)
    assert dict(zip(FEATURES, column))["outline_disputed"] == pytest.approx(8 / 34)


def _two_tone(edge_col: int) -> tuple[np.ndarray, np.ndarray]:
    """An image dark left of `edge_col`, bright from it on, and the label that follows it."""
    image = np.full((32, 32, 3), 40, np.uint8)
    image[:, edge_col:] = 200
    label = np.zeros((32, 32), np.uint8)
    label[:, edge_col:] = 1
    return image, label


def test_edge_features_say_which_boundary_the_image_shows():
    """A label grown 3 px past the image's edge: its boundary lies in flat texture (edge_given
    about 0), the teacher's on the edge. The other way round (the label follows the edge, the
    teacher is 3 px off), the two features swap."""
    from labelaudit.scan.candidates import edge_strength

    image, truth = _two_tone(16)
    grown = truth.copy()
    grown[:, 13:16] = 1
    off = truth.copy()
    off[:, 16:19] = 0
    edges = edge_strength(image)
    for given, teacher, on_edge in ((grown, truth, "edge_suggested"), (truth, off, "edge_given")):
        probs = _probs(teacher)
        pred, top = top_class(probs)
        cands = find_candidates(probs, given, self_confidence(probs, given), pred, top, _ctx(), edges)
        assert len(cands) == 1
        f = dict(zip(FEATURES, cands.features[0]))
        flat = "edge_given" if on_edge == "edge_suggested" else "edge_suggested"
        assert f[on_edge] > 0.5 and f[flat] < 0.05, f
    no_image = find_candidates(probs, truth, self_confidence(probs, truth), pred, top, _ctx())
    assert np.isnan(dict(zip(FEATURES, no_image.features[0]))["edge_given"])


def test_a_label_the_teacher_half_agrees_with_is_a_candidate_for_its_second_class():
    truth = _face()
    given = truth.copy()
    given[truth == 2] = 3  # the left eye painted as the right eye, half learnt by the teacher:
    probs = _probs(truth)
    half = np.zeros(truth.shape, bool)
    half[20:24, 16:26] = True  # on its top half the teacher's top class is the wrong label, at 0.45
    probs[:, half] = 0.05
    probs[3, half], probs[2, half] = 0.45, 0.45
    probs[2, half] -= 0.001  # (second, not tied)
    sure = np.zeros(truth.shape, bool)
    sure[24:28, 16:26] = True  # ... and on the bottom half it is the wrong label at 0.7: learnt
    probs[:, sure] = 0.1
    probs[3, sure] = 0.7
    pred, top = top_class(probs)
    cands = find_candidates(probs, given, self_confidence(probs, given), pred, top, _ctx())
    assert len(cands) == 1 and (cands.given[0], cands.suggested[0]) == (3, 2)
    assert cands.area[0] == 40  # the half-learnt pixels only
    assert dict(zip(FEATURES, cands.features[0]))["q_mean"] == pytest.approx(0.45, rel=1e-4)


def test_regions_are_8_connected_parts_of_equal_values_numbered_in_raster_order():
    """By hand: diagonals join pixels of one value, two values crossing on diagonals are both
    joined, 0 is no region; ids follow the regions' first pixels in raster order."""
    from labelaudit.scan.candidates import _parts, _regions

    values = np.array([[3, 0, 0, 5],
                       [0, 3, 5, 0],
                       [0, 5, 3, 0],
                       [7, 0, 0, 3]])
    want = np.array([[1, 0, 0, 2],
                     [0, 1, 2, 0],
                     [0, 2, 1, 0],
                     [3, 0, 0, 1]])
    assert np.array_equal(_regions(values), want)
    # every value a part, class 0 included, and big pair codes (many classes) kept apart
    assert _parts(np.array([[0, 0, 1], [2, 2, 1]])).tolist() == [1, 1, 2, 3, 3, 2]
    wide = np.array([[70000, 70001], [70000, 0]])
    assert np.array_equal(_regions(wide), [[1, 2], [1, 0]])


def test_candidate_truth_matches_by_iou():
    truth = _face()
    given = truth.copy()
    given[truth == 2] = 3
    cands = _candidates(given, truth)
    assert candidate_truth(cands, given != truth).tolist() == [True]
    far = np.zeros_like(truth, bool)
    far[40:50, 40:50] = True
    assert candidate_truth(cands, far).tolist() == [False]
    big = np.zeros_like(truth, bool)
    big[10:50, 10:50] = True  # contains the eye, but IoU 80 / 1600 < 0.3
    assert candidate_truth(cands, big).tolist() == [False]


def test_prior_adjustment_by_hand():
    p = np.array([0.5, 0.9])
    assert np.allclose(adjust(p, 0.2, 0.2), p)
    # odds x (0.01 / 0.99) / (0.1 / 0.9) = x 0.0909...
    assert adjust(np.array([0.5]), 0.1, 0.01)[0] == pytest.approx(0.0909 / 1.0909, rel=1e-3)


def test_split_share_is_the_candidates_mean_probability():
    # logit bins 0.1 wide: 0.2 and 0.8 sit in mirrored bins, so the mean of their centres is 0.5
    assert split_share(histogram(np.array([0.2, 0.2, 0.8, 0.8])), 0.3) == pytest.approx(0.5, abs=1e-9)
    assert split_share(histogram(np.array([0.9])), 0.3) == pytest.approx(0.9, abs=0.005)
    assert split_share(np.zeros_like(histogram(np.array([0.5]))), 0.3) == 0.3  # no candidates


def test_moving_to_the_split_share_brings_probabilities_towards_a_cleaner_split():
    rng = np.random.default_rng(0)
    n, true_prior, fit_prior = 40000, 0.05, 0.3
    y = rng.random(n) < true_prior
    x = np.where(y, rng.normal(1.0, 1.0, n), rng.normal(-1.0, 1.0, n))
    lr = np.exp(2 * x)  # N(1, 1) vs N(-1, 1)
    raw = fit_prior * lr / (fit_prior * lr + 1 - fit_prior)  # exact posteriors at the fit prior
    est = split_share(histogram(raw), fit_prior)
    assert est == pytest.approx(raw.mean(), abs=0.002)
    assert true_prior < est < fit_prior  # one step of EM: towards the split, short of it
    moved = adjust(raw, fit_prior, est)
    assert expected_calibration_error(moved, y) < 0.7 * expected_calibration_error(raw, y)
    # the list cut at 0.8 over-promises less after the move
    listed = lambda p: y[p >= expected_precision_cutoff(p, 0.8)].mean()  # noqa: E731
    assert listed(moved) > listed(raw) + 0.1


def test_expected_precision_cutoff_and_ece_by_hand():
    p = np.array([0.99, 0.9, 0.7, 0.5, 0.1])
    # running means 0.99, 0.945, 0.863, 0.7725, 0.638: the third is the last >= 0.8
    assert expected_precision_cutoff(p, 0.8) == 0.7
    assert expected_precision_cutoff(p, 0.995) == float("inf")
    # equal values enter together: 0.9, 0.9, then three 0.7 (means 0.9 ... 0.78 with all three)
    assert expected_precision_cutoff(np.array([0.9, 0.9, 0.7, 0.7, 0.7]), 0.8) == 0.9
    assert expected_calibration_error(np.full(10, 0.9), np.arange(10) < 5) == pytest.approx(0.4)



def test_sampling_ece_is_the_ece_of_a_perfect_scorer_by_hand():
    # one candidate at 0.5: its outcome is 0 or 1, so every draw's gap is exactly 0.5
    assert sampling_ece(np.array([0.5])) == (0.5, 0.5)
    # two at 0.5 in one bin: both agree (gap 0.5) half the time, differ (gap 0) the other half
    mean, q95 = sampling_ece(np.array([0.5, 0.5]), draws=4000)
    assert mean == pytest.approx(0.25, abs=0.02) and q95 == 0.5
    # sure scores that are right by construction leave nothing to sample
    assert sampling_ece(np.array([0.0, 1.0, 1.0])) == (0.0, 0.0)
    # more candidates, smaller floor: 1 / sqrt(n) shrinkage
    small, _ = sampling_ece(np.full(25, 0.3))
    large, _ = sampling_ece(np.full(2500, 0.3))
    assert large < small / 5


def test_the_lists_precision_by_chance_alone_by_hand():
    from labelaudit.scan.calibrated import precision_spread
    from labelaudit.scan.summary import listed_phrase

    # 4 findings at 0.5: the count of errors has variance 4 * 0.25 = 1, so the precision's sd is 1/4
    assert precision_spread(np.full(4, 0.5)) == pytest.approx(1.96 / 4)
    assert precision_spread(np.ones(10)) == 0.0  # sure findings: no chance left
    est = {"n_listed": 4, "expected_precision": 0.5, "precision_spread": 0.49}
    assert listed_phrase(est) == "4 findings at expected precision 0.50 (0.01-0.99 by chance alone, 95 %)"
    # clipped to [0, 1]; a scan stored before the spread existed says nothing about it
    assert "(0.50-1.00 by" in listed_phrase({**est, "expected_precision": 0.9, "precision_spread": 0.4})
    assert listed_phrase({"n_listed": 0, "expected_precision": float("nan")}).startswith("0 findings")


def test_the_summary_says_where_p_error_stands():
    from labelaudit.scan.summary import shift_phrase

    moved = shift_phrase({"prior_calibration": [0.498], "prior_split": [0.362]})
    assert moved == "p_error moved to this split's estimated share of errors among candidates, 0.36 (calibration: 0.50)"
    assert shift_phrase({"prior_calibration": [0.5], "prior_split": [0.5]}).endswith("calibration's share of errors among candidates (0.50)")
    folds = shift_phrase({"prior_calibration": [0.4, 0.6], "prior_split": [0.3, 0.35]})
    assert folds.endswith("0.30-0.35 (calibration: 0.40-0.60)")
    assert shift_phrase({}) == ""  # a rules scan has no estimate

@pytest.fixture(scope="module")
def flipped(tmp_path_factory):
    base = tmp_path_factory.mktemp("calib")
    root = copy_tree(make_dataset(base / "clean", n=30), base / "data")
    stem = [r.id for r in open_source("synthetic", root).records("train")][5]
    assert plant_flip(root, stem, 6, 10) > 20  # the nose painted as hair
    return root, make_run(base / "run", root), stem


def test_calibrated_scan_lists_the_planted_flip_with_a_high_p_error(flipped):
    from labelaudit.scan import ScanOptions, run_scan

    root, run, stem = flipped
    oracle = oracle_predictor(root)
    res = run_scan(ScanOptions(run_dir=run, db_url=str(run / "a.db"), progress=False), predict=oracle)
    path = calibration_path(run, "csr")
    assert path.exists() and path.with_suffix(".json").exists() and res.calibration_seconds > 0
    est = res.estimate
    assert est is not None and est.n_listed >= 1 and est.expected_precision >= 0.8
    # by default p_error moves to the split's share: 1 flip in 24 images is a cleaner split
    # than the calibration's copies (1-3 errors in each)
    assert 0.0 < est.prior_split[0] < est.prior_calibration[0]
    store = open_db(res.db_url)
    with store.session() as s:
        r = s.get(repo.Run, res.run_id)
        # the planted flip is the surest finding of the split, its image among the worst three
        # (an oracle teacher's blur leaves 1-3 px disagreements too, which 3 val images of
        # calibration cannot tell from the tiny injected fragments)
        worst = next(w for w in repo.top_images(s, r, 3)
                     if w.image.image_relpath == f"train/images/{stem}.jpg")
        top = repo.findings_for_image(s, r, worst.image_id)[0]
        assert top.score == max(f.score for f in repo.iter_findings(s, r))
        assert (top.given_class, top.suggested_class, top.kind) == (10, 6, "flip")
        assert top.score > 0.8 and worst.label_quality == pytest.approx(
            np.prod([1 - f.score for f in repo.findings_for_image(s, r, worst.image_id)]), abs=0.2)
        scores = sorted(f.score for f in repo.iter_findings(s, r))
        assert np.mean(scores) >= 0.8 and r.progress["estimate"]["n_listed"] == len(scores)
        # the list's chance range is the listed findings' own: 1.96 sqrt(sum p (1 - p)) / n
        q = np.asarray(scores)
        assert r.progress["estimate"]["precision_spread"] == pytest.approx(
            1.96 * np.sqrt((q * (1 - q)).sum()) / len(q))
    store.close()
    # the second scan reuses the calibration file (not refitted); without the prior shift,
    # p_error stays at the calibration's share
    mtime = path.stat().st_mtime_ns
    res2 = run_scan(ScanOptions(run_dir=run, db_url=str(run / "b.db"), progress=False,
                                prior_shift=False), predict=oracle)
    assert path.stat().st_mtime_ns == mtime
    assert res2.estimate.prior_split == res2.estimate.prior_calibration
    assert res2.estimate.expected_errors > est.expected_errors


def test_finalising_twice_does_not_move_the_scores_twice(flipped):
    from labelaudit.scan import ScanOptions
    from labelaudit.scan import run as scan_run

    root, run, _ = flipped
    opts = ScanOptions(run_dir=run, db_url=str(run / "c.db"), progress=False, precision=0.0)
    res = scan_run.run_scan(opts, predict=oracle_predictor(root))
    store = open_db(res.db_url)
    with store.session() as s:
        before = repo.scan_scores(s, s.get(repo.Run, res.run_id))
    from labelaudit.distributed import setup_distributed

    plan = scan_run._plan(opts, store, res.db_url, setup_distributed(), oracle_predictor(root))
    plan.run_id = res.run_id
    again = scan_run._finalise(plan, 0.0, False)
    with store.session() as s:
        assert repo.scan_scores(s, s.get(repo.Run, res.run_id)) == before
    assert again.n_listed == res.estimate.n_listed
    store.close()



def test_rows_are_weighted_only_when_planted_rows_join_the_val_copies():
    from labelaudit.scan.calibrate import _balance

    # uniform weights are left out (the library's unweighted binning is 100x faster, same bins)
    assert _balance(np.zeros(6, bool)) is None and _balance(np.ones(6, bool)) is None
    w = _balance(np.array([True, False, False, False]))
    assert w.tolist() == [3.0, 1.0, 1.0, 1.0]  # one planted row weighs as much as three val rows
