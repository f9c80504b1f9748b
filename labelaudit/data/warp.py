"""The letterbox similarity warp between a dataset frame and the network's square input.

docs/design.md §2: the whole image is fitted into an S x S square (S = 473 by default) by a similarity
transform, no face detector. In source pixel coordinates (x right, y down):

    c = ((w - 1) / 2, (h - 1) / 2)           centre of the image
    s = max(w - 1, h - 1)                    longest side, pixel-centre to pixel-centre
    t = S / s * scale                        `scale` = 1 fits the whole image (letterbox)
    x_out = t * R(rotation) (x_src - c) + ((S - 1) / 2, (S - 1) / 2)

so at scale 1 and rotation 0 the first and last pixel centres of the long side land on -0.5
and S - 0.5: the image spans the output's full pixel extent (the reference's fit).
Rotation is in degrees, counter-clockwise as seen on screen (cv2.getRotationMatrix2D's
convention). `flip` mirrors the source about its vertical midline x = (w - 1) / 2 before the
similarity (so a flip with rotation r equals mirroring the output of rotation -r), and swaps
left/right classes: label values through ClassSet.flip_lut, probability channels through
ClassSet.flip_permutation.

Images are sampled bilinearly with a 0 border, labels by nearest neighbour with a 255 (ignore)
border. `warp_back` maps network outputs to the source frame; see its docstring for pixels the
output does not cover.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from labelaudit.data.classes import IGNORE_INDEX, ClassSet

_CV_MAX_CHANNELS = 4  # cv2.warpAffine handles at most 4 channels per call


@dataclass(frozen=True)
class WarpParams:
    """One warp from a source frame of size src_size = (h, w) to an out_size x out_size square.

    Attributes:
        center: (x, y) source point that lands on the output centre; the image centre normally.
        scale: zoom relative to the letterbox fit (1.0 = the whole image just fits).
        rotation: degrees, counter-clockwise.
        flip: mirror the source horizontally (and swap left/right classes).
        out_size: side S of the square output.
        src_size: (h, w) of the source frame (the label frame).
    """

    center: tuple[float, float]
    scale: float
    rotation: float
    flip: bool
    out_size: int
    src_size: tuple[int, int]


def letterbox_params(src_size: tuple[int, int], out_size: int, flip: bool = False) -> WarpParams:
    """The deterministic warp used for evaluation and scanning (scale 1, no rotation)."""
    h, w = src_size
    return WarpParams(((w - 1) / 2, (h - 1) / 2), 1.0, 0.0, bool(flip), int(out_size), (h, w))


def random_params(
    rng: np.random.Generator,
    src_size: tuple[int, int],
    out_size: int,
    scale_range: tuple[float, float] = (0.75, 1.25),
    rotation: float = 30.0,
    flip: bool = True,
) -> WarpParams:
    """Training augmentation: scale ~ U(scale_range), rotation ~ U(-rotation, rotation) degrees,
    flip with probability 1/2 (when `flip`). Always draws three numbers, so changing one option
    does not shift the others' random streams."""
    u_scale, u_rot, u_flip = rng.random(3)
    lo, hi = scale_range
    params = letterbox_params(src_size, out_size)
    return WarpParams(
        center=params.center,
        scale=float(lo + (hi - lo) * u_scale),
        rotation=float((2 * u_rot - 1) * rotation),
        flip=bool(flip and u_flip < 0.5),
        out_size=params.out_size,
        src_size=params.src_size,
    )


def warp_matrix(params: WarpParams) -> np.ndarray:
    """(2, 3) float64 affine matrix mapping source pixel (x, y) to output pixel coordinates."""
    h, w = params.src_size
    side = max(w - 1, h - 1, 1)
    t = params.out_size / side * params.scale
    cx, cy = params.center
    m = np.eye(3)
    m[:2] = cv2.getRotationMatrix2D((float(cx), float(cy)), float(params.rotation), t)
    o = (params.out_size - 1) / 2
    m[0, 2] += o - cx
    m[1, 2] += o - cy
    if params.flip:
        mirror = np.array([[-1.0, 0.0, w - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
        m = m @ mirror
    return m[:2]


def _check_src(arr: np.ndarray, params: WarpParams, what: str) -> None:
    if arr.shape[:2] != tuple(params.src_size):
        raise ValueError(f"{what} has size {arr.shape[:2]}, params expect {params.src_size}")


def warp_image(image: np.ndarray, params: WarpParams) -> np.ndarray:
    """(h, w[, 3]) image -> (S, S[, 3]) same dtype; bilinear, 0 outside the source."""
    _check_src(image, params, "image")
    s = params.out_size
    return cv2.warpAffine(image, warp_matrix(params), (s, s), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def warp_label(label: np.ndarray, params: WarpParams, classes: ClassSet | None = None) -> np.ndarray:
    """(h, w) uint8 label -> (S, S) uint8; nearest, 255 outside, left/right swapped on flip.

    `classes` is needed only when params.flip is set.
    """
    _check_src(label, params, "label")
    s = params.out_size
    out = cv2.warpAffine(label, warp_matrix(params), (s, s), flags=cv2.INTER_NEAREST,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=IGNORE_INDEX)
    if params.flip:
        out = _need(classes).flip_lut()[out]
    return out


def _need(classes: ClassSet | None) -> ClassSet:
    if classes is None:
        raise ValueError("a flipped warp needs the ClassSet to swap left/right classes")
    return classes


def _warp_channels(chw: np.ndarray, m: np.ndarray, size: tuple[int, int], flags: int) -> np.ndarray:
    """Apply warpAffine to a (C, H, W) stack, 4 channels per cv2 call; size = (w, h)."""
    out = np.empty((chw.shape[0], size[1], size[0]), chw.dtype)
    for i in range(0, chw.shape[0], _CV_MAX_CHANNELS):
        chunk = np.ascontiguousarray(np.moveaxis(chw[i:i + _CV_MAX_CHANNELS], 0, -1))
        res = cv2.warpAffine(chunk, m, size, flags=flags, borderMode=cv2.BORDER_REPLICATE)
        out[i:i + _CV_MAX_CHANNELS] = res.reshape(size[1], size[0], -1).transpose(2, 0, 1)
    return out


def warp_back(pred: np.ndarray, params: WarpParams, classes: ClassSet | None = None) -> np.ndarray:
    """Map a network output from the S x S input frame back to the (h, w) source frame.

    Args:
        pred: (C, S, S) float probabilities (or logits) -> bilinear, returns (C, h, w) float32;
            or (S, S) uint8 label map -> nearest, returns (h, w) uint8.
        params: the warp the input was made with; a flip is undone, including the left/right
            channel (or value) swap, so the result is in the source's own class meaning.
        classes: needed only when params.flip is set.

    Source pixels that the S x S output does not cover (possible only when scale > 1 or with
    rotation; the letterbox at scale 1 covers the whole frame) take the value of the nearest
    output border pixel (BORDER_REPLICATE). That is an extrapolation, not a prediction: it
    keeps probabilities normalised and avoids a fake class, and callers that must know can ask
    `coverage_mask(params)`. Scanning uses the letterbox, where this never happens.
    """
    h, w = params.src_size
    s = params.out_size
    m = warp_matrix(params)
    flags = cv2.WARP_INVERSE_MAP  # m maps source -> output, i.e. destination -> sample point here
    if pred.ndim == 2:
        if pred.shape != (s, s):
            raise ValueError(f"label prediction must be ({s}, {s}), got {pred.shape}")
        out = cv2.warpAffine(np.ascontiguousarray(pred, dtype=np.uint8), m, (w, h),
                             flags=cv2.INTER_NEAREST | flags, borderMode=cv2.BORDER_REPLICATE)
        return _need(classes).flip_lut()[out] if params.flip else out
    if pred.ndim != 3 or pred.shape[1:] != (s, s):
        raise ValueError(f"probabilities must be (C, {s}, {s}), got {pred.shape}")
    out = _warp_channels(np.asarray(pred, np.float32), m, (w, h), cv2.INTER_LINEAR | flags)
    if params.flip:
        out = out[_need(classes).flip_permutation()]
    return out


def coverage_mask(params: WarpParams) -> np.ndarray:
    """(h, w) bool: source pixels whose centre maps inside the S x S output's pixel extent."""
    h, w = params.src_size
    m = warp_matrix(params)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    x = m[0, 0] * xs + m[0, 1] * ys + m[0, 2]
    y = m[1, 0] * xs + m[1, 1] * ys + m[1, 2]
    lo, hi = -0.5 - 1e-6, params.out_size - 0.5 + 1e-6
    return (x >= lo) & (x <= hi) & (y >= lo) & (y <= hi)


def flip_label(label: np.ndarray, classes: ClassSet) -> np.ndarray:
    """(H, W) uint8 label mirrored horizontally with left/right classes swapped (an involution)."""
    return classes.flip_lut()[label[:, ::-1]]


def flip_probs(probs: np.ndarray, classes: ClassSet) -> np.ndarray:
    """(C, H, W) (or (N, C, H, W)) probabilities mirrored with left/right channels swapped.

    Works on numpy arrays; for a torch tensor use `t.flip(-1)[..., perm, :, :]` with
    perm = classes.flip_permutation().
    """
    perm = classes.flip_permutation()
    return np.ascontiguousarray(probs[..., perm, :, ::-1])
