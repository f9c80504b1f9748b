"""The fitted scorer: candidate features -> probability that the candidate is a label error.

A scikit-learn gradient-boosted classifier fitted on candidates from corrupted copies of a
held-out split (`scan.calibrate`). Its probabilities hold at the share of errors among the
calibration candidates (`prior`); a scanned split has its own, unknown share. `adjust` moves
probabilities to another share (Bayes' rule on the odds) and `split_share` estimates the scanned
split's share as the mean raw probability of its candidates ("probabilistic classify and count",
Bella et al. 2010: one step of Saerens et al.'s EM, which collapsed on training splits), kept as
a histogram so that a scan streams. docs/design.md §4.
"""
from __future__ import annotations

import functools
import json
import logging
import math
import pickle
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from labelaudit.files import write_bytes_atomic
from labelaudit.scan.trees import ShallowForest

log = logging.getLogger(__name__)

BINS = np.linspace(-14.0, 14.0, 281)  # logit histogram edges for the prior estimate
FLOOR = 0.1  # candidates below this raw probability are counted, not stored, not re-weighted
# 2: with an isotonic map; 3: a regularised model, no map; 4: half-learnt labels are
# candidates; 5: the `trained` feature; 6: outline_disputed; 7: the image's edge features
FORMAT = 7
TRAINED = "trained"  # the last feature: 1 where the teacher trained on the image's labels


def with_trained(features: np.ndarray, trained: bool) -> np.ndarray:
    """Candidate features (n, len(FEATURES)) with the TRAINED column appended."""
    col = np.full((len(features), 1), 1.0 if trained else 0.0, np.float32)
    return np.hstack([np.asarray(features, np.float32), col])


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))


def adjust(p: np.ndarray, prior_from: float, prior_to: float) -> np.ndarray:
    """Probabilities fitted at error share `prior_from` moved to share `prior_to`."""
    shift = logit(np.asarray(prior_to)) - logit(np.asarray(prior_from))
    return 1.0 / (1.0 + np.exp(-(logit(p) + shift)))


def histogram(p: np.ndarray) -> np.ndarray:
    """(len(BINS) + 1,) counts of raw probabilities by logit (the outer bins are open)."""
    return np.bincount(np.digitize(logit(p), BINS), minlength=len(BINS) + 1)


def bin_centres() -> np.ndarray:
    mid = (BINS[1:] + BINS[:-1]) / 2
    return 1.0 / (1.0 + np.exp(-np.concatenate([[BINS[0] - 0.5], mid, [BINS[-1] + 0.5]])))


def split_share(counts: np.ndarray, prior_from: float) -> float:
    """The share of errors among candidates whose raw probabilities have the histogram `counts`
    (see `histogram`): their mean probability; `prior_from` when there are none.

    Under a pure change of the share (the errors and the clean candidates look as they did in
    the calibration) this falls between the calibration's share and the split's, short of the
    split's; EM iterated to the end would reach it, but a training split breaks that condition
    (its errors are half learnt and look cleaner than the calibration's), and there EM fell to
    a tenth of the measured share or to zero (docs/experiments.md, stop 32)."""
    counts = np.asarray(counts, np.float64)
    total = counts.sum()
    return float((counts * bin_centres()).sum() / total) if total else float(prior_from)


def expected_precision_cutoff(p: np.ndarray, target: float) -> float:
    """The lowest probability to list so that the mean probability of what is listed (its
    expected precision) stays >= target; inf when even the surest candidate falls short."""
    s = np.sort(np.asarray(p, np.float64))[::-1]
    if s.size == 0:
        return float("inf")
    mean = np.cumsum(s) / np.arange(1, s.size + 1)
    ends = np.flatnonzero(np.append(s[1:] != s[:-1], True))  # a cut never splits equal values
    ok = ends[mean[ends] >= target]
    return float(s[ok[-1]]) if ok.size else float("inf")


def reliability(p: np.ndarray, y: np.ndarray, bins: int = 10) -> dict[str, list]:
    """Equal-width reliability table: per bin count, mean probability, observed error rate."""
    p, y = np.asarray(p, np.float64), np.asarray(y, bool)
    which = np.minimum((p * bins).astype(int), bins - 1)
    n = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore"):
        mean_p = np.bincount(which, weights=p, minlength=bins) / n
        rate = np.bincount(which, weights=y, minlength=bins) / n
    return {"count": n.tolist(), "mean_p": mean_p.tolist(), "rate": rate.tolist()}


def expected_calibration_error(p: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    """ECE: the count-weighted mean |mean probability - observed rate| over equal-width bins."""
    t = reliability(p, y, bins)
    n = np.asarray(t["count"], np.float64)
    if n.sum() == 0:
        return float("nan")
    gap = np.abs(np.nan_to_num(np.asarray(t["mean_p"]) - np.asarray(t["rate"])))
    return float((n * gap).sum() / n.sum())


def sampling_ece(p: np.ndarray, bins: int = 10, draws: int = 500, seed: int = 0
                 ) -> tuple[float, float]:
    """The ECE a perfectly calibrated scorer would show on `p` from sampling alone: outcomes
    drawn as Bernoulli(p) `draws` times; (mean, 95th percentile). A measured ECE near these is
    as small as this many candidates can show (a few hundred: about 0.04-0.05)."""
    p = np.clip(np.asarray(p, np.float64), 0, 1)
    if p.size == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    e = [expected_calibration_error(p, rng.random(p.size) < p, bins) for _ in range(draws)]
    return float(np.mean(e)), float(np.quantile(e, 0.95))


@dataclass
class CalibrationInfo:
    """What the calibration was made from and how well it held (kept next to the model)."""

    teacher: str
    checkpoint: str
    split: str
    n_images: int
    copies: int
    n_candidates: int
    n_errors: int
    prior: float
    seconds: float
    cv_ece: float  # out-of-image cross-validated, at the calibration prior
    cv_auc: float
    features: list[str] = field(default_factory=list)
    sklearn: str = ""
    cv_reliability: dict[str, list] = field(default_factory=dict)  # see `reliability`
    prior_stored: float = float("nan")  # share of errors among candidates with p >= FLOOR
    format: int = FORMAT
    planted_images: int = 0  # training images with planted errors the rows came from too
    planted_candidates: int = 0
    planted_errors: int = 0
    cv_ece_val: float = float("nan")  # on the val copies' rows (cv_ece: planted rows, if any)


@functools.cache
def _openmp_controller():
    """The process's thread pools, inspected once: `threadpool_limits` inspects every loaded
    library on each call, which cost 1.4 ms per 8-image batch (half the model's own time)."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


class Calibrator:
    """A fitted model and its calibration facts; `predict` gives raw probabilities (at the
    calibration's prior)."""

    def __init__(self, model, info: CalibrationInfo, context) -> None:
        self.model, self.info, self.context = model, info, context

    @property
    def prior(self) -> float:
        """Share of errors among the calibration's candidates at or above FLOOR: the prior the
        stored probabilities hold at (the shift to a split is estimated on those only)."""
        stored = self.info.prior_stored
        return self.info.prior if math.isnan(stored) else stored

    def predict(self, features: np.ndarray, trained: bool) -> np.ndarray:
        """Raw probabilities of candidates (features: `candidates.FEATURES`) on images whose
        labels the teacher did (`trained`) or did not train on. One OpenMP thread: the model is
        small, and OpenMP threads competing with the network's were measured 100x slower
        (1.2 s vs 12 ms per 1000 rows on 2 busy cores)."""
        if len(features) == 0:
            return np.zeros(0)
        x = with_trained(features, trained)
        if self._forest is not None:  # the same trees with numpy: 2-3x faster here (scan.trees)
            return self._forest.predict(x)
        with _openmp_controller().limit(limits=1, user_api="openmp"):
            return self.model.predict_proba(x)[:, 1]

    @functools.cached_property
    def _forest(self) -> ShallowForest | None:
        return ShallowForest.of(self.model)

    def save(self, path: Path) -> None:
        """The model (pickle, written atomically) and a readable JSON beside it."""
        blob = pickle.dumps({"format": FORMAT, "model": self.model, "info": asdict(self.info),
                             "context": self.context})
        write_bytes_atomic(path, blob)
        write_bytes_atomic(path.with_suffix(".json"),
                           (json.dumps(asdict(self.info), indent=1) + "\n").encode())

    @staticmethod
    def load(path: Path) -> "Calibrator":
        """Raises ValueError naming the file when it is not a calibration of this format."""
        try:
            blob = pickle.loads(Path(path).read_bytes())
            if blob.get("format") != FORMAT:
                raise ValueError(f"format {blob.get('format')}, expected {FORMAT}")
            return Calibrator(blob["model"], CalibrationInfo(**blob["info"]), blob["context"])
        except (OSError, pickle.UnpicklingError, AttributeError, ValueError, EOFError, TypeError,
                KeyError) as err:
            raise ValueError(f"{path}: not a labelaudit calibration ({err}); "
                             "delete it and run `labelaudit calibrate` again") from None


def fit_model(x: np.ndarray, y: np.ndarray, seed: int = 0, weight: np.ndarray | None = None):
    """A strongly regularised gradient-boosted classifier: 200 trees of depth 2, each leaf
    holding at least 1/80 of the rows (at most 1000), a small learning rate, no early stopping.

    Why so coarse: the calibration rows are a few dozen images copied 24 times, and the scorer
    judges another split than the one it learnt from. The library defaults (deep trees, early
    stopping) followed the calibration rows too closely: out-of-image they needed an isotonic
    map, and on a training split they put small, weak disagreements at p_error >= 0.7 where the
    calibration rows nearest to them held 5 % errors (docs/experiments.md, stop 19)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    leaf = int(min(1000, max(20, len(y) // 80)))
    return HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, max_depth=2,
                                          min_samples_leaf=leaf, early_stopping=False,
                                          random_state=seed).fit(x, y, sample_weight=weight)


def cross_validated(x: np.ndarray, y: np.ndarray, groups: np.ndarray, seed: int = 0,
                    weight: np.ndarray | None = None, folds: int = 4) -> np.ndarray:
    """Out-of-group probabilities (each image's candidates scored by a model that never saw
    that image); NaN everywhere when there are fewer than two groups."""
    from sklearn.model_selection import GroupKFold

    out = np.full(len(y), np.nan)
    n_groups = len(np.unique(groups))
    if n_groups < 2:
        return out
    for train, test in GroupKFold(n_splits=min(folds, n_groups)).split(x, y, groups):
        if len(np.unique(y[train])) < 2:
            continue
        w = weight[train] if weight is not None else None
        out[test] = fit_model(x[train], y[train], seed, w).predict_proba(x[test])[:, 1]
    return out
