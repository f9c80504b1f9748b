"""A second, held-out family of label noise: the habits of a hurried human annotator.

The first family (`noise`: flip, drop, boundary, blob) is what the rules of `scan.score` were
tuned on; the calibration (`data.corrupt`) has a third generator of its own. This family exists
so that the benchmark can report on errors neither was built from (docs/design.md §4):

- paint: one connected part painted as a class an annotator confuses it with (an eye as
  eyeglasses, a hat as hair, a brow as hair, a lip as the mouth, the nose as skin, ...);
- outline: one part traced as a coarse polygon of a few vertices (spills over and cuts in);
- shift: one small part drawn a few pixels away from where it is (misaligned brush);
- missing: one connected piece of an accessory or small part never labelled (one earring,
  the necklace, the glasses, an ear) and left to whatever surrounds it;
- mirror: the left/right convention reversed for the whole face (every pair swapped at once);
- bleed: a band of random, varying width along part of the boundary between two large regions
  (hair into skin, skin into neck, cloth into neck), one side painted over the other.

Proposers have the signature of `noise`'s: (label, class set, rng) -> yields (proposal, detail);
`noise._try_event` applies them (only unlocked pixels, at least MIN_EVENT_PIXELS changed).
Sizes scale with the label side (`_px`).
"""
from __future__ import annotations

from typing import Iterator

import cv2
import numpy as np
from scipy import ndimage

from labelaudit.data.classes import IGNORE_INDEX, ClassSet
from labelaudit.data.synthetic.regions import class_ids, nearest_fill

Proposal = Iterator[tuple[np.ndarray, str]]

# part -> the classes an annotator paints it as (one of those in the class set, at random)
_CONFUSED = {
    "l_eye": ("eye_g", "l_brow", "skin"), "r_eye": ("eye_g", "r_brow", "skin"),
    "l_brow": ("hair", "l_eye"), "r_brow": ("hair", "r_eye"), "hat": ("hair", "background"),
    "hair": ("hat",), "u_lip": ("mouth", "i_mouth", "l_lip"),
    "l_lip": ("mouth", "i_mouth", "u_lip"),
    "nose": ("skin",), "l_ear": ("hair", "skin"), "r_ear": ("hair", "skin"),
    "ear_r": ("l_ear", "r_ear", "hair"), "neck_l": ("neck", "cloth"), "eye_g": ("skin",),
    "i_mouth": ("u_lip", "l_lip"), "mouth": ("u_lip", "l_lip"),
}
_OUTLINED = ("hair", "nose", "l_eye", "r_eye", "l_brow", "r_brow", "u_lip", "l_lip", "mouth",
             "i_mouth", "l_ear", "r_ear", "hat", "eye_g", "neck", "cloth")
_SHIFTED = ("nose", "l_eye", "r_eye", "l_brow", "r_brow", "u_lip", "l_lip", "mouth", "i_mouth",
            "l_ear", "r_ear", "ear_r", "eye_g")
_FORGOTTEN = ("ear_r", "neck_l", "eye_g", "hat", "l_ear", "r_ear", "l_brow", "r_brow", "i_mouth")
_BLEED = (("hair", "skin"), ("skin", "hair"), ("skin", "neck"), ("neck", "skin"),
          ("cloth", "neck"), ("hair", "background"), ("background", "hair"), ("skin", "background"))


def _px(label: np.ndarray, value: float) -> float:
    """`value` pixels at a 128 px label, scaled to this label's side."""
    return value * float(np.sqrt(label.size)) / 128.0


def _one_piece(label: np.ndarray, cls: int, rng: np.random.Generator, min_px: int = 1
               ) -> np.ndarray | None:
    """A random connected piece (bool mask) of class `cls` of >= min_px pixels, or None."""
    n, comp = cv2.connectedComponents((label == cls).astype(np.uint8), connectivity=8)
    size = np.bincount(comp.ravel(), minlength=n)
    ids = [i for i in range(1, n) if size[i] >= min_px]
    order = rng.permutation(len(ids))
    return comp == ids[order[0]] if ids else None


def _fill_from_outside(label: np.ndarray, region: np.ndarray, cls: int) -> np.ndarray | None:
    """Copy of label where `region` takes the nearest class other than `cls` (None: no such)."""
    return nearest_fill(label, region, (label != cls) & ~region & (label != IGNORE_INDEX))


def _redraw(label: np.ndarray, piece: np.ndarray, cls: int, drawn: np.ndarray) -> np.ndarray | None:
    """Copy of label where part `piece` of class `cls` is drawn as `drawn` instead: what it no
    longer covers takes the classes around it, what it newly covers becomes `cls`."""
    out = _fill_from_outside(label, piece & ~drawn, cls)
    if out is not None:
        out[drawn & (label != IGNORE_INDEX)] = cls
    return out


def propose_paint(label: np.ndarray, cs: ClassSet, rng: np.random.Generator) -> Proposal:
    names = [n for n in _CONFUSED if n in cs.names]
    for i in rng.permutation(len(names)):
        src = cs.index(names[i])
        targets = class_ids(cs, _CONFUSED[names[i]])
        if not targets:
            continue
        dst = targets[int(rng.integers(len(targets)))]
        piece = _one_piece(label, src, rng)
        if piece is not None:
            out = label.copy()
            out[piece] = dst
            yield out, f"{names[i]} as {cs.names[dst]}"


def propose_outline(label: np.ndarray, cs: ClassSet, rng: np.random.Generator) -> Proposal:
    names = [n for n in _OUTLINED if n in cs.names]
    for i in rng.permutation(len(names)):
        cls = cs.index(names[i])
        piece = _one_piece(label, cls, rng, min_px=int(_px(label, 6) ** 2))
        if piece is None:
            continue
        contours, _ = cv2.findContours(piece.astype(np.uint8), cv2.RETR_EXTERNAL,
                                       cv2.CHAIN_APPROX_NONE)
        eps = _px(label, rng.uniform(1.5, 4.0))
        poly = cv2.approxPolyDP(max(contours, key=cv2.contourArea), eps, True)
        if len(poly) < 3:
            continue
        drawn = np.zeros(label.shape, np.uint8)
        cv2.fillPoly(drawn, [poly], 1)
        out = _redraw(label, piece, cls, drawn.astype(bool))
        if out is not None:
            yield out, f"{len(poly)} vertices"


def propose_shift(label: np.ndarray, cs: ClassSet, rng: np.random.Generator) -> Proposal:
    names = [n for n in _SHIFTED if n in cs.names]
    for i in rng.permutation(len(names)):
        cls = cs.index(names[i])
        piece = _one_piece(label, cls, rng, min_px=8)
        if piece is None:
            continue
        r = _px(label, rng.uniform(2.0, 5.0))
        t = rng.uniform(0, 2 * np.pi)
        dx, dy = int(round(r * np.cos(t))), int(round(r * np.sin(t)))
        moved = ndimage.shift(piece.astype(np.uint8), (dy, dx), order=0, mode="constant") > 0
        out = _redraw(label, piece, cls, moved)
        if out is not None:
            yield out, f"dx={dx} dy={dy}"


def propose_missing(label: np.ndarray, cs: ClassSet, rng: np.random.Generator) -> Proposal:
    names = [n for n in _FORGOTTEN if n in cs.names]
    for i in rng.permutation(len(names)):
        cls = cs.index(names[i])
        piece = _one_piece(label, cls, rng)
        out = _fill_from_outside(label, piece, cls) if piece is not None else None
        if out is not None:
            yield out, ""


def propose_mirror(label: np.ndarray, cs: ClassSet, rng: np.random.Generator) -> Proposal:
    pairs = [(a, b) for a, b in cs.flip_pairs if (label == a).any() or (label == b).any()]
    if pairs:
        out = label.copy()
        for a, b in pairs:
            out[label == a], out[label == b] = b, a
        yield out, f"{len(pairs)} pairs"


def propose_bleed(label: np.ndarray, cs: ClassSet, rng: np.random.Generator) -> Proposal:
    """Class `a` painted over `b` in a band along part of their shared boundary."""
    pairs = [(cs.index(a), cs.index(b)) for a, b in _BLEED if a in cs.names and b in cs.names]
    for i in rng.permutation(len(pairs)):
        a, b = pairs[i]
        in_a = label == a
        grown = cv2.dilate(in_a.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        ring = grown & (label == b)
        ys, xs = np.nonzero(ring)
        if len(ys) < 4:
            continue
        j = int(rng.integers(len(ys)))
        reach = _px(label, rng.uniform(10, 30))  # half-length of the stretch of boundary
        width = _px(label, rng.uniform(2.0, 6.0))
        dist_a = ndimage.distance_transform_edt(~in_a)
        gy, gx = np.mgrid[:label.shape[0], :label.shape[1]]
        along = np.hypot(gy - ys[j], gx - xs[j])
        # the band's width falls off towards the stretch's ends: a painted stroke, not a ribbon
        taper = np.clip(1 - along / reach, 0, 1) ** 0.5
        band = (label == b) & (dist_a <= width * taper) & (along < reach)
        if band.sum() == 0:
            continue
        out = label.copy()
        out[band] = a
        yield out, f"{cs.names[a]} over {cs.names[b]} w={width:.1f}"


PROPOSERS = {"paint": propose_paint, "outline": propose_outline, "shift": propose_shift,
             "missing": propose_missing, "mirror": propose_mirror, "bleed": propose_bleed}
