"""`Source`: one on-disk dataset behind one interface (records, images, labels, validation).

Format-specific subclasses live in `labelaudit.data.formats`; get one with `open_source`.
Nothing is loaded up front: `records(split)` lists files, the `load_*` methods read one sample.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import numpy as np
from tqdm.auto import tqdm

from labelaudit.data.classes import ClassSet
from labelaudit.data.errors import BadInputError
from labelaudit.data.io import IMAGE_EXTENSIONS, check_label_values, read_image, read_label
from labelaudit.data.records import Record

log = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("train", "val", "test")
OnBad = Literal["raise", "skip"]


def check_on_bad(on_bad: str) -> OnBad:
    if on_bad not in ("raise", "skip"):
        raise ValueError(f"on_bad must be 'raise' or 'skip', got {on_bad!r}")
    return on_bad  # type: ignore[return-value]


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return split


class Source:
    """A face-parsing dataset on disk.

    Attributes:
        kind: the on-disk format ("lapa", "celebamask", "helen", "folder").
        root: the dataset root folder.
        classes: class names (index = label value) and left/right flip pairs.
        merge_order: how multi-part labels are painted (CelebAMask-HQ), else None.
        on_bad: "raise" or "skip": what listing and `validate` do with bad input.
        skipped: every (path, problem) skipped so far under on_bad="skip" (each once).
    """

    kind: str = ""
    merge_order: str | None = None

    def __init__(self, root: str | Path, classes: ClassSet, on_bad: OnBad = "raise"):
        self.root = Path(root)
        self.classes = classes
        self.on_bad = check_on_bad(on_bad)
        self.skipped: list[tuple[Path, str]] = []
        self._skipped_keys: set[tuple[str, str]] = set()
        if not self.root.is_dir():
            raise BadInputError(self.root, "dataset root folder not found")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(root={str(self.root)!r}, classes={self.classes.num_classes})"

    # ---- listing -------------------------------------------------------------------------
    def records(self, split: str) -> list[Record]:
        """The records of `split`, sorted by id (numerically for CelebAMask-HQ)."""
        return self._list_records(check_split(split))

    def _list_records(self, split: str) -> list[Record]:
        raise NotImplementedError

    def records_by_relpath(self) -> dict[str, Record]:
        """Every split's records by image path relative to the root, the key the store keeps."""
        return {str(self.image_relpath(r)): r for sp in SPLITS for r in self.records(sp)}

    # ---- loading -------------------------------------------------------------------------
    def load_image(self, record: Record) -> np.ndarray:
        """(H, W, 3) uint8 RGB image in the label frame."""
        return read_image(record.image_path)

    def load_label(self, record: Record, labels_dir: str | Path | None = None) -> np.ndarray:
        """(H, W) uint8 label map, values checked (< C or 255).

        Args:
            labels_dir: a corrected label tree (as written by export) to read instead of the
                source's own labels: the file `labels_dir / label_relpath(record)`.
        """
        if labels_dir is not None:
            path = Path(labels_dir) / self.label_relpath(record)
            if not path.is_file():
                raise BadInputError(path, "label file not found in the corrected label tree")
            label = read_label(path)
        else:
            path = record.label_path
            label = self._read_native_label(record)
        check_label_values(label, self.classes.num_classes, path)
        return label

    def _read_native_label(self, record: Record) -> np.ndarray:
        if not record.label_path.is_file():
            raise BadInputError(record.label_path, "label file not found")
        return read_label(record.label_path)

    def load_pair(
        self, record: Record, labels_dir: str | Path | None = None,
        label: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Image (H, W, 3) uint8 RGB and label (H, W) uint8 in the same frame, both validated.

        label: a label map already read for this record (a planted copy, `data.planted`); the
        image is checked against it and the record's own label is not read."""
        label = self.load_label(record, labels_dir) if label is None else label
        image = self._image_in_label_frame(record, read_image(record.image_path), label.shape)
        return image, label

    def _image_in_label_frame(
        self, record: Record, image: np.ndarray, label_hw: tuple[int, ...]
    ) -> np.ndarray:
        if image.shape[:2] != tuple(label_hw):
            raise BadInputError(
                record.label_path,
                f"label size {label_hw[1]}x{label_hw[0]} differs from image size "
                f"{image.shape[1]}x{image.shape[0]} ({record.image_path})")
        return image

    def load_clean_label(self, record: Record) -> np.ndarray | None:
        """(H, W) uint8 noise-free label (noise ground truth) or None when the source has none."""
        if record.clean_label_path is None:
            return None
        clean = read_label(record.clean_label_path)
        check_label_values(clean, self.classes.num_classes, record.clean_label_path)
        return clean

    # ---- paths ---------------------------------------------------------------------------
    def label_relpath(self, record: Record) -> Path:
        """Where this record's label lives as ONE index PNG, relative to the root.

        For single-file formats (LaPa, folder) this is the label's own path; for multi-file
        labels (Helen maps, CelebAMask-HQ parts) it is `labels/<id>.png`, the merged form that
        exports write and `labels_dir` trees are read from.
        """
        raise NotImplementedError

    def image_relpath(self, record: Record) -> Path:
        return record.image_path.relative_to(self.root)

    # ---- validation ----------------------------------------------------------------------
    def validate(
        self, split: str, on_bad: OnBad | None = None, progress: bool = True
    ) -> list[Record]:
        """Decode and check every record of `split`; return the good ones.

        Checks image decoding, label presence, format, values and size, and the clean label
        when there is one. With on_bad="raise" (default: the source's) the first problem raises
        BadInputError; with "skip" problems are logged and appended to `self.skipped`.
        """
        on_bad = check_on_bad(on_bad or self.on_bad)
        good = []
        recs = self.records(split)
        for rec in tqdm(recs, desc=f"validate {self.kind}/{split}", unit="img",
                        disable=None if progress else True, leave=False):
            try:
                image, label = self.load_pair(rec)
                clean = self.load_clean_label(rec)
                if clean is not None and clean.shape != label.shape:
                    raise BadInputError(
                        rec.clean_label_path,
                        f"clean label size {clean.shape[1]}x{clean.shape[0]} differs from label "
                        f"size {label.shape[1]}x{label.shape[0]}")
            except BadInputError as err:
                self.handle_bad(err, on_bad)
                continue
            good.append(rec)
        if len(good) < len(recs):
            log.warning("%s/%s: %d of %d records are bad and were skipped",
                        self.kind, split, len(recs) - len(good), len(recs))
        return good

    def preflight(self, split: str, on_bad: OnBad | None = None) -> int:
        """The quick check before training: every image and label file of `split` exists and
        its header parses (Pillow reads headers, nothing is decoded). Returns the number of bad
        records (on_bad="raise": the first one raises BadInputError naming the file)."""
        from PIL import Image, UnidentifiedImageError

        bad = 0
        for rec in self.records(split):
            labels = [p for p in rec.label_parts if p.exists()] if rec.label_parts else [rec.label_path]
            for path in (rec.image_path, *labels):
                try:
                    with Image.open(path) as im:
                        _ = im.size
                except FileNotFoundError:
                    err = BadInputError(path, "file not found")
                except (UnidentifiedImageError, OSError, ValueError) as e:
                    err = BadInputError(path, f"not a readable image ({e})")
                else:
                    continue
                self.handle_bad(err, on_bad)
                bad += 1
                break
        return bad

    def handle_bad(self, err: BadInputError, on_bad: OnBad | None = None) -> None:
        """Raise `err` (on_bad="raise") or log it and record it in `skipped` ("skip")."""
        if check_on_bad(on_bad or self.on_bad) == "raise":
            raise err
        key = (str(err.path), err.problem)
        if key not in self._skipped_keys:
            self._skipped_keys.add(key)
            self.skipped.append((err.path, err.problem))
            log.warning("skipping bad input: %s", err)


def list_images(folder: Path, source: Source) -> dict[str, Path]:
    """{stem: path} of the image files directly in `folder`; duplicate stems are bad input."""
    found: dict[str, Path] = {}
    dups: set[str] = set()
    with_ext = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    for p in with_ext:
        if p.stem in found:
            dups.add(p.stem)
        else:
            found[p.stem] = p
    for stem in sorted(dups):
        source.handle_bad(BadInputError(
            folder / f"{stem}.*", "several image files share this stem; keep one"))
        del found[stem]
    return found


def warn_orphans(folder: Path, suffix: str, images: dict[str, Path]) -> None:
    """Log the label files of `folder` that have no image (they are not used)."""
    orphans = sorted(list_files(folder, suffix) - set(images))
    if orphans:
        log.warning("%s: %d label file(s) without an image, not used (first: %s%s)", folder,
                    len(orphans), orphans[0], suffix)


def list_files(folder: Path, suffix: str) -> set[str]:
    """Stems of the `suffix` files in `folder` (empty set when the folder does not exist)."""
    if not folder.is_dir():
        return set()
    return {p.stem for p in folder.iterdir() if p.suffix.lower() == suffix}
