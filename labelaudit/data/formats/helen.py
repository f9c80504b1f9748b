"""Helen, the `SmithCVPR2013_dataset_resized` variant.

Layout: `ROOT/images/<id>.jpg`, `ROOT/labels/<id>/<id>_lbl00.png .. <id>_lbl10.png` (one greyscale
map per class, same order as LaPa's 11 classes), split lists `exemplars.txt` (train),
`tuning.txt` (val), `testing.txt` (test) with lines like `1 , 100032540_1`.
The label is the per-pixel argmax over the 11 maps (ties go to the lower class id).
Noise ground truth: `ROOT/labels_clean/<id>.png`.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from labelaudit.data.classes import HELEN
from labelaudit.data.errors import BadInputError
from labelaudit.data.io import read_gray
from labelaudit.data.records import Record
from labelaudit.data.source import OnBad, Source, list_files

log = logging.getLogger(__name__)

SPLIT_FILES = {"train": "exemplars.txt", "val": "tuning.txt", "test": "testing.txt"}
NUM_MAPS = 11


def parse_split_list(path: Path) -> list[str]:
    """Ids from a Helen split list: `index , id` per line (spacing varies); a bare id is fine."""
    ids = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        token = line.rsplit(",", 1)[-1].strip() if "," in line else line.split()[-1]
        if not token:
            raise BadInputError(path, f"line {n} has no image id: {line!r}")
        ids.append(token)
    return ids


class HelenSource(Source):
    """Helen (SmithCVPR2013 resized): 11 per-class maps merged by argmax."""

    kind = "helen"

    def __init__(self, root: str | Path, on_bad: OnBad = "raise"):
        super().__init__(root, HELEN, on_bad)

    def _list_records(self, split: str) -> list[Record]:
        list_path = self.root / SPLIT_FILES[split]
        if not list_path.is_file():
            raise BadInputError(list_path, f"Helen split list for '{split}' not found")
        ids = parse_split_list(list_path)
        unique = sorted(set(ids))
        if len(unique) < len(ids):
            log.warning("%s lists %d ids more than once; each is used once",
                        list_path, len(ids) - len(unique))
        clean = list_files(self.root / "labels_clean", ".png")
        records = []
        for id_ in unique:
            label_dir = self.root / "labels" / id_
            records.append(Record(
                id=id_,
                split=split,
                image_path=self.root / "images" / f"{id_}.jpg",
                label_path=label_dir,
                clean_label_path=self.root / "labels_clean" / f"{id_}.png" if id_ in clean else None,
                label_parts=tuple(label_dir / f"{id_}_lbl{k:02d}.png" for k in range(NUM_MAPS)),
            ))
        return records

    def _read_native_label(self, record: Record) -> np.ndarray:
        maps = []
        for path in record.label_parts:
            if not path.is_file():
                raise BadInputError(path, "label file not found (Helen needs all 11 _lblNN maps)")
            m = read_gray(path)
            if maps and m.shape != maps[0].shape:
                raise BadInputError(
                    path, f"size {m.shape[1]}x{m.shape[0]} differs from "
                          f"{record.label_parts[0].name} ({maps[0].shape[1]}x{maps[0].shape[0]})")
            maps.append(m)
        return np.argmax(np.stack(maps), axis=0).astype(np.uint8)

    def label_relpath(self, record: Record) -> Path:
        return Path("labels") / f"{record.id}.png"
