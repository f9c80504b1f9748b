"""A user's own data: `ROOT/images/<stem>.<ext>`, `ROOT/labels/<stem>.png`, `ROOT/classes.txt`.

Labels are 8-bit index PNGs; line i of classes.txt names value i. Left/right pairs for flipping
are inferred from names (`l_eye`/`r_eye`, `left_ear`/`right_ear`). Splits come from
`ROOT/splits/{train,val,test}.txt` (one stem a line) when that folder exists; otherwise a
deterministic 90/10 train/val split by a hash of the stem (no test split).
Noise ground truth: `ROOT/labels_clean/<stem>.png`.
"""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from labelaudit.data.classes import IGNORE_INDEX, ClassSet, infer_flip_pairs
from labelaudit.data.errors import BadInputError
from labelaudit.data.io import IMAGE_EXTENSIONS
from labelaudit.data.records import Record
from labelaudit.data.source import OnBad, Source, list_files, list_images

log = logging.getLogger(__name__)

VAL_PERCENT = 10


def read_classes(path: Path, name: str = "folder") -> ClassSet:
    """ClassSet from a classes.txt (one name a line; trailing blank lines ignored)."""
    if not path.is_file():
        raise BadInputError(path, "classes.txt not found (one class name a line, line i = value i)")
    lines = [ln.strip() for ln in path.read_text().splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    if not lines:
        raise BadInputError(path, "no class names")
    for i, n in enumerate(lines):
        if not n:
            raise BadInputError(path, f"line {i + 1} is empty (would leave value {i} unnamed)")
    dup = sorted({n for n in lines if lines.count(n) > 1})
    if dup:
        raise BadInputError(path, f"duplicate class names: {', '.join(dup)}")
    if len(lines) > IGNORE_INDEX:
        raise BadInputError(path, f"{len(lines)} classes; at most {IGNORE_INDEX} (255 = ignore)")
    return ClassSet(name=name, names=tuple(lines), flip_pairs=infer_flip_pairs(lines))


def hash_split(stem: str) -> str:
    """'val' for about VAL_PERCENT % of stems, else 'train'; stable across runs and machines."""
    h = int.from_bytes(hashlib.sha1(stem.encode("utf-8")).digest()[:8], "big")
    return "val" if h % 100 < VAL_PERCENT else "train"


class FolderSource(Source):
    """images/ + labels/ (index PNGs) + classes.txt."""

    kind = "folder"

    def __init__(self, root: str | Path, on_bad: OnBad = "raise"):
        root = Path(root)
        if not root.is_dir():
            raise BadInputError(root, "dataset root folder not found")
        classes = read_classes(root / "classes.txt", name=root.name or "folder")
        super().__init__(root, classes, on_bad)
        names = classes.names
        log.info("folder dataset %s: %d classes, flip pairs %s", root, classes.num_classes,
                 [(names[a], names[b]) for a, b in classes.flip_pairs] or "none")

    def _split_stems(self, split: str, images: dict[str, Path]) -> list[str]:
        splits_dir = self.root / "splits"
        if splits_dir.is_dir():
            path = splits_dir / f"{split}.txt"
            if not path.is_file():
                raise BadInputError(path, f"split list for '{split}' not found")
            stems = []
            for ln in path.read_text().splitlines():
                ln = ln.strip()
                if not ln or ln.startswith("#"):
                    continue
                p = Path(ln)
                stems.append(p.stem if p.suffix.lower() in IMAGE_EXTENSIONS else ln)
            missing = sorted(set(stems) - set(images))
            for stem in missing:
                self.handle_bad(BadInputError(
                    self.root / "images" / f"{stem}.*",
                    f"no image file for stem listed in {path.relative_to(self.root)}"))
            return sorted(set(stems) - set(missing))
        if split == "test":
            raise BadInputError(
                splits_dir / "test.txt",
                "no split lists (ROOT/splits/{train,val,test}.txt); the default hash split "
                "has train and val only")
        log.info("%s: no ROOT/splits/ folder; using a deterministic %d/%d train/val split by "
                 "SHA-1 of the file stem", self.root, 100 - VAL_PERCENT, VAL_PERCENT)
        return sorted(s for s in images if hash_split(s) == split)

    def _list_records(self, split: str) -> list[Record]:
        images_dir = self.root / "images"
        if not images_dir.is_dir():
            raise BadInputError(images_dir, "image folder not found (folder layout: ROOT/images/)")
        images = list_images(images_dir, self)
        clean = list_files(self.root / "labels_clean", ".png")
        return [
            Record(
                id=stem,
                split=split,
                image_path=images[stem],
                label_path=self.root / "labels" / f"{stem}.png",
                clean_label_path=self.root / "labels_clean" / f"{stem}.png" if stem in clean else None,
            )
            for stem in self._split_stems(split, images)
        ]

    def label_relpath(self, record: Record) -> Path:
        return Path("labels") / f"{record.id}.png"
