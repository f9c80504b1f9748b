"""CelebAMask-HQ read from the official release layout.

    ROOT/CelebA-HQ-img/<i>.jpg                                  1024x1024 images
    ROOT/CelebAMask-HQ-mask-anno/<i // 2000>/<i:05d>_<part>.png  512x512 part masks
    ROOT/CelebA-HQ-to-CelebA-mapping.txt                        idx orig_idx orig_file
    ROOT/list_eval_partition.txt  (optional, from CelebA)       000001.jpg 0|1|2

Labels: the 18 part masks (white on black; a missing file = part absent) are painted into one
index map, later parts overwriting earlier ones. "official" paints in CELEBAMASK_PARTS order,
so eyes and brows overwrite eyeglasses; "glasses_on_top" paints eyeglasses after the eyes and
brows, as some other pipelines do. Class ids are the same either way (part i -> id i + 1); only
what wins where glasses overlap an eye changes. Merged maps are cached as index PNGs.

Frames: labels stay at mask resolution (512x512) and the image is resized to it with INTER_AREA,
so every pixel of a label, a prediction mapped back and a finding refers to the same 512x512
frame. Noise ground truth (`ROOT/labels_clean/<i>.png`) is in that frame too.

Splits: with `list_eval_partition.txt` (in ROOT or passed as `partition_file`), each image gets
its CelebA split through the mapping file's orig_file (train 24,183 / val 2,993 / test 2,824 on
the full set). Without it, a deterministic split by image number: the last 10 % of the present
images are test, the 10 % before them val, the rest train (logged).
"""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from labelaudit.data.classes import CELEBAMASK, CELEBAMASK_PARTS
from labelaudit.data.errors import BadInputError
from labelaudit.data.io import IMAGE_EXTENSIONS, read_image, read_label, read_part_mask, write_label
from labelaudit.data.records import Record
from labelaudit.data.source import OnBad, Source, list_files
from labelaudit.files import user_cache_dir

log = logging.getLogger(__name__)

IMAGE_DIR = "CelebA-HQ-img"
ANNO_DIR = "CelebAMask-HQ-mask-anno"
MAPPING_FILE = "CelebA-HQ-to-CelebA-mapping.txt"
PARTITION_FILE = "list_eval_partition.txt"
IMAGES_PER_FOLDER = 2000
PARTITION_CODES = {"0": "train", "1": "val", "2": "test"}

MergeOrder = Literal["official", "glasses_on_top"]


def merge_sequence(order: str) -> tuple[str, ...]:
    """Part names in painting order (later overwrite earlier) for a merge order."""
    if order == "official":
        return CELEBAMASK_PARTS
    if order == "glasses_on_top":
        rest = [p for p in CELEBAMASK_PARTS if p != "eye_g"]
        after = rest.index("r_brow") + 1  # glasses over eyes and brows, under ears/hair/hat
        return tuple(rest[:after] + ["eye_g"] + rest[after:])
    raise ValueError(f"merge_order must be 'official' or 'glasses_on_top', got {order!r}")


def _default_cache(root: Path) -> Path:
    key = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]
    return user_cache_dir() / "celebamask" / f"{root.resolve().name}-{key}"


def _int_stem(name: str) -> int | None:
    stem = Path(name).stem
    return int(stem) if stem.isdigit() else None


class CelebAMaskSource(Source):
    """CelebAMask-HQ: 19 classes, labels merged from per-part masks (see module docstring).

    Args:
        merge_order: "official" (eyes over eyeglasses) or "glasses_on_top".
        cache_dir: where merged maps are cached, as `<cache_dir>/merged-<order>/<i>.png`;
            default `labelaudit.files.user_cache_dir()/celebamask/<hash of ROOT>` (a dataset root
            may be read-only or shared: it is never written). A cached map is rebuilt when any part file or the
            part folder is newer than it. If the folder cannot be written the cache is off.
        cache: False to merge on every load.
        partition_file: CelebA's list_eval_partition.txt; default ROOT/list_eval_partition.txt
            when it exists.
    """

    kind = "celebamask"

    def __init__(
        self,
        root: str | Path,
        merge_order: MergeOrder = "official",
        cache_dir: str | Path | None = None,
        cache: bool = True,
        partition_file: str | Path | None = None,
        on_bad: OnBad = "raise",
    ):
        super().__init__(root, CELEBAMASK, on_bad)
        self.merge_order = merge_order
        self._paint = [(CELEBAMASK_PARTS.index(p), p) for p in merge_sequence(merge_order)]
        base = Path(cache_dir) if cache_dir is not None else _default_cache(self.root)
        self.cache_dir: Path | None = base / f"merged-{merge_order}" if cache else None
        if partition_file is not None:
            self.partition_file: Path | None = Path(partition_file)
            if not self.partition_file.is_file():
                raise BadInputError(self.partition_file, "CelebA partition file not found")
        else:
            default = self.root / PARTITION_FILE
            self.partition_file = default if default.is_file() else None
        self._splits: dict[int, str] | None = None
        log.info("CelebAMask-HQ %s: merge order %s (%s)", self.root, merge_order,
                 "eyes/brows painted over eyeglasses" if merge_order == "official"
                 else "eyeglasses painted over eyes/brows")

    # ---- splits --------------------------------------------------------------------------
    def _image_files(self) -> dict[int, Path]:
        img_dir = self.root / IMAGE_DIR
        if not img_dir.is_dir():
            raise BadInputError(img_dir, "CelebAMask-HQ image folder not found")
        anno = self.root / ANNO_DIR
        if not anno.is_dir():
            raise BadInputError(anno, "CelebAMask-HQ mask folder not found")
        found: dict[int, Path] = {}
        for p in sorted(img_dir.iterdir()):
            if p.suffix.lower() not in IMAGE_EXTENSIONS:
                continue
            idx = _int_stem(p.name)
            if idx is None or idx in found:
                self.handle_bad(BadInputError(
                    p, "not named <i>.jpg with a unique integer i" if idx is None
                    else f"image number {idx} appears twice"))
                continue
            found[idx] = p
        return found

    def _read_mapping(self) -> dict[int, int]:
        """CelebA-HQ idx -> original CelebA image number (from orig_file)."""
        path = self.root / MAPPING_FILE
        if not path.is_file():
            raise BadInputError(path, "mapping file not found (needed to use the CelebA partition)")
        mapping = {}
        for n, line in enumerate(path.read_text().splitlines(), 1):
            parts = line.split()
            if not parts or not parts[0].isdigit():
                continue  # header line `idx orig_idx orig_file`
            orig = _int_stem(parts[2]) if len(parts) >= 3 else None
            if orig is None:
                raise BadInputError(path, f"line {n} is not `idx orig_idx orig_file`: {line!r}")
            mapping[int(parts[0])] = orig
        return mapping

    def _read_partition(self, path: Path) -> dict[int, str]:
        part = {}
        for n, line in enumerate(path.read_text().splitlines(), 1):
            fields = line.split()
            if not fields:
                continue
            orig = _int_stem(fields[0])
            if len(fields) != 2 or orig is None or fields[1] not in PARTITION_CODES:
                raise BadInputError(path, f"line {n} is not `000001.jpg 0|1|2`: {line!r}")
            part[orig] = PARTITION_CODES[fields[1]]
        return part

    def _assign_splits(self, images: dict[int, Path]) -> dict[int, str]:
        if self.partition_file is not None:
            mapping = self._read_mapping()
            partition = self._read_partition(self.partition_file)
            splits = {}
            for idx in sorted(images):
                if idx not in mapping:
                    self.handle_bad(BadInputError(
                        images[idx], f"image number {idx} is not in {MAPPING_FILE}"))
                elif mapping[idx] not in partition:
                    self.handle_bad(BadInputError(
                        images[idx], f"its CelebA image {mapping[idx]:06d}.jpg is not in "
                                     f"{self.partition_file}"))
                else:
                    splits[idx] = partition[mapping[idx]]
            log.info("CelebAMask-HQ splits from %s via %s", self.partition_file, MAPPING_FILE)
            return splits
        order = sorted(images)
        n = len(order)
        n_test = n_val = n // 10
        splits = {idx: "train" for idx in order[: n - n_test - n_val]}
        splits.update({idx: "val" for idx in order[n - n_test - n_val: n - n_test]})
        splits.update({idx: "test" for idx in order[n - n_test:]})
        log.info("CelebAMask-HQ: no %s given; deterministic split by image number: %d train, "
                 "%d val (next 10%%), %d test (last 10%%)", PARTITION_FILE, n - 2 * n_test,
                 n_val, n_test)
        return splits

    def _list_records(self, split: str) -> list[Record]:
        images = self._image_files()
        if self._splits is None:
            self._splits = self._assign_splits(images)
        clean = list_files(self.root / "labels_clean", ".png")
        anno = self.root / ANNO_DIR
        records = []
        for idx in sorted(images):
            if self._splits.get(idx) != split:
                continue
            folder = anno / str(idx // IMAGES_PER_FOLDER)
            id_ = str(idx)
            records.append(Record(
                id=id_,
                split=split,
                image_path=images[idx],
                label_path=folder,
                clean_label_path=self.root / "labels_clean" / f"{id_}.png" if id_ in clean else None,
                label_parts=tuple(folder / f"{idx:05d}_{p}.png" for p in CELEBAMASK_PARTS),
            ))
        return records

    # ---- labels --------------------------------------------------------------------------
    def _read_native_label(self, record: Record) -> np.ndarray:
        present = []
        newest = 0
        for pid, path in enumerate(record.label_parts):
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            present.append(pid)
            newest = max(newest, st.st_mtime_ns)
        if not present:
            raise BadInputError(
                record.label_path / f"{int(record.id):05d}_*.png",
                "label file not found: no part mask exists for this image")
        cached = self.cache_dir / f"{record.id}.png" if self.cache_dir is not None else None
        if cached is not None:
            try:
                # Adding or deleting a part file changes the folder's mtime, not the files'.
                newest = max(newest, record.label_path.stat().st_mtime_ns)
                if cached.stat().st_mtime_ns >= newest:
                    return read_label(cached)
            except FileNotFoundError:
                pass
            except BadInputError as err:  # a damaged cache file is rebuilt, not reported
                log.warning("rebuilding damaged cache file: %s", err)
        label = self._merge(record, set(present))
        if cached is not None:
            try:
                write_label(cached, label)
            except OSError as e:
                log.warning("cannot write the merged-label cache under %s (%s); caching is off",
                            self.cache_dir, e)
                self.cache_dir = None
        return label

    def _merge(self, record: Record, present: set[int]) -> np.ndarray:
        label: np.ndarray | None = None
        first = None
        for pid, _name in self._paint:
            if pid not in present:
                continue
            path = record.label_parts[pid]
            mask = read_part_mask(path)
            if label is None:
                label = np.zeros(mask.shape, np.uint8)
                first = path
            elif mask.shape != label.shape:
                raise BadInputError(
                    path, f"part mask size {mask.shape[1]}x{mask.shape[0]} differs from "
                          f"{first.name} ({label.shape[1]}x{label.shape[0]})")
            label[mask] = pid + 1
        assert label is not None
        return label

    # ---- images --------------------------------------------------------------------------
    def load_image(self, record: Record) -> np.ndarray:
        """(h, w, 3) uint8 RGB image resized (INTER_AREA) to the label (mask) frame."""
        label = self.load_label(record)
        return self._image_in_label_frame(record, read_image(record.image_path), label.shape)

    def _image_in_label_frame(
        self, record: Record, image: np.ndarray, label_hw: tuple[int, ...]
    ) -> np.ndarray:
        h, w = image.shape[:2]
        lh, lw = label_hw[:2]
        if (h, w) == (lh, lw):
            return image
        if h * lw != w * lh:
            raise BadInputError(
                record.image_path,
                f"image size {w}x{h} has another aspect ratio than its label {lw}x{lh}; "
                "cannot resize it to the label frame")
        return cv2.resize(image, (lw, lh), interpolation=cv2.INTER_AREA)

    def label_relpath(self, record: Record) -> Path:
        return Path("labels") / f"{record.id}.png"
