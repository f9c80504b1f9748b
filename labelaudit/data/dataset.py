"""`FaceParsingDataset`: a Source split as warped, normalised tensors for the network.

Each item is one image letterboxed (and, with `augment`, randomly scaled, rotated and flipped)
into S x S, with the label warped the same way (255 outside the image) and the warp parameters
needed to map a prediction back to the label frame (`params_from_batch` + `warp_back`).

Augmentation is a pure function of (seed, epoch, index): every DataLoader worker, every rank and
a resumed run draw the same warp for the same sample. Call `set_epoch(epoch)` each epoch (before
creating the iterator, as with DistributedSampler; persistent workers keep their own copy).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from labelaudit.data.errors import BadInputError
from labelaudit.data.planted import Planted
from labelaudit.data.records import Record
from labelaudit.data.source import OnBad, Source, check_on_bad
from labelaudit.data.warp import WarpParams, letterbox_params, random_params, warp_image, warp_label

log = logging.getLogger(__name__)

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)


def normalize_image(image: np.ndarray, channel_order: Literal["rgb", "bgr"] = "rgb") -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (3, H, W) float32 normalised with ImageNet mean/std.

    channel_order="bgr" reproduces the reference DML-CSR input: BGR pixels normalised with the
    RGB-ordered statistics (channel 0 = blue, shifted by the red mean). Needed for its weights.
    """
    if channel_order not in ("rgb", "bgr"):
        raise ValueError(f"channel_order must be 'rgb' or 'bgr', got {channel_order!r}")
    x = image.astype(np.float32) * (1.0 / 255.0)
    if channel_order == "bgr":
        x = x[:, :, ::-1]
    x = (x - IMAGENET_MEAN) / IMAGENET_STD
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator for one sample's augmentation: independent streams per (seed, epoch, index)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(epoch), int(index)]))


class FaceParsingDataset(Dataset):
    """One split of a Source as training / evaluation samples.

    Args:
        source: the opened dataset (`open_source`).
        split: "train", "val" or "test".
        size: side S of the square network input.
        augment: random scale, rotation and flip; otherwise the plain letterbox.
        scale_range, rotation, flip: augmentation ranges (scale factor, +- degrees, 50 % flip).
        channel_order: "rgb", or "bgr" for the reference network's quirk (`normalize_image`).
        seed: base seed of the augmentation (see `sample_rng`).
        on_bad: "raise" or "skip". With "skip" a bad sample met in __getitem__ is logged and
            recorded in `source.skipped` (in the worker process that met it), and the next good
            sample is returned in its place, with its own `index`. Call `validate()` first to
            drop bad samples up front, in the main process, so that nothing is substituted.
        labels_dir: a corrected label tree (export output) read instead of the source's labels,
            at `labels_dir / source.label_relpath(record)`.
        planted: labels with known errors planted (`data.planted`), read in place of the labels
            of their records (a training's; never a scan's).

    Item (dict): image (3, S, S) float32; label (S, S) int64 with 255 = ignore; index int (the
    record's position in `self.records`); id str; and the warp: center (2,) float64 (x, y),
    scale, rotation (degrees), flip (bool), orig_h, orig_w (label frame), size (S).
    """

    def __init__(
        self,
        source: Source,
        split: str,
        size: int = 473,
        augment: bool = False,
        scale_range: tuple[float, float] = (0.75, 1.25),
        rotation: float = 30.0,
        flip: bool = True,
        channel_order: Literal["rgb", "bgr"] = "rgb",
        seed: int = 0,
        on_bad: OnBad = "raise",
        labels_dir: str | Path | None = None,
        planted: Planted | None = None,
    ):
        if channel_order not in ("rgb", "bgr"):
            raise ValueError(f"channel_order must be 'rgb' or 'bgr', got {channel_order!r}")
        self.source = source
        self.split = split
        self.size = int(size)
        self.augment = augment
        self.scale_range = tuple(scale_range)
        self.rotation = float(rotation)
        self.flip = flip
        self.channel_order = channel_order
        self.seed = int(seed)
        self.on_bad = check_on_bad(on_bad)
        self.labels_dir = Path(labels_dir) if labels_dir is not None else None
        self.planted = planted
        self.epoch = 0
        self.records: list[Record] = source.records(split)

    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation stream of `epoch` (call before iterating each epoch)."""
        self.epoch = int(epoch)

    def validate(self, progress: bool = True) -> list[tuple[Path, str]]:
        """Check every sample now and keep only the good ones; return what was dropped.

        Honours `on_bad` ("raise" raises on the first problem). Corrected labels (`labels_dir`)
        are checked too.
        """
        good = []
        start = len(self.source.skipped)
        from tqdm.auto import tqdm

        for rec in tqdm(self.records, desc=f"validate {self.split}", unit="img",
                        disable=None if progress else True, leave=False):
            try:
                self.source.load_pair(rec, self.labels_dir)
            except BadInputError as err:
                self.source.handle_bad(err, self.on_bad)
                continue
            good.append(rec)
        dropped = len(self.records) - len(good)
        if dropped:
            log.warning("%s/%s: dropped %d bad of %d samples", self.source.kind, self.split,
                        dropped, len(self.records))
        self.records = good
        return self.source.skipped[start:]

    def warp_params(self, index: int, src_size: tuple[int, int]) -> WarpParams:
        """The warp of sample `index` in the current epoch (deterministic)."""
        if not self.augment:
            return letterbox_params(src_size, self.size)
        rng = sample_rng(self.seed, self.epoch, index)
        return random_params(rng, src_size, self.size, self.scale_range, self.rotation, self.flip)

    def _load(self, index: int) -> tuple[int, np.ndarray, np.ndarray]:
        n = len(self.records)
        for k in range(n):
            i = (index + k) % n
            try:
                rec = self.records[i]
                planted = None
                if self.planted is not None and rec.id in self.planted:
                    planted = self.planted.label(rec.id)
                image, label = self.source.load_pair(rec, self.labels_dir, planted)
                return i, image, label
            except BadInputError as err:
                self.source.handle_bad(err, self.on_bad)
        raise BadInputError(self.source.root, f"no readable sample in split '{self.split}'")

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self.records):
            raise IndexError(index)
        i, image, label = self._load(index)
        return self._item(i, image, label)

    def _item(self, i: int, image: np.ndarray, label: np.ndarray) -> dict[str, Any]:
        """The network sample of record `i` from its decoded image and label."""
        params = self.warp_params(i, label.shape[:2])
        image_w = warp_image(image, params)
        label_w = warp_label(label, params, self.source.classes)
        return {
            "image": torch.from_numpy(normalize_image(image_w, self.channel_order)),
            "label": torch.from_numpy(label_w.astype(np.int64)),
            "index": i,
            "id": self.records[i].id,
            "center": torch.tensor(params.center, dtype=torch.float64),
            "scale": params.scale,
            "rotation": params.rotation,
            "flip": params.flip,
            "orig_h": params.src_size[0],
            "orig_w": params.src_size[1],
            "size": params.out_size,
        }


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack a list of items: image (B, 3, S, S), label (B, S, S), index (B,) int64,
    center (B, 2) float64, scale / rotation (B,) float64, flip (B,) bool, orig_h / orig_w /
    size (B,) int64; id stays a list of str."""
    return {
        "image": torch.stack([it["image"] for it in items]),
        "label": torch.stack([it["label"] for it in items]),
        "index": torch.tensor([it["index"] for it in items], dtype=torch.int64),
        "id": [it["id"] for it in items],
        "center": torch.stack([it["center"] for it in items]),
        "scale": torch.tensor([it["scale"] for it in items], dtype=torch.float64),
        "rotation": torch.tensor([it["rotation"] for it in items], dtype=torch.float64),
        "flip": torch.tensor([it["flip"] for it in items], dtype=torch.bool),
        "orig_h": torch.tensor([it["orig_h"] for it in items], dtype=torch.int64),
        "orig_w": torch.tensor([it["orig_w"] for it in items], dtype=torch.int64),
        "size": torch.tensor([it["size"] for it in items], dtype=torch.int64),
    }


def params_from_batch(batch: dict[str, Any], i: int | None) -> WarpParams:
    """The WarpParams of item `i` of a collated batch (or of a single item when i is None)."""
    def get(key):
        v = batch[key]
        return v[i] if i is not None else v

    def num(x):
        return x.item() if isinstance(x, torch.Tensor) else x

    center = get("center")
    center = center.tolist() if isinstance(center, torch.Tensor) else list(center)
    return WarpParams(
        center=(float(center[0]), float(center[1])),
        scale=float(num(get("scale"))),
        rotation=float(num(get("rotation"))),
        flip=bool(num(get("flip"))),
        out_size=int(num(get("size"))),
        src_size=(int(num(get("orig_h"))), int(num(get("orig_w")))),
    )
