"""The teacher forward of a scan: a dataset that keeps each label in its own frame, and the
networks' probabilities mapped back to it (shared by the scan and its calibration)."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from labelaudit.data import FaceParsingDataset, collate
from labelaudit.data.errors import BadInputError
from labelaudit.scan.teachers import TeacherSet

Predict = Callable[[int, dict[str, Any]], list[np.ndarray]]
"""(teacher index, collated batch) -> per-image (C, H, W) probabilities in the original frame."""


class ScanDataset(FaceParsingDataset):
    """Non-augmented samples that also carry the label in its original frame.

    A sample whose files cannot be read comes back as {"bad": (path, problem)} instead of
    raising, so the scan reports it and goes on.
    """

    def __getitem__(self, index: int) -> dict[str, Any]:
        rec = self.records[index]
        try:
            image, label = self.source.load_pair(rec, self.labels_dir)
        except BadInputError as err:
            return {"bad": (str(err.path), err.problem), "index": index}
        item = self._item(index, image, label)
        item["label_orig"] = label
        return item


def scan_collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """`collate` for the good items; the bad ones are listed under "bad"."""
    good = [it for it in items if "bad" not in it]
    batch = collate(good) if good else {}
    batch["bad"] = [it["bad"] for it in items if "bad" in it]
    batch["label_orig"] = [it["label_orig"] for it in good]
    return batch


def device_named(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def network_predictor(teachers: TeacherSet, classes, device: torch.device, tta: bool) -> Predict:
    """The default Predict: teacher k's softmax in each image's original label frame."""
    from labelaudit.predict import predict_batch_probs

    amp = device.type == "cuda"

    def predict(k: int, batch: dict[str, Any]) -> list[np.ndarray]:
        models = teachers.teachers[k].models
        out = predict_batch_probs(models[0], batch, device, classes, amp=amp, flip_tta=tta)
        for m in models[1:]:  # an ensemble: the running sum, then the mean
            for acc, p in zip(out, predict_batch_probs(m, batch, device, classes, amp=amp, flip_tta=tta)):
                acc += p
        if len(models) > 1:
            for acc in out:
                acc /= len(models)
        return out
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
