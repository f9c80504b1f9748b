"""`Record`: where one sample's files are, nothing loaded."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Record:
    """One image of a dataset and the files its label comes from.

    Attributes:
        id: the sample's stem, unique within the source (LaPa/folder file stem, Helen id,
            CelebAMask-HQ image number as written in `<i>.jpg`).
        split: "train", "val" or "test".
        image_path: the image file.
        label_path: the index PNG (LaPa, folder), the per-image label folder (Helen:
            `labels/<id>/`) or the part-mask folder (CelebAMask-HQ: `CelebAMask-HQ-mask-anno/<k>/`).
        clean_label_path: noise ground truth (an index PNG in the label frame), None if absent.
        label_parts: the files a multi-file label is merged from, in merge-independent order
            (Helen: `_lbl00 .. _lbl10`; CelebAMask-HQ: one candidate per part in CELEBAMASK_PARTS
            order, which may not exist: a missing part file means the part is absent). Empty
            for single-file formats.
    """

    id: str
    split: str
    image_path: Path
    label_path: Path
    clean_label_path: Path | None = None
    label_parts: tuple[Path, ...] = ()

    @property
    def stem(self) -> str:
        return self.id
