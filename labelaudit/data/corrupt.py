"""Known errors made in copies of a label map, for calibrating the scorer (docs/design.md §4).

A broad, generic family that knows nothing of faces beyond the class set's left/right pairs:
a connected part relabelled as a class it touches or any class of the image, left/right swaps,
a part dropped to its surroundings, a class dilated or eroded by a random radius along part of
its outline, spurious blobs of random size and class, a part redrawn as a coarse polygon, a part
merged into a neighbour. Sizes scale with the label's size. This is not the benchmark's noise
generator (`labelaudit.data.synthetic.noise`): the benchmark reports on noise the calibration
never saw.

Shapes: label (H, W) ints, 255 = ignored (never changed, never used as a class).
"""
from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage

from labelaudit.data.classes import IGNORE_INDEX

RECIPES = ("relabel", "swap", "drop", "dilate", "erode", "blob", "outline", "merge")


def corrupt(label: np.ndarray, rng: np.random.Generator, num_classes: int,
            flip_pairs: tuple[tuple[int, int], ...] = (), events: int | None = None,
            ) -> tuple[np.ndarray, list[str]]:
    """A corrupted copy of `label` and the recipes applied (1-3 events unless `events`).

    The truth is `copy != label`: events may overlap, and one that changes nothing is redrawn
    (up to a few times).
    """
    out = label.copy()
    done: list[str] = []
    for _ in range(events if events is not None else int(rng.integers(1, 4))):
        for _attempt in range(6):
            recipe = RECIPES[int(rng.integers(len(RECIPES)))]
            before = out.copy()
            _APPLY[recipe](out, rng, num_classes, flip_pairs)
            if (out != before).sum() >= 2:
                done.append(recipe)
                break
            out = before
    return out, done


def _scale(label: np.ndarray) -> float:
    return float(np.sqrt(label.size)) / 128.0


def _components(label: np.ndarray, cls: int) -> tuple[int, np.ndarray]:
    return cv2.connectedComponents((label == cls).astype(np.uint8), connectivity=8)


def _pick_part(label: np.ndarray, rng: np.random.Generator, exclude: tuple[int, ...] = (),
               max_frac: float = 0.25) -> np.ndarray | None:
    """A random connected part (bool mask) of a random class present, not too large."""
    present = [int(c) for c in np.unique(label) if c != IGNORE_INDEX and c not in exclude]
    rng.shuffle(present)
    for cls in present:
        n, comp = _components(label, cls)
        ids = [i for i in range(1, n) if (comp == i).sum() <= max_frac * label.size]
        if ids:
            return comp == ids[int(rng.integers(len(ids)))]
    return None


def _neighbours(label: np.ndarray, mask: np.ndarray) -> list[int]:
    """Classes that touch `mask` from outside."""
    ring = cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) & ~mask
    return [int(c) for c in np.unique(label[ring]) if c != IGNORE_INDEX]


def _fill_nearest(label: np.ndarray, region: np.ndarray) -> None:
    """In place: `region` takes the class of the nearest labelled pixel outside it."""
    outside = ~region & (label != IGNORE_INDEX)
    if not outside.any():
        return
    _, (iy, ix) = ndimage.distance_transform_edt(~outside, return_indices=True)
    label[region] = label[iy[region], ix[region]]


def _relabel(label, rng, c, pairs) -> None:
    part = _pick_part(label, rng)
    if part is None:
        return
    given = int(label[part][0])
    options = _neighbours(label, part) if rng.random() < 0.7 else list(range(c))
    options = [k for k in options if k != given]
    if options:
        label[part] = options[int(rng.integers(len(options)))]


def _swap(label, rng, c, pairs) -> None:
    present = [(a, b) for a, b in pairs if (label == a).any() or (label == b).any()]
    if not present:
        return _relabel(label, rng, c, pairs)
    a, b = present[int(rng.integers(len(present)))]
    ma, mb = label == a, label == b
    if rng.random() < 0.5:  # both sides swapped
        label[ma], label[mb] = b, a
    else:  # one side painted as the other
        src, dst = (a, b) if ma.any() and (rng.random() < 0.5 or not mb.any()) else (b, a)
        n, comp = _components(label, src)
        label[comp == int(rng.integers(1, n))] = dst


def _drop(label, rng, c, pairs) -> None:
    part = _pick_part(label, rng, max_frac=0.05)
    if part is not None:
        _fill_nearest(label, part)


def _window(label: np.ndarray, rng: np.random.Generator, cls: int) -> np.ndarray:
    """A random window (bool mask) around a point of class `cls`'s outline; sometimes everywhere."""
    if rng.random() < 0.3:
        return np.ones(label.shape, bool)
    m = (label == cls).astype(np.uint8)
    edge = np.argwhere(cv2.morphologyEx(m, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0)
    win = np.zeros(label.shape, bool)
    if len(edge):
        y, x = edge[int(rng.integers(len(edge)))]
        r = int(rng.integers(4, 24) * _scale(label)) + 2
        win[max(0, y - r):y + r, max(0, x - r):x + r] = True
    return win


def _grow(label, rng, c, pairs, erode: bool) -> None:
    present = [int(k) for k in np.unique(label) if k != IGNORE_INDEX]
    cls = present[int(rng.integers(len(present)))]
    r = max(1, int(round(rng.integers(1, 5) * _scale(label))))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    m = (label == cls).astype(np.uint8)
    win = _window(label, rng, cls) & (label != IGNORE_INDEX)
    if erode:
        lost = m.astype(bool) & ~cv2.erode(m, kernel).astype(bool) & win
        tmp = label.copy()
        tmp[lost] = IGNORE_INDEX  # refill from the other classes only
        _fill_nearest(tmp, lost)
        label[lost] = tmp[lost]
    else:
        label[cv2.dilate(m, kernel).astype(bool) & win] = cls


def _dilate(label, rng, c, pairs) -> None:
    _grow(label, rng, c, pairs, erode=False)


def _erode(label, rng, c, pairs) -> None:
    _grow(label, rng, c, pairs, erode=True)


def _blob(label, rng, c, pairs) -> None:
    h, w = label.shape
    area = float(np.exp(rng.uniform(np.log(6), np.log(600)))) * _scale(label) ** 2
    ry = max(1.0, np.sqrt(area / np.pi) * rng.uniform(0.5, 2.0))
    rx = max(1.0, area / (np.pi * ry))
    y, x = int(rng.integers(h)), int(rng.integers(w))
    m = np.zeros((h, w), np.uint8)
    cv2.ellipse(m, (x, y), (int(round(rx)), int(round(ry))), float(rng.uniform(0, 180)), 0, 360, 1, -1)
    m = m.astype(bool) & (label != IGNORE_INDEX)
    if m.any():
        label[m] = int(rng.integers(c))


def _outline(label, rng, c, pairs) -> None:
    part = _pick_part(label, rng, exclude=(0,), max_frac=0.6)
    if part is None:
        return
    cls = int(label[part][0])
    contours, _ = cv2.findContours(part.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    poly = np.zeros(label.shape, np.uint8)
    eps = rng.uniform(1.0, 4.0) * _scale(label)
    cv2.fillPoly(poly, [cv2.approxPolyDP(ct, eps, True) for ct in contours], 1)
    poly = poly.astype(bool) & (label != IGNORE_INDEX)
    lost = part & ~poly
    label[poly & ~part] = cls
    if lost.any():
        tmp = label.copy()
        tmp[lost] = IGNORE_INDEX
        _fill_nearest(tmp, lost)
        label[lost] = tmp[lost]


def _merge(label, rng, c, pairs) -> None:
    part = _pick_part(label, rng, max_frac=0.05)
    if part is None:
        return
    options = [k for k in _neighbours(label, part) if k != int(label[part][0])]
    if options:
        label[part] = options[int(rng.integers(len(options)))]  # the part joins its neighbour


_APPLY = {"relabel": _relabel, "swap": _swap, "drop": _drop, "dilate": _dilate, "erode": _erode,
          "blob": _blob, "outline": _outline, "merge": _merge}
