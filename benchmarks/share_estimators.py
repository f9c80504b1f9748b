#!/usr/bin/env python
"""Other ways to read a split's share of errors from its raw p_error, beside `split_share`.

    python benchmarks/share_estimators.py --run R --root S [--run R2 --root S2 ...]

Reads finished `labelaudit bench` runs the way `prior_shift.py` does (every stored candidate's
raw p_error, whether it matches a true error, its image) and, at the split's own share of noisy
images and as if 10 % were noisy, compares where each estimate puts the scores:

- `one step`: today's default, the odds moved from the calibration's share to the mean raw
  probability (`calibrator.split_share`, on the scan's histogram, as in `prior_shift.py`);
- `image anchor`: images without any candidate at raw p >= 0.5 taken as clean, their mean
  number of candidates as every image's clean candidates; share = 1 - clean / all candidates;
  the scores then moved by one logit offset so that their mean is that share;
- `two normals`: a two-component normal mixture on the raw logits (scikit-learn), the weight
  of the higher component as the share, moved the same way;
- `measured`: the same move to the measured share, which no scan can know: what the best
  single offset could give.

Each with the scores' mean after the move, their ECE and the list cut at 0.8 (listed at expected
/ measured precision); the last line the mean and worst ECE of each over every reading. A
development study: it changes no default.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import brentq
from scipy.special import expit
from sklearn.mixture import GaussianMixture

from labelaudit.scan.calibrator import (adjust, expected_calibration_error, histogram, logit,
                                        split_share)

from prior_shift import benched_runs, list_cell, outcomes, readings

ANCHOR = 0.5  # an image with no candidate at or above this raw p counts as clean
METHODS = ("one step", "image anchor", "two normals", "measured")


def offset_to_mean(p: np.ndarray, share: float) -> np.ndarray:
    """`p` moved by the one logit offset that makes its mean `share`."""
    z = logit(p)
    return expit(z + brentq(lambda s: float(expit(z + s).mean() - share), -20.0, 20.0))


def anchored_share(p: np.ndarray, image: np.ndarray, weight: np.ndarray) -> float:
    """1 - (clean images' mean candidate count x images) / candidates, each image counted
    `weight` times (p and image: one entry per stored candidate, uncounted)."""
    n = len(weight)
    count = np.bincount(image, minlength=n)
    top = np.zeros(n)
    np.maximum.at(top, image, p)
    clean = top < ANCHOR
    per_image = (count * weight)[clean].sum() / max(weight[clean].sum(), 1)
    return float(np.clip(1 - per_image * weight.sum() / (count * weight).sum(), 0.01, 0.99))


def mixture_share(p: np.ndarray) -> float:
    """The weight of the higher of two normal components fitted to the raw logits."""
    g = GaussianMixture(2, random_state=0).fit(logit(p)[:, None])
    return float(g.weights_[int(np.argmax(g.means_[:, 0]))])


def rows(name: str, o: dict, eces: dict[str, list[float]]) -> list[str]:
    out = []
    for reading, counts, p, hit in readings(o):
        moved = {"one step": adjust(p, o["prior"], split_share(histogram(p), o["prior"])),
                 "image anchor": offset_to_mean(p, anchored_share(o["p"], o["image"], counts)),
                 "two normals": offset_to_mean(p, mixture_share(p)),
                 "measured": offset_to_mean(p, hit.mean())}
        cells = [name, reading, f"{hit.mean():.3f}"]
        for m in METHODS:
            q = moved[m]
            e = expected_calibration_error(q, hit)
            eces.setdefault(m, []).append(e)
            cells += [f"{q.mean():.3f}", f"{e:.3f}", list_cell(q, hit)]
        out.append("| " + " | ".join(cells) + " |")
    return out


def main() -> None:
    runs = benched_runs(__doc__.split("\n\n")[0])
    head = ["run", "reading", "errors among stored"] + [f"{m}: {c}" for m in METHODS
                                                       for c in ("mean p_error after", "ECE", "list at 0.8")]
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    eces: dict[str, list[float]] = {}
    for run, root in runs:
        print("\n".join(rows(run.name, outcomes(run, root), eces)), flush=True)
    print("\nECE over every reading, mean / worst: " + "; ".join(
        f"{m} {np.mean(v):.3f} / {np.max(v):.3f}" for m, v in eces.items()))


if __name__ == "__main__":
    main()
