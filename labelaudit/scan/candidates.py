"""Candidate regions and the teacher's evidence on each: the input of the calibrated scorer.

A candidate is a connected region (8-connected) of pixels sharing one (given, suggested) class
pair where the teacher's top class differs from the given label, or is the given label at a
probability below LOW_Q (suggested: its second class), at any size or thickness. The
rules of `scan.score` filter such regions; here their quantities are features, and a model
fitted per dataset and teacher (`scan.calibrator`) turns them into a probability of error.

Shapes: probs (C, H, W), label (H, W) ints with 255 = ignored. Everything is vectorised over the
candidates of an image (bincount over the region id map), so the cost hardly grows with their
number.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import cc3d
import cv2
import numpy as np
from scipy import ndimage

from labelaudit.confidence import class_index
from labelaudit.data.classes import IGNORE_INDEX

FEATURES: tuple[str, ...] = (
    "log_area", "area_frac", "frac_of_given_class", "thickness", "thickness_rel",
    "q_mean", "q_min", "q_low_frac", "top_mean", "margin_mean", "entropy_mean", "confident_frac",
    "cover_given", "cover_suggested", "ring_given", "ring_suggested", "boundary_dist",
    "outline_disputed", "edge_given", "edge_suggested",
    "given_threshold", "suggested_threshold", "pair_confusion", "mirror_pair",
)
LOW_Q = 0.5  # a pixel whose given label the teacher agrees with below this joins the candidates
COVER = 0.5  # coverage of a part that makes a candidate a whole-part finding (its kind)
_BIG = np.float32(2 ** 24)


@dataclass
class TeacherContext:
    """What the features need to know of the teacher on clean-ish data (its val split).

    thresholds: (C,) mean self-confidence per class (confident learning's t_j);
    confusion: (C, C) row-normalised rate of the teacher predicting s where the label is g;
    mirror: (C, C) bool, (g, s) is a left/right pair of the class set.
    """

    thresholds: np.ndarray
    confusion: np.ndarray
    mirror: np.ndarray

    @staticmethod
    def mirror_matrix(num_classes: int, flip_pairs) -> np.ndarray:
        m = np.zeros((num_classes, num_classes), bool)
        for a, b in flip_pairs:
            m[a, b] = m[b, a] = True
        return m


@dataclass
class Candidates:
    """The candidates of one image; candidate k has id k + 1 in `ids`."""

    ids: np.ndarray  # (H, W) int32, 0 = no candidate
    given: np.ndarray  # (n,) int
    suggested: np.ndarray  # (n,) int
    area: np.ndarray  # (n,) int
    cover: np.ndarray  # (n, 2) float64: the candidate's share of its given and suggested part
    features: np.ndarray  # (n, len(FEATURES)) float32

    @classmethod
    def none(cls, ids: np.ndarray) -> Candidates:
        """An image without a candidate."""
        e = np.zeros(0, int)
        return cls(ids, e, e, e, np.zeros((0, 2)), np.zeros((0, len(FEATURES)), np.float32))

    def __len__(self) -> int:
        return len(self.given)

    def kind(self, k: int) -> str:
        """Candidate k's kind of finding (flip, missing, spurious, boundary) from its cover."""
        return _kind(*self.cover[k])

    @functools.cached_property
    def _boxes(self) -> list[tuple[slice, slice]]:
        """Every candidate's bounding slices, from one pass over `ids`."""
        return ndimage.find_objects(self.ids, max_label=len(self))

    def crop(self, k: int) -> tuple[tuple[int, int, int, int], np.ndarray]:
        """(x, y, w, h) bounding box and the cropped bool mask of candidate k."""
        ys, xs = self._boxes[k]
        box = (int(xs.start), int(ys.start), int(xs.stop - xs.start), int(ys.stop - ys.start))
        return box, self.ids[ys, xs] == k + 1


def edge_strength(image: np.ndarray) -> np.ndarray:
    """(H, W) float32 image gradient magnitude (Sobel, the largest of the three colour
    channels'), the image's evidence of where part boundaries lie. An annotator's boundary
    follows the visible edge; a grown, shrunk, painted or coarsely drawn one leaves it."""
    out = None
    for channel in cv2.split(image):  # OpenCV per channel: 0.12 ms a 128 px image
        gx, gy = cv2.Sobel(channel, cv2.CV_32F, 1, 0), cv2.Sobel(channel, cv2.CV_32F, 0, 1)
        # not cv2.magnitude: its result's last bit depends on the output buffer's alignment
        mag = cv2.sqrt(gx * gx + gy * gy)
        out = mag if out is None else cv2.max(out, mag)
    return out


def find_candidates(probs: np.ndarray, label: np.ndarray, q: np.ndarray, pred: np.ndarray,
                    top: np.ndarray, ctx: TeacherContext, edges: np.ndarray | None = None
                    ) -> Candidates:
    """Every disagreement region of the image with its features (see FEATURES). edges: the
    image's `edge_strength` in the label's frame; without it the edge features are missing
    (NaN, which the scorer's trees route as they learnt)."""
    c = probs.shape[0]
    valid = label != IGNORE_INDEX
    g_all = class_index(label)
    sugg_map = _suggestions(probs, label, q, pred, valid)
    disagree = (sugg_map != label) & valid
    pair = np.where(disagree, 1 + g_all * c + sugg_map, 0)
    ids = _regions(pair).astype(np.int32)
    n = int(ids.max())
    if n == 0:
        return Candidates.none(ids)
    flat = ids.ravel()
    inside = flat > 0
    key = flat[inside] - 1
    area = np.bincount(key, minlength=n).astype(np.float64)
    px = np.flatnonzero(inside)  # the candidates' pixels: every per-pixel quantity below is theirs

    def mean_of(values: np.ndarray) -> np.ndarray:
        return np.bincount(key, weights=values, minlength=n) / area

    def extreme(values: np.ndarray, ufunc, start: float) -> np.ndarray:
        out = np.full(n, start)
        ufunc.at(out, key, values)
        return out

    q_in, top_in, pred_in, g_in = q.ravel()[px], top.ravel()[px], sugg_map.ravel()[px], g_all.ravel()[px]
    first = np.zeros(n, np.int64)
    first[key[::-1]] = np.arange(len(key))[::-1]  # one pixel of each candidate
    given, sugg = g_in[first], pred_in[first]
    p_in = probs.reshape(c, -1)[:, px]
    entropy = -(p_in * np.log(np.clip(p_in, 1e-12, 1.0))).sum(0) / np.log(c)
    confident = (top_in >= ctx.thresholds[pred_in]) | ((q_in <= 1.0 - ctx.thresholds[g_in]) & (top_in >= 0.5))
    g_parts, s_parts = _parts(g_all), _parts(sugg_map)
    g_size = np.bincount(g_parts)
    # all of a candidate's pixels share one class of each map and are 8-connected: they lie in
    # one part of each, the part of its pixel `first`
    g_mine, s_mine = g_parts[px[first]], s_parts[px[first]]
    cov_g, cov_s = area / g_size[g_mine], area / np.bincount(s_parts)[s_mine]
    edge = _edges(label)
    ring_g, ring_s, edge_g, edge_s = _surroundings(ids, g_all, given, sugg, edges, edge,
                                                   _edges(sugg_map) & valid)
    class_px = np.bincount(g_all[valid].ravel(), minlength=c).astype(np.float64)
    thick = extreme(_inner_distance(ids).ravel()[px], np.maximum, 0.0)
    feats = np.stack([
        np.log(area), area / max(1, int(valid.sum())), area / np.maximum(class_px[given], 1.0),
        thick, thick / float(np.sqrt(label.size)),
        mean_of(q_in), extreme(q_in, np.minimum, 1.0), mean_of((q_in < 0.1).astype(np.float64)),
        mean_of(top_in), mean_of(top_in - q_in), mean_of(entropy), mean_of(confident.astype(np.float64)),
        cov_g, cov_s, ring_g, ring_s, mean_of(_boundary_distance(edge).ravel()[px]),
        _outline_disputed(g_parts, len(g_size), edge.ravel(), inside)[g_mine], edge_g, edge_s,
        ctx.thresholds[given], ctx.thresholds[sugg], ctx.confusion[given, sugg],
        ctx.mirror[given, sugg].astype(np.float64),
    ], axis=1).astype(np.float32)
    return Candidates(ids, given, sugg, area.astype(int), np.stack([cov_g, cov_s], 1), feats)


def _suggestions(probs: np.ndarray, label: np.ndarray, q: np.ndarray, pred: np.ndarray,
                 valid: np.ndarray) -> np.ndarray:
    """(H, W) the class each pixel's label should be: the teacher's top class, and where the
    teacher's top class is the given one but with a probability below LOW_Q (a label it half
    learnt, as a network does with the errors of its own training labels), its second."""
    low = valid & (pred == label) & (q < LOW_Q)
    if not low.any():
        return pred
    at = np.flatnonzero(low)
    p_low = probs.reshape(probs.shape[0], -1)[:, at]
    p_low[class_index(label.ravel()[at]), np.arange(len(at))] = -1.0
    out = pred.copy()
    out.ravel()[at] = p_low.argmax(0)
    return out


def _kind(cover_given: float, cover_suggested: float) -> str:
    """See `Candidates.kind`."""
    if cover_given >= COVER and cover_suggested >= COVER:
        return "flip"  # a whole labelled part that is a whole predicted part of another class
    if cover_suggested >= COVER:
        return "missing"
    if cover_given >= COVER:
        return "spurious"
    return "boundary"


def _regions(values: np.ndarray) -> np.ndarray:
    """(H, W) ids 1.. of the 8-connected regions of equal nonzero values (0: none), numbered in
    raster order of their first pixel (values < 2**32: pair codes of up to 255 classes). cc3d
    gives skimage's `label` to the last id (all 640 maps of a 320-image scan compared) in a
    fifth of its time on 128 x 128 maps."""
    return cc3d.connected_components(values.astype(np.uint32), connectivity=8,
                                     out_dtype=np.uint32)


def _parts(class_map: np.ndarray) -> np.ndarray:
    """(H * W,) the id of each pixel's 8-connected part of one class of class_map (ints >= 0)."""
    return _regions(class_map + 1).ravel()


def _outline_disputed(parts: np.ndarray, n: int, edge: np.ndarray, inside: np.ndarray
                      ) -> np.ndarray:
    """Per part (n of them): the share of its outline pixels (`edge`, flat) that lie in some
    candidate. A part drawn off along its whole outline (a coarse polygon, a band painted over
    the neighbour) is disputed all round; a teacher's imprecise boundary only in places."""
    outline = np.bincount(parts[edge], minlength=n)
    return np.bincount(parts[edge & inside], minlength=n) / np.maximum(outline, 1)


def _surroundings(ids: np.ndarray, label: np.ndarray, given: np.ndarray, sugg: np.ndarray,
                  edges: np.ndarray | None, given_edge: np.ndarray, sugg_edge: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per candidate: its `_ring_fractions` and `_edge_support`, from one dilation of `ids`."""
    n = len(given)
    grown = cv2.dilate(ids.astype(np.float32), np.ones((3, 3), np.uint8)).astype(np.int32)
    return (*_ring_fractions(ids, grown, label, given, sugg, n),
            *_edge_support(ids, grown, edges, given_edge, sugg_edge, n))


def _ring_fractions(ids: np.ndarray, grown: np.ndarray, label: np.ndarray, given: np.ndarray,
                    sugg: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per candidate: the share of its outer 1-px ring labelled with its given class (a blob
    inside a part) and with its suggested class (a shifted boundary). The ring pixels are
    given to the largest-id candidate they touch (`grown`: ids dilated by 3 x 3)."""
    ring = (grown > 0) & (grown != ids) & (label != IGNORE_INDEX)
    owner = grown[ring] - 1
    total = np.maximum(np.bincount(owner, minlength=n), 1)
    lab = label[ring]
    return (np.bincount(owner, weights=lab == given[owner], minlength=n) / total,
            np.bincount(owner, weights=lab == sugg[owner], minlength=n) / total)


def _edge_support(ids: np.ndarray, grown: np.ndarray, edges: np.ndarray | None,
                  given_edge: np.ndarray, sugg_edge: np.ndarray, n: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Per candidate: the mean image edge strength on the given label's boundary pixels in the
    candidate and its 1-px ring, and the same on the suggested map's, both relative to the mean
    on all boundary pixels of either map in the image (a scale-free "does this boundary follow
    the image": about 1 where it does, near 0 in flat texture). NaN where the candidate holds no
    such boundary pixel, or without `edges`."""
    if edges is None:
        return np.full(n, np.nan), np.full(n, np.nan)
    either = given_edge | sugg_edge
    scale = float(edges[either].mean()) if either.any() else 0.0
    rel = (edges / scale if scale > 0 else np.zeros_like(edges)).ravel()
    owner = np.where(ids > 0, ids, grown).ravel()

    def support(boundary: np.ndarray) -> np.ndarray:
        at = np.flatnonzero(boundary.ravel() & (owner > 0))
        who = owner[at] - 1
        count = np.bincount(who, minlength=n)
        total = np.bincount(who, weights=rel[at], minlength=n)
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return support(given_edge), support(sugg_edge)


def _inner_distance(ids: np.ndarray) -> np.ndarray:
    """(H, W) distance (px) from each candidate pixel to its candidate's outline, where touching
    candidates count as outside (a candidate's thickness is its largest value)."""
    f = ids.astype(np.float32)
    grown = cv2.dilate(f, np.ones((3, 3), np.uint8))
    shrunk = cv2.erode(np.where(ids > 0, f, _BIG), np.ones((3, 3), np.uint8))
    core = (ids > 0) & (grown == f) & ((shrunk == f) | (shrunk == _BIG))
    return cv2.distanceTransform(core.astype(np.uint8), cv2.DIST_L2, 3)


def _edges(label: np.ndarray) -> np.ndarray:
    """(H, W) bool: the pixels whose 3x3 neighbourhood holds two classes (ignored counts)."""
    lab = label.astype(np.float32)
    k = np.ones((3, 3), np.uint8)
    return cv2.dilate(lab, k) != cv2.erode(lab, k)


def _boundary_distance(edge: np.ndarray) -> np.ndarray:
    """(H, W) distance (px) to the nearest `edge` pixel."""
    return cv2.distanceTransform((~edge).astype(np.uint8), cv2.DIST_L2, 3)
