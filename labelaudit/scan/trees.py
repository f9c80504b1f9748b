"""The calibrated scorer's trees evaluated with numpy, all trees at once, a few hundred rows a call.

The scorer is a scikit-learn `HistGradientBoostingClassifier` of 200 trees of depth 2
(`calibrator.fit_model`). Its `predict_proba` walks the trees one by one (a compiled call and
an OpenMP region per tree): 0.64-0.74 ms per image of the scan's own ~3.5 ms in the CLI at
133 candidates per image (docs/experiments.md, stop 25). A depth-2 tree is three comparisons
and four leaves, so the whole forest is three (trees x rows) comparisons, two selections and a
sum. The trees are read from the fitted model's predictors (`_predictors[i][0].nodes`, the
fields scikit-learn's own predictor reads, unchanged since 0.21); a model this module cannot
read exactly (other depths, categorical splits, several classes, other internals) gives None
and the library's `predict_proba` is used. Same decisions as the library: a value goes left
when it is <= the node's threshold in float64, a missing value where the node says; the sum
differs from the library's in the last bits only (tested).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit


@dataclass(frozen=True)
class ShallowForest:
    """Per tree: the root split (row 0), its left and right child's splits (rows 1, 2) as
    feature, threshold and missing-goes-left; the four leaf values left-left .. right-right.
    A leaf child is a split that sends everything to two equal leaves."""

    feature: np.ndarray  # (3, T) int
    threshold: np.ndarray  # (3, T, 1) float64
    missing_left: np.ndarray  # (3, T, 1) bool
    leaves: np.ndarray  # (4, T, 1) float64
    baseline: float
    n_features: int

    @classmethod
    def of(cls, model) -> ShallowForest | None:
        """The forest of a fitted binary classifier, or None when it is not one this reads."""
        try:
            if getattr(model, "n_trees_per_iteration_", None) != 1:
                return None
            trees = [p[0].nodes for p in model._predictors]
            baseline = float(np.ravel(model._baseline_prediction)[0])
            splits = [_tree(nodes) for nodes in trees]
        except (AttributeError, IndexError, KeyError, TypeError, ValueError):
            return None
        if not splits or any(s is None for s in splits):
            return None
        f, t, m, v = (np.stack(a, axis=1) for a in zip(*splits))
        return cls(f, t[..., None], m[..., None], v[..., None], baseline, int(model.n_features_in_))

    def predict(self, x: np.ndarray) -> np.ndarray:
        """(n,) probability of class 1 for rows x (n, features)."""
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"expected rows of {self.n_features} features, got shape {x.shape}")
        cols = np.ascontiguousarray(np.asarray(x, np.float64).T)  # (features, n)

        def left(k: int) -> np.ndarray:  # (T, n): rows going left at split k of every tree
            v = cols[self.feature[k]]
            return np.where(np.isnan(v), self.missing_left[k], v <= self.threshold[k])

        go = [left(k) for k in range(3)]
        chosen = np.where(go[0], np.where(go[1], self.leaves[0], self.leaves[1]),
                          np.where(go[2], self.leaves[2], self.leaves[3]))
        return expit(self.baseline + chosen.sum(axis=0))


_ALL_LEFT = (0, np.inf, True)  # a split that sends every row left (a leaf's place)


def _tree(nodes) -> tuple[np.ndarray, ...] | None:
    """One tree's (feature, threshold, missing-left) of its 3 splits and its 4 leaf values."""
    if np.any(nodes["is_categorical"]):
        return None

    def split(i: int) -> tuple[int, float, bool]:
        return (int(nodes["feature_idx"][i]), float(nodes["num_threshold"][i]),
                bool(nodes["missing_go_to_left"][i]))

    def child(i: int) -> tuple[tuple[int, float, bool], float, float] | None:
        """Node i as a split and its two leaf values; None when it is deeper than one split."""
        if nodes["is_leaf"][i]:
            return _ALL_LEFT, float(nodes["value"][i]), float(nodes["value"][i])
        a, b = int(nodes["left"][i]), int(nodes["right"][i])
        if not (nodes["is_leaf"][a] and nodes["is_leaf"][b]):
            return None
        return split(i), float(nodes["value"][a]), float(nodes["value"][b])

    if nodes["is_leaf"][0]:
        root, lo, hi = _ALL_LEFT, child(0), child(0)
    else:
        root, lo, hi = split(0), child(int(nodes["left"][0])), child(int(nodes["right"][0]))
    if lo is None or hi is None:
        return None
    feature, threshold, missing = zip(root, lo[0], hi[0])
    return (np.array(feature), np.array(threshold), np.array(missing),
            np.array([lo[1], lo[2], hi[1], hi[2]]))
