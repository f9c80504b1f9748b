"""Known errors planted in a few training labels before a training (docs/design.md §4).

A network half-learns the errors of its own training labels: on a training image a real error
gets weaker evidence than the same error would on an image the network never trained on. The
calibrated scorer learns from known errors, so some of them must have been trained on too:
`plant` corrupts copies of the labels of a small share of the training images (the generic
family of `data.corrupt`, 1-3 events each), and the training reads those copies in their place.
After the training, the calibration scores the planted images against their planted labels (the
errors it knows, learnt the way a real one is) next to corrupted copies of the val labels.

    <run_dir>/planted.json             which images, from which labels, with which settings
    <run_dir>/planted/<n>.png          the planted label of image n of that list (index PNG)

The planted errors stay in the run folder only: the dataset's labels are never touched, and a
scan drops its candidates that lie on a planted error (the teacher learnt it; the given label is
right there).
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from labelaudit.data.corrupt import corrupt
from labelaudit.data.errors import BadInputError
from labelaudit.data.io import read_label, write_label
from labelaudit.files import write_bytes_atomic

log = logging.getLogger(__name__)

INDEX = "planted.json"
FOLDER = "planted"


@dataclass(frozen=True)
class Planted:
    """The planted labels of one run: record id -> PNG path (absolute)."""

    paths: dict[str, Path]
    settings: dict

    def __contains__(self, record_id: str) -> bool:
        return record_id in self.paths

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def labels_dir(self) -> str | None:
        """The corrected label tree the planted labels were made from (and the training read)."""
        return self.settings.get("labels")

    def label(self, record_id: str) -> np.ndarray:
        return read_label(self.paths[record_id])

    def changed(self, record_id: str, given: np.ndarray) -> np.ndarray:
        """(H, W) bool: where the planted label differs from `given` (the record's label)."""
        planted = self.label(record_id)
        if planted.shape != given.shape:
            raise ValueError(f"{self.paths[record_id]}: planted label {planted.shape} does not "
                             f"match the label {given.shape} of {record_id}")
        return planted != given


def planted_count(n_images: int, share: float, at_most: int) -> int:
    """How many of n training images get planted errors: share of them, at most `at_most`, and
    none when that leaves fewer than 2 (too few to learn from) or share is 0."""
    k = min(int(round(share * n_images)), at_most, n_images // 2)
    return k if k >= 2 else 0


def plant(run_dir: str | Path, source, records, labels_dir, share: float, at_most: int,
          seed: int) -> Planted | None:
    """Write the planted labels of a run (or reuse those it has: a resumed run keeps them).

    records: the training split's records (their order fixes the choice); labels_dir: the
    corrected label tree the training reads, if any."""
    run_dir = Path(run_dir)
    settings = {"share": share, "at_most": at_most, "seed": seed,
                "labels": str(labels_dir) if labels_dir else None}
    existing = load_planted(run_dir)
    if existing is not None and existing.settings == settings:
        return existing
    if existing is not None:  # other settings: a stale list must not reach the calibration
        (run_dir / INDEX).unlink()
    k = planted_count(len(records), share, at_most)
    if k == 0:
        return None
    rng = np.random.default_rng([seed, 0x91A7])
    chosen = sorted(rng.choice(len(records), size=k, replace=False).tolist())
    images, changed = {}, 0
    for n, i in enumerate(chosen):
        rec = records[i]
        try:
            given = source.load_label(rec, labels_dir)
        except BadInputError as err:  # the training's own checks report it
            log.debug("not planting in %s: %s", rec.id, err)
            continue
        noisy, _ = corrupt(given, rng, source.classes.num_classes, source.classes.flip_pairs)
        rel = f"{FOLDER}/{n}.png"
        write_label(run_dir / rel, noisy)
        images[rec.id] = rel
        changed += int((noisy != given).sum())
    write_bytes_atomic(run_dir / INDEX, (json.dumps({"settings": settings, "images": images},
                                                    indent=1) + "\n").encode())
    log.info("planted known errors in %d of %d training labels (%d pixels), kept in %s",
             len(images), len(records), changed, run_dir / FOLDER)
    return Planted({rid: run_dir / rel for rid, rel in images.items()}, settings)


def load_planted(run_dir: str | Path) -> Planted | None:
    """The planted labels of a run folder, None when it has none. Raises ValueError naming the
    file when the index is unreadable."""
    path = Path(run_dir) / INDEX
    if not path.is_file():
        return None
    try:
        blob = json.loads(path.read_text())
        paths = {rid: Path(run_dir) / rel for rid, rel in blob["images"].items()}
        return Planted(paths, blob["settings"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise ValueError(f"{path}: not a planted-errors index ({err})") from None
