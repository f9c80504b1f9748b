"""Known label noise injected into a clean label map: flips, dropped parts, boundary shifts, blobs
(the first family, `CLASSIC_TYPES`), or the annotator habits of `annotator` (`ANNOTATOR_TYPES`,
held out from everything the rules were tuned on).

Every event records exactly the pixels it changed; later events never touch pixels an earlier
event changed, so `noisy != clean` is exactly the union of the events and the per-pixel
noise-type map is unambiguous.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

from labelaudit.data.classes import ClassSet
from labelaudit.data.synthetic import annotator
from labelaudit.data.synthetic.regions import class_ids, nearest_fill

CLASSIC_TYPES: tuple[str, ...] = ("flip", "drop", "boundary", "blob")
ANNOTATOR_TYPES: tuple[str, ...] = tuple(annotator.PROPOSERS)
NOISE_TYPES: tuple[str, ...] = CLASSIC_TYPES + ANNOTATOR_TYPES
NOISE_CODES: dict[str, int] = {t: i + 1 for i, t in enumerate(NOISE_TYPES)}
"""Values of the per-pixel noise-type map (0 = clean pixel)."""

MIN_EVENT_PIXELS = 20
"""An event that would change fewer pixels is redrawn (too small to be a meaningful error)."""

_SWAPS = (("l_eye", "r_eye"), ("l_brow", "r_brow"), ("u_lip", "l_lip"), ("l_ear", "r_ear"))
_ONE_WAY = (("l_eye", "eye_g"), ("r_eye", "eye_g"))
_DROP = ("nose", "l_eye", "r_eye", "l_brow", "r_brow", "u_lip", "l_lip", "i_mouth", "mouth",
         "eye_g", "l_ear", "r_ear", "ear_r", "neck_l", "hat")
# A dropped part becomes the nearest pixel of one of these (the "surrounding" classes); the inner
# mouth is absorbed by the lips instead.
_FILL = ("background", "skin", "neck", "cloth", "hair", "eye_g")
_FILL_MOUTH = ("u_lip", "l_lip", "skin")
_BOUNDARY = ("hair", "u_lip", "l_lip", "nose", "l_brow", "r_brow", "l_eye", "r_eye", "skin",
             "neck", "cloth", "hat", "eye_g")
_BLOB_HOSTS = ("skin", "background", "neck", "cloth")
_BLOB_CLASSES = ("hair", "nose", "l_brow", "r_brow", "l_eye", "r_eye", "u_lip", "l_lip", "skin",
                 "eye_g", "hat")


@dataclass
class NoiseEvent:
    """One injected annotation error. `pixels` = number of label pixels it changed."""

    type: str
    from_class: str
    to_class: str
    from_id: int
    to_id: int
    pixels: int
    bbox: tuple[int, int, int, int]     # x0, y0, x1, y1 (inclusive) of the changed pixels
    detail: str = ""                    # e.g. "swap", "dilate r=3"

    def to_json(self) -> dict:
        return asdict(self)


def _disk(r: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))


def _propose_flip(label, cs, rng):
    options = [(a, b, True) for a, b in _SWAPS] + [(a, b, False) for a, b in _ONE_WAY]
    for i in rng.permutation(len(options)):
        a, b, swap = options[i]
        if a not in cs.names or b not in cs.names:
            continue
        ia, ib = cs.index(a), cs.index(b)
        ma = label == ia
        if not ma.any() or (swap and not (label == ib).any()):
            continue
        out = label.copy()
        out[ma] = ib
        if swap:
            out[label == ib] = ia
        yield out, "swap" if swap else "relabel"


def _propose_drop(label, cs, rng):
    parts = class_ids(cs, _DROP)
    for i in rng.permutation(len(parts)):
        c = parts[i]
        region = label == c
        if not region.any():
            continue
        fill = _FILL_MOUTH if cs.names[c] in ("i_mouth", "mouth") else _FILL
        sources = np.isin(label, class_ids(cs, fill)) & ~region
        out = nearest_fill(label, region, sources)
        if out is not None:
            yield out, ""


def _propose_boundary(label, cs, rng):
    """Grow a part into, or shrink it away from, the large classes around it (never moving the
    boundary between two small parts, e.g. skin swallowing the eyes)."""
    parts = class_ids(cs, _BOUNDARY)
    large = np.isin(label, class_ids(cs, _FILL))
    for i in rng.permutation(len(parts)):
        c = parts[i]
        region = label == c
        if not region.any():
            continue
        r = int(rng.integers(2, 5))
        if rng.uniform() < 0.5:
            grown = cv2.dilate(region.astype(np.uint8), _disk(r)).astype(bool)
            out = label.copy()
            out[grown & ~region & large] = c
            yield out, f"dilate r={r}"
        else:
            kept = cv2.erode(region.astype(np.uint8), _disk(r), borderType=cv2.BORDER_REPLICATE
                             ).astype(bool)
            if kept.sum() < 0.3 * region.sum():    # that would be a dropped part, not a boundary
                continue
            out = nearest_fill(label, region & ~kept, ~region)
            if out is None:
                continue
            small_nb = ~np.isin(out, class_ids(cs, _FILL)) & region   # rim next to a small part: keep
            out[small_nb] = c
            yield out, f"erode r={r}"


def _propose_blob(label, cs, rng):
    hosts = [h for h in class_ids(cs, _BLOB_HOSTS) if (label == h).any()]
    classes = class_ids(cs, _BLOB_CLASSES)
    if not hosts:
        return
    h, w = label.shape
    for _ in range(12):
        host = hosts[rng.integers(len(hosts))]
        c = classes[rng.integers(len(classes))]
        if c == host:
            continue
        ys, xs = np.nonzero(label == host)
        j = rng.integers(len(ys))
        area = max(2 * MIN_EVENT_PIXELS, rng.uniform(0.003, 0.009) * h * w)
        r = np.sqrt(area / np.pi)
        n = 14
        rad = r * (1 + 0.35 * rng.uniform(-1, 1, n))
        t = 2 * np.pi * np.arange(n) / n + rng.uniform(0, 1)
        squash = rng.uniform(0.6, 1.4)
        poly = np.stack([xs[j] + rad * np.cos(t), ys[j] + squash * rad * np.sin(t)], 1)
        mask = np.zeros_like(label)
        cv2.fillPoly(mask, [np.round(poly * 16).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=4)
        out = label.copy()
        out[(mask > 0) & (label == host)] = c
        yield out, ""


_PROPOSERS = {"flip": _propose_flip, "drop": _propose_drop, "boundary": _propose_boundary,
              "blob": _propose_blob, **annotator.PROPOSERS}


def _try_event(kind, noisy, locked, cs, rng) -> tuple[np.ndarray, np.ndarray, NoiseEvent] | None:
    """First proposal of `kind` that changes >= MIN_EVENT_PIXELS unlocked pixels."""
    for proposal, detail in _PROPOSERS[kind](noisy, cs, rng):
        change = (proposal != noisy) & ~locked
        npx = int(change.sum())
        if npx < MIN_EVENT_PIXELS:
            continue
        before, after = noisy[change], proposal[change]
        f = int(np.bincount(before).argmax())
        t = int(np.bincount(after).argmax())
        ys, xs = np.nonzero(change)
        event = NoiseEvent(kind, cs.names[f], cs.names[t], f, t, npx,
                           (int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())), detail)
        return change, after, event
    return None


def inject_noise(
    clean: np.ndarray,
    class_set: ClassSet,
    rng: np.random.Generator,
    noise_types: tuple[str, ...] = NOISE_TYPES,
    n_events: int = 1,
) -> tuple[np.ndarray, np.ndarray, list[NoiseEvent]] | None:
    """Corrupt a clean (H, W) uint8 label map with `n_events` events of the given types.

    Returns (noisy (H, W) uint8, noise-type map (H, W) uint8 with NOISE_CODES, events), or None
    when not even one event fits this label map (the caller redraws the face).
    """
    noisy = clean.copy()
    types = np.zeros_like(clean)
    events: list[NoiseEvent] = []
    for _ in range(n_events):
        first = noise_types[rng.integers(len(noise_types))]
        order = [first] + [t for t in rng.permutation(list(noise_types)) if t != first]
        for kind in order:      # the drawn type first; another only if this face has no room
            got = _try_event(kind, noisy, types > 0, class_set, rng)
            if got is None:
                continue
            change, values, event = got
            noisy[change] = values
            types[change] = NOISE_CODES[kind]
            events.append(event)
            break
    if not events:
        return None
    return noisy, types, events

