"""LaPa: `ROOT/{train,val,test}/{images/*.jpg, labels/*.png, landmarks/*.txt}`.

Labels are 8-bit index PNGs with the 11 LaPa classes; landmarks are not used. Noise ground truth,
when a generator or a curator provides it, sits at `ROOT/<split>/labels_clean/<stem>.png`.
The synthetic generator writes this layout too.
"""
from __future__ import annotations

from pathlib import Path

from labelaudit.data.classes import LAPA
from labelaudit.data.errors import BadInputError
from labelaudit.data.records import Record
from labelaudit.data.source import OnBad, Source, list_files, list_images, warn_orphans


class LapaSource(Source):
    """LaPa (and the synthetic set) read from the official layout."""

    kind = "lapa"

    def __init__(self, root: str | Path, on_bad: OnBad = "raise"):
        super().__init__(root, LAPA, on_bad)

    def _list_records(self, split: str) -> list[Record]:
        images_dir = self.root / split / "images"
        if not images_dir.is_dir():
            raise BadInputError(
                images_dir, f"split folder not found (LaPa layout: ROOT/{split}/images/*.jpg)")
        clean = list_files(self.root / split / "labels_clean", ".png")
        images = list_images(images_dir, self)
        warn_orphans(self.root / split / "labels", ".png", images)
        return [
            Record(
                id=stem,
                split=split,
                image_path=path,
                label_path=self.root / split / "labels" / f"{stem}.png",
                clean_label_path=(self.root / split / "labels_clean" / f"{stem}.png"
                                  if stem in clean else None),
            )
            for stem, path in sorted(images.items())
        ]

    def label_relpath(self, record: Record) -> Path:
        return Path(record.split) / "labels" / f"{record.id}.png"
