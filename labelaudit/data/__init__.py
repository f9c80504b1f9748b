"""Datasets: on-disk formats behind one `Source` interface, the letterbox warp, the torch dataset.

    source = open_source("lapa", "/data/LaPa")
    recs = source.records("train")
    image, label = source.load_pair(recs[0])          # (H, W, 3) uint8 RGB, (H, W) uint8
    ds = FaceParsingDataset(source, "train", augment=True)

`FaceParsingDataset` and `collate` import torch, so they are loaded on first use.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from labelaudit.data.classes import (
    CELEBAMASK, CELEBAMASK_PARTS, HELEN, IGNORE_INDEX, LAPA, ClassSet, infer_flip_pairs,
)
from labelaudit.data.errors import BadInputError
from labelaudit.data.formats import KINDS, detect_layout, open_source
from labelaudit.data.io import read_image, read_label, write_label
from labelaudit.data.records import Record
from labelaudit.data.source import SPLITS, Source
from labelaudit.data.warp import (
    WarpParams, coverage_mask, flip_label, flip_probs, letterbox_params, random_params,
    warp_back, warp_image, warp_label, warp_matrix,
)

if TYPE_CHECKING:
    from labelaudit.data.dataset import FaceParsingDataset, collate, params_from_batch

_TORCH_NAMES = ("FaceParsingDataset", "collate", "params_from_batch", "normalize_image")


def __getattr__(name: str) -> Any:
    if name in _TORCH_NAMES:
        from labelaudit.data import dataset

        return getattr(dataset, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BadInputError", "CELEBAMASK", "CELEBAMASK_PARTS", "ClassSet", "FaceParsingDataset", "HELEN",
    "IGNORE_INDEX", "KINDS", "LAPA", "Record", "SPLITS", "Source", "WarpParams", "collate",
    "coverage_mask", "detect_layout", "flip_label", "flip_probs", "infer_flip_pairs",
    "letterbox_params", "normalize_image", "open_source", "params_from_batch", "random_params",
    "read_image", "read_label", "warp_back", "warp_image", "warp_label", "warp_matrix",
    "write_label",
]
