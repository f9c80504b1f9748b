"""Detection-quality measures against known noise: image, region and pixel level.

Everything streams: image scores are one float per image, pixel AP is computed from score
histograms, so memory does not grow with the number of pixels.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np
from labelaudit.data.synthetic.noise import NOISE_CODES

NOISE_TYPES = {code: name for name, code in NOISE_CODES.items()}  # code in noise_types/ -> name


def average_precision(scores: np.ndarray, positive: np.ndarray) -> float:
    """AP = mean precision at the rank of each positive (scores high = positive). NaN if no positive."""
    scores = np.asarray(scores, np.float64)
    positive = np.asarray(positive, bool)
    if positive.sum() == 0:
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    hits = positive[order]
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float(precision[hits].mean())


def auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Probability that a random positive outscores a random negative (ties count half)."""
    scores = np.asarray(scores, np.float64)
    positive = np.asarray(positive, bool)
    n_pos, n_neg = positive.sum(), (~positive).sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = _average_ranks(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _average_ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x), np.float64)
    sx = x[order]
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and sx[j + 1] == sx[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def precision_at_k(scores: np.ndarray, positive: np.ndarray, k: int | None = None) -> float:
    """Fraction of positives among the k highest scores (k = number of positives by default)."""
    positive = np.asarray(positive, bool)
    k = int(positive.sum()) if k is None else k
    if k == 0:
        return float("nan")
    top = np.argsort(-np.asarray(scores, np.float64), kind="stable")[:k]
    return float(positive[top].mean())


class PixelAP:
    """Streaming pixel-level AP from a fixed-bin histogram of scores in [0, 1]."""

    def __init__(self, bins: int = 4096) -> None:
        self.bins = bins
        self.pos = np.zeros(bins, np.int64)
        self.neg = np.zeros(bins, np.int64)

    def update(self, scores: np.ndarray, positive: np.ndarray, valid: np.ndarray | None = None) -> None:
        s = np.clip(np.asarray(scores, np.float64), 0, 1)
        b = np.minimum((s * self.bins).astype(np.int64), self.bins - 1)
        positive = np.asarray(positive, bool)
        if valid is not None:
            b, positive = b[valid], positive[valid]
        self.pos += np.bincount(b[positive].ravel(), minlength=self.bins)
        self.neg += np.bincount(b[~positive].ravel(), minlength=self.bins)

    def value(self) -> float:
        """AP with all pixels of one bin treated as one threshold step (highest bin first)."""
        tp = np.cumsum(self.pos[::-1])
        fp = np.cumsum(self.neg[::-1])
        total = tp[-1]
        if total == 0:
            return float("nan")
        precision = tp / np.maximum(tp + fp, 1)
        recall_step = self.pos[::-1] / total
        return float((precision * recall_step).sum())


@dataclass
class MaskCounts:
    """Pixel-level confusion of a flagged mask against the true noisy pixels."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    def update(self, flagged: np.ndarray, truth: np.ndarray) -> None:
        self.tp += int((flagged & truth).sum())
        self.fp += int((flagged & ~truth).sum())
        self.fn += int((~flagged & truth).sum())

    def prf(self) -> tuple[float, float, float]:
        p = self.tp / (self.tp + self.fp) if self.tp + self.fp else float("nan")
        r = self.tp / (self.tp + self.fn) if self.tp + self.fn else float("nan")
        f = 2 * p * r / (p + r) if (p + r) and not np.isnan(p + r) else float("nan")
        return p, r, f


def true_regions(noise_type_map: np.ndarray) -> list[tuple[np.ndarray, str]]:
    """Connected corrupted regions (bool mask, noise type) from a per-pixel type map (0 = clean)."""
    out = []
    for code, name in NOISE_TYPES.items():
        m = (noise_type_map == code).astype(np.uint8)
        if not m.any():
            continue
        n, comp = cv2.connectedComponents(m, connectivity=8)
        for r in range(1, n):
            out.append((comp == r, name))
    return out


SMALL_PX = 50  # true regions below this many pixels are reported apart (small blobs, thin shifts)


@dataclass
class RegionCounts:
    """Region-level matching: a finding is correct when IoU >= iou with a true corrupted region."""

    iou: float = 0.3
    n_found: int = 0
    n_found_correct: int = 0
    true_total: dict[str, int] = field(default_factory=dict)
    true_matched: dict[str, int] = field(default_factory=dict)
    # every finding: (score, index of the true region it matches or -1, that region's type)
    ranked: list[tuple[float, int, str | None]] = field(default_factory=list)
    # every true region (global index): its type and whether it is smaller than SMALL_PX
    truths: list[tuple[str, bool]] = field(default_factory=list)
    # the image (in update order) of each finding and of each true region: for resampling
    ranked_image: list[int] = field(default_factory=list)
    truth_image: list[int] = field(default_factory=list)
    _n_truth: int = 0
    n_images: int = 0

    def update(self, found: list[np.ndarray], truth: list[tuple[np.ndarray, str]],
               scores: list[float] | None = None) -> None:
        """Match one image's findings (with their scores, high = surer) to its true regions."""
        matched = [False] * len(truth)
        scores = [1.0] * len(found) if scores is None else scores
        for f, score in zip(found, scores):
            self.n_found += 1
            best, best_j = 0.0, -1
            for j, (t, _) in enumerate(truth):
                inter = int((f & t).sum())
                if inter == 0:
                    continue
                iou = inter / int((f | t).sum())
                if iou > best:
                    best, best_j = iou, j
            if best >= self.iou:
                self.n_found_correct += 1
                matched[best_j] = True
                self.ranked.append((float(score), self._n_truth + best_j, truth[best_j][1]))
            else:
                self.ranked.append((float(score), -1, None))
        self.ranked_image += [self.n_images] * len(found)
        self.truth_image += [self.n_images] * len(truth)
        self.n_images += 1
        self._n_truth += len(truth)
        for (t, kind), hit in zip(truth, matched):
            self.true_total[kind] = self.true_total.get(kind, 0) + 1
            self.true_matched[kind] = self.true_matched.get(kind, 0) + int(hit)
            self.truths.append((kind, int(t.sum()) < SMALL_PX))

    def precision(self) -> float:
        return self.n_found_correct / self.n_found if self.n_found else float("nan")

    def recall(self, kind: str | None = None) -> float:
        kinds = [kind] if kind else list(self.true_total)
        total = sum(self.true_total.get(k, 0) for k in kinds)
        return sum(self.true_matched.get(k, 0) for k in kinds) / total if total else float("nan")

    def outcomes(self) -> tuple[np.ndarray, np.ndarray]:
        """(scores, matched) of every finding: what a calibrated score must predict."""
        return (np.asarray([r[0] for r in self.ranked], np.float64),
                np.asarray([r[1] >= 0 for r in self.ranked], bool))

    def listed(self, min_score: float = -np.inf, kind: str | None = None,
               small: bool | None = None) -> tuple[float, float]:
        """(precision, recall) of the findings scoring >= min_score; the recall over the true
        regions of `kind` (all when None) smaller than SMALL_PX or not (both when None)."""
        rows = [r for r in self.ranked if r[0] >= min_score]
        hit = {r[1] for r in rows if r[1] >= 0}
        want = [j for j, (k, sm) in enumerate(self.truths)
                if (kind is None or k == kind) and (small is None or sm == small)]
        recall = sum(j in hit for j in want) / len(want) if want else float("nan")
        precision = sum(r[1] >= 0 for r in rows) / len(rows) if rows else float("nan")
        return precision, recall

    def recall_at_precision(self, kinds: tuple[str, ...], min_precision: float = 0.8,
                            image_weight: np.ndarray | None = None) -> float:
        """Highest recall of the true regions of `kinds` over score thresholds at which the
        precision of all findings at or above the threshold is >= `min_precision`.

        Findings are taken best-first; ties in score enter together. 0.0 when no threshold
        reaches the precision; NaN when there is no true region of these kinds.
        `image_weight` (one per image, e.g. a bootstrap's counts) weighs each image's findings
        and true regions; None counts each once.
        """
        w = np.ones(self.n_images) if image_weight is None else image_weight
        return self.recall_at_precision_of(kinds, min_precision)(w)

    def recall_at_precision_of(self, kinds: tuple[str, ...], min_precision: float = 0.8
                               ) -> Callable[[np.ndarray], float]:
        """`recall_at_precision` as a function of the per-image weights, the findings sorted
        once (for bootstraps)."""
        ranked = self._best_first(kinds)
        return lambda w: self._recall_at_precision(ranked, np.asarray(w, np.float64), min_precision)

    @staticmethod
    def _recall_at_precision(ranked: tuple[np.ndarray, ...], w: np.ndarray,
                             min_precision: float) -> float:
        """The walk down `_best_first`'s ranking, every row and true region weighted by its
        image's weight `w`."""
        score, first, correct, row_image, truth_image = ranked
        total = float(w[truth_image].sum())
        if total == 0:
            return float("nan")
        if not len(score):
            return 0.0
        row_w = w[row_image]
        found = np.cumsum(row_w * correct)
        n = np.cumsum(row_w)
        recall = np.cumsum(row_w * first) / total
        ends = np.append(score[1:] != score[:-1], True) & (n > 0)  # a cut never splits ties
        with np.errstate(invalid="ignore", divide="ignore"):
            ok = ends & (found / n >= min_precision)
        return float(recall[ok].max()) if ok.any() else 0.0

    def _best_first(self, kinds: tuple[str, ...]) -> tuple[np.ndarray, ...]:
        """The findings best-first: scores, whether each is the first to match a true region
        of `kinds`, whether it matches any, its image; and the image of each true region of
        `kinds`."""
        order = sorted(range(len(self.ranked)), key=lambda i: -self.ranked[i][0])
        seen: set[int] = set()
        first = np.zeros(len(order))
        for pos, i in enumerate(order):
            _, j, kind = self.ranked[i]
            if kind in kinds and j not in seen:
                seen.add(j)
                first[pos] = 1.0
        score = np.asarray([self.ranked[i][0] for i in order], np.float64)
        correct = np.asarray([self.ranked[i][1] >= 0 for i in order], np.float64)
        want = np.asarray([k in kinds for k, _ in self.truths], bool)
        return (score, first, correct, np.asarray(self.ranked_image, np.int64)[order],
                np.asarray(self.truth_image, np.int64)[want])


def bootstrap_interval(statistic: Callable[[np.ndarray], float], n_items: int, draws: int = 1000,
                       level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile interval of `statistic(counts)` over images resampled with replacement
    (`counts`: how often each of the `n_items` images is drawn); NaN draws are skipped."""
    if n_items == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    values = np.asarray([statistic(np.bincount(rng.integers(0, n_items, n_items),
                                               minlength=n_items)) for _ in range(draws)])
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    tail = (1 - level) / 2
    return float(np.quantile(values, tail)), float(np.quantile(values, 1 - tail))
