"""Run-length encoding of a boolean region mask as a short text string.

Format: the mask is read in **row-major (C) order** and written as the lengths of alternating
runs, separated by single spaces, starting with a run of ``False`` (which is ``0`` when the first
pixel is set). The shape is not part of the string; the caller stores it (for a finding it is the
bbox height and width, because findings keep their mask cropped to the bbox). Example::

    [[0, 1, 1],
     [1, 0, 0]]  ->  "1 3 2"

The counts of one string always sum to H*W, which ``decode_mask`` checks.

A whole label map (a hand correction) is kept as index-PNG bytes instead: ``encode_label_png``.
"""
from __future__ import annotations

import cv2
import numpy as np


def encode_mask(mask: np.ndarray) -> str:
    """Encode a (H, W) boolean mask (any dtype; nonzero = set) as row-major run lengths."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"encode_mask expects a 2-D (H, W) mask, got shape {mask.shape}")
    flat = mask.ravel(order="C").astype(bool, copy=False)
    if flat.size == 0:
        return ""
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate(([0], change, [flat.size]))
    counts = np.diff(bounds)
    if flat[0]:
        counts = np.concatenate(([0], counts))
    return " ".join(map(str, counts.tolist()))


def decode_mask(rle: str, shape: tuple[int, int]) -> np.ndarray:
    """Decode a string from ``encode_mask`` into a (H, W) bool array of the given shape."""
    h, w = (int(s) for s in shape)
    if h < 0 or w < 0:
        raise ValueError(f"decode_mask: negative shape {shape}")
    counts = np.array(rle.split(), dtype=np.int64) if rle.strip() else np.zeros(0, np.int64)
    if (counts < 0).any():
        raise ValueError("decode_mask: negative run length in RLE string")
    if int(counts.sum()) != h * w:
        raise ValueError(
            f"decode_mask: run lengths sum to {int(counts.sum())}, shape {shape} needs {h * w}"
        )
    values = np.zeros(counts.size, dtype=bool)
    values[1::2] = True
    return np.repeat(values, counts).reshape(h, w)


def encode_label_png(label: np.ndarray) -> bytes:
    """A (H, W) uint8 label map as lossless PNG bytes (a few hundred bytes for a face)."""
    label = np.asarray(label)
    if label.ndim != 2 or label.dtype != np.uint8:
        raise ValueError(f"encode_label_png expects a (H, W) uint8 map, got {label.dtype} {label.shape}")
    ok, buf = cv2.imencode(".png", label)
    if not ok:
        raise ValueError("encode_label_png: PNG encoding failed")
    return buf.tobytes()


def decode_label_png(data: bytes) -> np.ndarray:
    """The (H, W) uint8 map of ``encode_label_png``."""
    label = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if label is None or label.ndim != 2:
        raise ValueError("decode_label_png: not a single-channel PNG")
    return label
