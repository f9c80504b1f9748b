"""Write generated samples in the on-disk layouts of LaPa, CelebAMask-HQ and Helen.

Each writer reproduces the real dataset's layout (docs/design.md §3) so the real loaders read the output,
plus the noise ground truth: clean labels (`labels_clean`) and, written by `generate`, the per-pixel
noise-type maps and `noise.jsonl`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from labelaudit.data.classes import CELEBAMASK, CELEBAMASK_PARTS, HELEN, LAPA, ClassSet
from labelaudit.data.source import SPLITS  # re-exported for the generator

JPEG_QUALITY = 95


@dataclass
class Sample:
    """One generated image with its given (possibly noisy) and clean labels.

    image: (kH, kW, 3) uint8 RGB; label, clean: (H, W) uint8 class ids; landmarks: (106, 2) float
    image pixels; glasses: (H, W) bool full eyeglasses shape (19 classes) or None.
    """

    index: int
    split: str
    stem: str
    image: np.ndarray
    label: np.ndarray
    clean: np.ndarray
    landmarks: np.ndarray
    glasses: np.ndarray | None = None


def imwrite(path: Path, array: np.ndarray, params: list[int] | None = None) -> None:
    """cv2.imwrite that creates the folder and raises on failure."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), array, params or []):
        raise OSError(f"could not write {path}")


def write_jpeg_rgb(path: Path, rgb: np.ndarray) -> None:
    imwrite(path, np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])


def write_index_png(path: Path, label: np.ndarray) -> None:
    """8-bit single-channel PNG of class ids."""
    assert label.dtype == np.uint8 and label.ndim == 2
    imwrite(path, label)


class Writer:
    """Base: one sample at a time (`write`), index files at the end (`finish`)."""

    format: str = ""
    class_set: ClassSet = LAPA
    image_scale: int = 1                 # image pixels per label pixel

    def __init__(self, root: Path):
        self.root = Path(root)
        self.split_of: dict[int, str] = {}

    def stem(self, index: int) -> str:
        return f"synth_{index:05d}"

    def clean_path(self, sample: Sample) -> Path:
        return self.root / "labels_clean" / f"{sample.stem}.png"

    def write(self, sample: Sample) -> None:
        self.split_of[sample.index] = sample.split
        write_index_png(self.clean_path(sample), sample.clean)
        self._write(sample)

    def _write(self, sample: Sample) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        """Write the split lists (called once after the last sample)."""


class LapaWriter(Writer):
    """`<split>/{images/*.jpg, labels/*.png, labels_clean/*.png, landmarks/*.txt}`.

    Landmarks: "106" then 106 lines "x y" in image pixels (approximate points from the drawing).
    """

    format = "lapa"
    class_set = LAPA

    def clean_path(self, sample: Sample) -> Path:
        return self.root / sample.split / "labels_clean" / f"{sample.stem}.png"

    def _write(self, s: Sample) -> None:
        base = self.root / s.split
        write_jpeg_rgb(base / "images" / f"{s.stem}.jpg", s.image)
        write_index_png(base / "labels" / f"{s.stem}.png", s.label)
        lines = ["106"] + [f"{x:.2f} {y:.2f}" for x, y in s.landmarks]
        path = base / "landmarks" / f"{s.stem}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n")


class HelenWriter(Writer):
    """`images/<id>.jpg`, `labels/<id>/<id>_lbl00..10.png` (255 = class), split lists."""

    format = "helen"
    class_set = HELEN
    _lists = {"train": "exemplars.txt", "val": "tuning.txt", "test": "testing.txt"}

    def _write(self, s: Sample) -> None:
        write_jpeg_rgb(self.root / "images" / f"{s.stem}.jpg", s.image)
        for c in range(self.class_set.num_classes):   # exactly one map is 255 at each pixel
            mask = np.where(s.label == c, 255, 0).astype(np.uint8)
            imwrite(self.root / "labels" / s.stem / f"{s.stem}_lbl{c:02d}.png", mask)

    def finish(self) -> None:
        for split, name in self._lists.items():
            stems = [self.stem(i) for i in sorted(self.split_of) if self.split_of[i] == split]
            (self.root / name).write_text("".join(f"{k} , {st}\n" for k, st in enumerate(stems, 1)))


def celebamask_orig_index(split: str, rank: int) -> int:
    """A made-up 0-based CelebA index inside the real partition's range for `split`."""
    return {"train": 3 + 7 * rank, "val": 162770 + 5 * rank, "test": 182637 + 5 * rank}[split]


class CelebaMaskWriter(Writer):
    """`CelebA-HQ-img/<i>.jpg` (2x), `CelebAMask-HQ-mask-anno/<i//2000>/<i:05d>_<part>.png`,
    `CelebA-HQ-to-CelebA-mapping.txt`, `list_eval_partition.txt`.

    Part masks are disjoint (each = pixels whose label is that part) except eyeglasses, whose mask
    is the full frame + lens shape wherever a later part (eyes, brows, hair, ...) covers it, so
    merging in the official order (later overwrites earlier) gives back the label exactly.
    """

    format = "celebamask"
    class_set = CELEBAMASK
    image_scale = 2

    def stem(self, index: int) -> str:
        return str(index)

    def _write(self, s: Sample) -> None:
        write_jpeg_rgb(self.root / "CelebA-HQ-img" / f"{s.index}.jpg", s.image)
        folder = self.root / "CelebAMask-HQ-mask-anno" / str(s.index // 2000)
        eye_g = self.class_set.index("eye_g")
        for pid, part in enumerate(CELEBAMASK_PARTS, 1):
            mask = s.label == pid
            if pid == eye_g and mask.any() and s.glasses is not None:
                mask = mask | (s.glasses & (s.label > eye_g))
            if mask.any():
                imwrite(folder / f"{s.index:05d}_{part}.png",
                        np.where(mask, 255, 0).astype(np.uint8))

    def finish(self) -> None:
        rank = {sp: 0 for sp in SPLITS}
        mapping, partition = ["idx orig_idx orig_file"], []
        for i in sorted(self.split_of):
            split = self.split_of[i]
            j = celebamask_orig_index(split, rank[split])
            rank[split] += 1
            mapping.append(f"{i} {j} {j + 1:06d}.jpg")
            partition.append((j, f"{j + 1:06d}.jpg {SPLITS.index(split)}"))
        (self.root / "CelebA-HQ-to-CelebA-mapping.txt").write_text("\n".join(mapping) + "\n")
        (self.root / "list_eval_partition.txt").write_text(
            "".join(line + "\n" for _, line in sorted(partition)))


WRITERS: dict[str, type[Writer]] = {
    w.format: w for w in (LapaWriter, CelebaMaskWriter, HelenWriter)}

