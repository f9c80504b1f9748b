"""The calibrated scorer of a scan: candidates -> p_error, then the split's prior and the list.

While streaming, every candidate of every image gets its raw probability from the teacher's
calibration (`scan.calibrator`); candidates at or above `FLOOR` are stored as findings, all of
them enter a histogram kept in the run's progress. When the scan ends, `finalise` (with
`prior_shift`, the default) estimates the split's share of errors among the stored candidates
(their mean raw probability, `calibrator.split_share`) and moves every probability to it;
without, p_error stays at the calibration's share. It keeps the findings whose list meets the expected
precision asked for, and sets each image's
`label_quality` = P(no label error in the image) = prod(1 - p_error) over its stored
candidates (those below the floor change it by a few per mille at most).
docs/design.md §4.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import numpy as np

from labelaudit.confidence import self_confidence
from labelaudit.data.classes import IGNORE_INDEX
from labelaudit.scan.calibrator import (
    FLOOR, Calibrator, adjust, bin_centres, expected_precision_cutoff, histogram, split_share,
)
from labelaudit.scan.candidates import find_candidates
from labelaudit.scan.score import ImageAudit, Region, top_class

log = logging.getLogger(__name__)



class CalibratedScorer:
    """Audits images with the calibration of the teacher that scores them."""

    def __init__(self, calibrators: list[Calibrator], hist: list[list[int]] | None = None,
                 on_training_images: bool = False) -> None:
        self.calibrators = calibrators
        # per teacher: its calibration learnt from planted training errors and the scan's
        # images are training images (the teacher trained on their labels)
        self.trained = [on_training_images and c.info.planted_images > 0 for c in calibrators]
        n = len(histogram(np.zeros(0)))
        self.hist = [np.asarray(h, np.int64) for h in hist] if hist else \
            [np.zeros(n, np.int64) for _ in calibrators]

    def audit_batch(self, items: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]],
                    with_heatmap: bool) -> list[ImageAudit]:
        """(teacher index, probs, label, edges) per image -> audits with raw probabilities as
        scores (edges: the image's `candidates.edge_strength`)."""
        work = []
        for k, probs, label, edges in items:
            q = self_confidence(probs, label)
            pred, top = top_class(probs)
            cands = find_candidates(probs, label, q, pred, top, self.calibrators[k].context, edges)
            work.append((k, label, q, pred, cands))
        raw = self._predict(work)
        return [self._audit(label, q, pred, cands, p, with_heatmap)
                for (k, label, q, pred, cands), p in zip(work, raw)]

    def _predict(self, work) -> list[np.ndarray]:
        """Raw probabilities per image, one model call per teacher of the batch."""
        out: list[np.ndarray] = [np.zeros(0)] * len(work)
        for k in sorted({w[0] for w in work}):
            rows = [i for i, w in enumerate(work) if w[0] == k]
            feats = [work[i][4].features for i in rows]
            p = self.calibrators[k].predict(np.concatenate(feats), self.trained[k])
            self.hist[k] += histogram(p)
            for i, chunk in zip(rows, np.split(p, np.cumsum([len(f) for f in feats])[:-1])):
                out[i] = chunk
        return out

    @staticmethod
    def _audit(label, q, pred, cands, p, with_heatmap: bool) -> ImageAudit:
        regions = []
        for j in np.flatnonzero(p >= FLOOR):
            bbox, mask = cands.crop(int(j))
            regions.append(Region(int(cands.given[j]), int(cands.suggested[j]), cands.kind(int(j)),
                                  float(p[j]), int(cands.area[j]), bbox, mask))
        regions.sort(key=lambda r: (-r.score, -r.area))
        valid = label != IGNORE_INDEX
        return ImageAudit(
            # P(no error) over the stored findings, at the calibration's prior until `finalise`
            label_quality=float(np.prod([1.0 - r.score for r in regions])),
            mean_self_confidence=float(q[valid].mean()) if valid.any() else 1.0,
            n_suspect_pixels=int((cands.ids > 0).sum()),
            regions=regions,
            suspicion=np.round((1.0 - q) * 255).astype(np.uint8) if with_heatmap else None,
            prediction=pred.astype(np.uint8) if with_heatmap else None,
        )


@dataclass
class SplitEstimate:
    """What the calibrated scan concludes about the whole split (kept in the run's progress)."""

    prior_calibration: list[float]  # per teacher: share of errors among calibration candidates
    prior_split: list[float]  # per teacher: that share in the scanned split (estimated with the shift, else the calibration's)
    n_candidates: int
    expected_errors: float  # sum of p_error over every candidate of the split
    precision_target: float
    cutoff: float  # lowest p_error listed
    n_listed: int
    expected_precision: float  # mean p_error of the listed findings
    # half-width of the 95 % range the list's precision takes by chance alone were p_error
    # calibrated: 1.96 sqrt(sum p (1 - p)) / n over the listed findings (a Poisson binomial)
    precision_spread: float = float("nan")

    def to_json(self) -> dict:
        return asdict(self)


def precision_spread(p: np.ndarray) -> float:
    """Half-width of the 95 % range of a list's measured precision from chance alone, were its
    p_error calibrated (each finding an error with probability p, independently)."""
    p = np.asarray(p, np.float64)
    return float(1.96 * np.sqrt((p * (1 - p)).sum()) / p.size) if p.size else float("nan")


def split_estimate(calibrators: list[Calibrator], hist: list[np.ndarray], shift: bool
                   ) -> tuple[list[float], float, int]:
    """Per-teacher priors (the split's estimated share with `shift`, else the calibration's),
    the expected number of errors and the number of candidates.

    The share is estimated among the candidates at or above FLOOR only (their share of errors
    in the calibration is `Calibrator.prior`): the bulk below, tiny disagreements the teacher
    makes everywhere, is where held-out and training images differ most, and an EM over it
    once drove the estimate of a 15 %-noise training split to a seventh of the truth."""
    centres = bin_centres()
    stored = centres >= FLOOR
    priors, expected, n = [], 0.0, 0
    for cal, h in zip(calibrators, hist):
        h_stored = np.where(stored, h, 0)
        prior = split_share(h_stored, cal.prior) if shift else cal.prior
        priors.append(prior)
        expected += float((h_stored * adjust(centres, cal.prior, prior)).sum())
        n += int(np.asarray(h).sum())
    return priors, expected, n


def final_scores(raw: np.ndarray, teacher: np.ndarray, calibrators: list[Calibrator],
                 priors: list[float]) -> np.ndarray:
    """p_error of findings with raw probabilities `raw` scored by teachers `teacher`."""
    out = np.asarray(raw, np.float64).copy()
    for k, cal in enumerate(calibrators):
        sel = teacher == k
        out[sel] = adjust(out[sel], cal.prior, priors[k])
    return out


def listing(p: np.ndarray, target: float) -> tuple[float, np.ndarray]:
    """(cutoff, keep mask) of the findings whose list meets the expected precision `target`."""
    cutoff = expected_precision_cutoff(p, target)
    return cutoff, p >= cutoff


def finalise_scores(calibrators: list[Calibrator], hist: list[np.ndarray],
                    found: list[tuple[int, int, float]], quality: dict[int, float],
                    teacher_of: dict[int, int], precision: float, shift: bool
                    ) -> tuple[SplitEstimate, dict[int, float], list[int], dict[int, float]]:
    """From the stored raw findings (id, image id, raw p) of a finished calibrated scan and the
    histograms of all its candidates' raw p (per teacher): the split estimate, {finding id:
    p_error} of the listed findings, the ids to drop, and {image id: label_quality}."""
    priors, expected, n = split_estimate(calibrators, hist, shift)
    ids = np.asarray([f[0] for f in found], np.int64)
    images = np.asarray([f[1] for f in found], np.int64)
    teacher = np.asarray([teacher_of.get(int(i), 0) for i in images], np.int64)
    p = final_scores(np.asarray([f[2] for f in found]), teacher, calibrators, priors)
    cutoff, keep = listing(p, precision)
    new_quality = {im: 1.0 for im in quality}
    for im, pi in zip(images.tolist(), p.tolist()):
        new_quality[im] = new_quality.get(im, 1.0) * (1.0 - pi)
    est = SplitEstimate([c.prior for c in calibrators], priors, n, expected, precision,
                        cutoff if np.isfinite(cutoff) else 1.0, int(keep.sum()),
                        float(p[keep].mean()) if keep.any() else float("nan"),
                        precision_spread(p[keep]))
    return (est, {int(i): float(v) for i, v, k in zip(ids, p, keep) if k},
            ids[~keep].tolist(), new_quality)
