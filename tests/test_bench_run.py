"""`run_bench` against known noise: an oracle teacher must score near-perfectly, and cleanlab
is computed on the same probabilities."""
from __future__ import annotations

import numpy as np
import pytest
from scanhelp import make_run, one_flip_scene, oracle_predictor

from labelaudit.bench import run as bench_run
from labelaudit.bench.run import markdown
from labelaudit.data.synthetic import generate


def test_bench_with_an_oracle_teacher_finds_the_planted_noise(tmp_path, monkeypatch):
    root = tmp_path / "data"
    summary = generate(root, n=40, size=128, noise_rate=0.3, noise_types=("flip", "drop"), seed=2,
                       progress=False)
    run = make_run(tmp_path / "run", root)
    oracle = oracle_predictor(root)
    from labelaudit.scan import run as scan_run

    original = scan_run.run_scan
    monkeypatch.setattr(scan_run, "run_scan",
                        lambda opts, on_image=None: original(opts, on_image=on_image, predict=oracle))
    report = bench_run.run_bench(run, ("csr",), db_url=str(tmp_path / "b.db"), progress=False,
                                 cleanlab_chunk=16)
    t = report.teachers[0]
    assert t.n_images == summary.counts["train"] and t.n_noisy == summary.n_noisy
    assert set(t.methods) == {"calibrated", "rules", "cleanlab"}
    # the calibrated list is cut where its expected precision reaches 0.8, the rules keep what
    # passes them: precision ~0.8 vs higher (24 findings listed here)
    for name, min_precision in (("calibrated", 0.65), ("rules", 0.8)):
        ours = t.methods[name]
        # a teacher that knows the clean labels (soft at boundaries): the planted whole-part
        # errors are found; a few thin lip/brow swaps blur away below the 3 px thickness rule
        assert ours.image_ap > 0.95 and ours.region_recall >= 0.75
        assert ours.region_precision > min_precision
        assert ours.pixel_f1 > 0.8
        # ranked by score, the part errors are found before the precision drops below 0.8
        assert ours.part_recall_at_p80 >= 0.75
        assert set(ours.by_type) == {"flip", "drop"}
    theirs = t.methods["cleanlab"]
    # cleanlab ran on the same probabilities and gives numbers in range
    for v in (theirs.image_ap, theirs.pixel_precision, theirs.pixel_recall, theirs.pixel_ap):
        assert 0.0 <= v <= 1.0
    assert not np.isnan(theirs.region_recall)
    table = markdown(report)
    assert "| csr | calibrated |" in table and "| csr | rules |" in table
    assert "| csr | cleanlab |" in table
    # the bootstrap intervals hold the point values (image AP < 1 here: the interval is real)
    for ours in (t.methods["calibrated"], t.methods["rules"]):
        assert ours.image_ap_ci[0] <= ours.image_ap <= ours.image_ap_ci[1] <= 1.0
        assert ours.recall_at_p80_ci[0] <= ours.recall_at_p80 <= ours.recall_at_p80_ci[1] <= 1.0
        assert ours.image_ap_ci[0] < ours.image_ap_ci[1] or ours.image_ap == 1.0
    ours = t.methods["calibrated"]
    assert (f"| csr | calibrated | {ours.image_ap:.3f} ({ours.image_ap_ci[0]:.3f} to "
            f"{ours.image_ap_ci[1]:.3f}) |") in table
    # the margin over the rules is the difference of the two R @ P>=0.8, inside its interval
    rules = t.methods["rules"]
    assert ours.margin_over_rules == pytest.approx(ours.recall_at_p80 - rules.recall_at_p80)
    assert ours.margin_over_rules_ci[0] <= ours.margin_over_rules <= ours.margin_over_rules_ci[1]
    assert np.isnan(rules.margin_over_rules)
    # the sampling floor of the calibrated scores' ECE is reported beside the measured ECE
    cal = t.methods["calibrated"]
    assert 0.0 < cal.ece_if_calibrated <= cal.ece_if_calibrated_q95 < 0.5
    row = next(line for line in table.splitlines() if line.startswith("| csr | calibrated | ")
               and f"{cal.ece_if_calibrated:.3f} / {cal.ece_if_calibrated_q95:.3f}" in line)
    header = next(line for line in table.splitlines() if "ECE if calibrated" in line)
    assert row.count("|") == header.count("|")


def test_the_margin_over_the_rules_draws_the_same_images_for_both():
    truth, hit, stray = one_flip_scene()  # one flip region in every image

    def acc(per_image: dict[int, list], order: list[int]):
        a = bench_run._Accumulator()
        for im in order:
            found, scores = per_image[im]
            a.regions.update(found, truth, scores=scores)
        a.image_ids = order
        return a

    # ours finds the region in images 0-2; the rules only in image 0, with a stray above it in 1-2
    ours = acc({i: ([hit], [0.9]) for i in range(4)} | {3: ([], [])}, [0, 1, 2, 3])
    rules_map = {0: ([hit], [0.9]), 1: ([stray], [0.95]), 2: ([stray], [0.95]), 3: ([], [])}
    value, ci = bench_run.margin_over(ours, acc(rules_map, [0, 1, 2, 3]))
    # ours: 3 of 4 regions at precision 1; rules: precision 1/3 at best -> 0
    assert value == pytest.approx(0.75)
    # the same rules in another image order give the same draws: the images are matched by id
    assert bench_run.margin_over(ours, acc(rules_map, [3, 1, 0, 2])) == (value, ci)
    assert ci[0] <= value <= ci[1]


def test_the_rarer_reading_counts_each_clean_image_several_times():
    """One noisy image (its error found at p 0.95) and three clean ones, one of which holds a
    false finding at p 0.85 and outranks the noisy image: at a 10 % noisy share each clean
    image counts 3 times (1 / (1 + 3 * 3) = 0.1), so the false finding weighs 3 and the list's
    measured precision falls from 1/2 to 1/4, image AP from 1/2 to 1/4."""
    truth, hit, stray = one_flip_scene()
    acc = bench_run._Accumulator()
    shape = hit.shape
    tmap = np.zeros(shape, np.uint8)
    tmap[truth[0][0]] = bench_run.TYPE_CODE["flip"]
    clean = np.zeros(shape, np.uint8)
    valid = np.ones(shape, bool)
    none = np.zeros(shape, bool)
    acc.update(0.5, hit, hit.astype(float), [hit], tmap, valid, [0.95])
    acc.update(0.9, stray, stray.astype(float), [stray], clean, valid, [0.85])
    for _ in range(2):
        acc.update(0.1, none, none.astype(float), [], clean, valid, [])
    acc.listed_cutoff = 0.0  # a calibrated list
    assert bench_run.clean_weight(np.array([True, False, False, False]), 0.1) == 3
    r = acc.rarer(0.1)
    assert r["clean_weight"] == 3 and r["noisy_share"] == pytest.approx(0.1)
    assert r["image_ap"] == pytest.approx(0.25)
    # both findings listed: expected (0.95 + 3 * 0.85) / 4, measured 1 / 4
    assert r["listed_expected_precision"] == pytest.approx(0.875)
    assert r["listed_precision"] == pytest.approx(0.25)
    # bins 0.9-1 (the hit: |0.95 - 1|, once) and 0.8-0.9 (the false finding: |0.85 - 0|, 3x)
    assert r["ece"] == pytest.approx((0.05 + 3 * 0.85) / 4)
    # the sure hit is found before the false finding at either share
    assert r["recall_at_p80"] == pytest.approx(1.0)
    plain = acc.scores()
    assert plain.image_ap == pytest.approx(0.5) and plain.region_precision == pytest.approx(0.5)
    assert plain.rarer == r
    # a rules-like scorer (no list) gets no ECE or list in its rarer reading
    acc.listed_cutoff = -np.inf
    assert set(acc.rarer(0.1)) == {"noisy_share", "clean_weight", "image_ap", "recall_at_p80"}


def test_the_rarer_reading_moves_shifted_scores_to_the_rarer_splits_share():
    """A scan that moved p_error from the calibration's share 0.5 to its split's (the mean raw
    probability of its candidates, raw 0.9 and 0.3: 0.6, odds x 1.5) stored 0.931 and 0.391.
    Counted as if 10 % noisy (the false finding 3x), the raw mean is (0.9 + 3 * 0.3) / 4 = 0.45,
    odds x 0.818: 0.880 and 0.260, and the list at 0.8 is the hit alone at 0.880 (0.931 if the
    scores were left where the split had them)."""
    truth, hit, stray = one_flip_scene()
    acc = bench_run._Accumulator()
    tmap = np.zeros(hit.shape, np.uint8)
    tmap[truth[0][0]] = bench_run.TYPE_CODE["flip"]
    clean, valid, none = np.zeros(hit.shape, np.uint8), np.ones(hit.shape, bool), np.zeros(hit.shape, bool)
    acc.update(0.5, hit, hit.astype(float), [hit], tmap, valid, [13.5 / 14.5])
    acc.update(0.4, stray, stray.astype(float), [stray], clean, valid, [(9 / 14) / (1 + 9 / 14)])
    for _ in range(2):
        acc.update(0.1, none, none.astype(float), [], clean, valid, [])
    acc.listed_cutoff, acc.shift = 0.0, (0.5, 0.6)
    moved_hit, moved_false = 9 * 0.45 / 0.55 / (1 + 9 * 0.45 / 0.55), (3 / 7) * 0.45 / 0.55 / (1 + (3 / 7) * 0.45 / 0.55)
    r = acc.rarer(0.1)
    # logit bins 0.1 wide: the split's mean is read from bin centres
    assert r["listed_expected_precision"] == pytest.approx(moved_hit, abs=0.01) and r["listed_precision"] == 1.0
    assert r["ece"] == pytest.approx((1 - moved_hit + 3 * moved_false) / 4, abs=0.01)
    assert bench_run._single_shift({"prior_calibration": [0.5], "prior_split": [0.6]}) == (0.5, 0.6)
    assert bench_run._single_shift({"prior_calibration": [0.5], "prior_split": [0.5]}) is None
