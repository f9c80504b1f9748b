"""The teacher forward of a scan: a dataset that keeps each label in its own frame, and the
networks' probabilities mapped back to it (shared by the scan and its calibration)."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from labelaudit.data import FaceParsingDataset, collate
from labelaudit.data.errors import BadInputError
from labelaudit.scan.candidates import edge_strength
from labelaudit.teachers import TeacherSet

Predict = Callable[[int, dict[str, Any]], list[np.ndarray]]
"""(teacher index, collated batch) -> per-image (C, H, W) probabilities in the original frame."""


class ScanDataset(FaceParsingDataset):
    """Non-augmented samples that also carry the label in its original frame, and the image's
    edge strength in that frame ("edges", `candidates.edge_strength`).

    A sample whose files cannot be read, or for which `missing` (the teachers') says there is
    nothing to judge it with, comes back as {"bad": (path, problem)} instead of raising, so the
    scan reports it and goes on. "key" is the image's path relative to the dataset root.
    """

    missing: Callable[[str], str | None] | None = None

    @classmethod
    def for_teachers(cls, source, split: str, teachers: TeacherSet, limit: int | None = None,
                     labels_dir=None) -> ScanDataset:
        """The split prepared as the teachers need it (input size, channel order), its images
        the teachers have nothing for reported as bad, the first `limit` images only."""
        ds = cls(source, split, size=teachers.size, augment=False,
                 channel_order=teachers.channel_order, on_bad="raise", labels_dir=labels_dir)
        if teachers.may_miss:
            ds.missing = teachers.missing
        if limit is not None:
            ds.records = ds.records[:limit]
        return ds

    def __getitem__(self, index: int) -> dict[str, Any]:
        rec = self.records[index]
        key = str(self.source.image_relpath(rec))
        problem = self.missing(key) if self.missing is not None else None
        if problem:
            return {"bad": (str(rec.image_path), problem), "index": index}
        try:
            image, label = self.source.load_pair(rec, self.labels_dir)
        except BadInputError as err:
            return {"bad": (str(err.path), err.problem), "index": index}
        item = self._item(index, image, label)
        item["label_orig"] = label
        item["edges"] = edge_strength(image)
        item["key"] = key
        return item


def scan_collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """`collate` for the good items; the bad ones are listed under "bad"."""
    good = [it for it in items if "bad" not in it]
    batch = collate(good) if good else {}
    batch["bad"] = [it["bad"] for it in items if "bad" in it]
    batch["label_orig"] = [it["label_orig"] for it in good]
    batch["edges"] = [it["edges"] for it in good]
    batch["key"] = [it["key"] for it in good]
    return batch


def device_named(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def teacher_predictor(teachers: TeacherSet, classes) -> Predict:
    """The default Predict: teacher k's probabilities in each image's original label frame."""

    def predict(k: int, batch: dict[str, Any]) -> list[np.ndarray]:
        return teachers.teachers[k].predict(batch, classes)
    return predict


def forward(teachers: TeacherSet, batch: dict[str, Any], records, predict: Predict
            ) -> list[np.ndarray]:
    """Probabilities per image of the batch, each from the teacher that scores its record."""
    which = [teachers.for_record(records[i].id) for i in batch["index"].tolist()]
    if len(set(which)) == 1:
        return predict(which[0], batch)
    out: list[np.ndarray | None] = [None] * len(which)
    for t in sorted(set(which)):
        rows = [k for k, w in enumerate(which) if w == t]
        sub = {key: (v[rows] if isinstance(v, torch.Tensor) else [v[k] for k in rows])
               for key, v in batch.items() if key != "bad"}
        for k, p in zip(rows, predict(t, sub)):
            out[k] = p
    return out  # type: ignore[return-value]
