"""What a scan needs of a teacher: probabilities in each image's label frame, nothing else.

A `Teacher` turns a scan batch into per-image (C, H, W) probabilities over the dataset's classes,
in the frame of the image's given label. Networks (a `labelaudit train` run, a checkpoint file),
a folder of probability maps written by any program, and the mean of several of these
(`EnsembleTeacher`) all look the same to the scan. A `TeacherSet` is what a scan is given: one
teacher for every image, or K-fold teachers with the fold of each training image.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from labelaudit.data.classes import ClassSet
from labelaudit.files import sha256_file


class Teacher(ABC):
    """One judge of the labels.

    Attributes:
        name: how the scan calls it ("csr", "checkpoint", "probs", "ensemble", ...).
        size: the side the batch's network input must have (None: any, the teacher ignores it).
        channel_order: "rgb" or "bgr" input (None: any).
        calibration: per-class confidence sums on the val split, when its training saved them.
    """

    name: str = "teacher"
    may_miss: bool = False  # True when `missing` can name images it has nothing for
    size: int | None = None
    channel_order: str | None = None
    calibration: dict[str, list] | None = None

    @abstractmethod
    def predict(self, batch: dict[str, Any], classes: ClassSet) -> list[np.ndarray]:
        """Per image of the batch, (C, H, W) float32 probabilities in its label frame."""

    def missing(self, key: str) -> str | None:
        """Why this teacher has nothing for the image at relative path `key` (None: it has)."""
        return None

    @abstractmethod
    def files(self) -> list[Path]:
        """The files it was made from (recorded with the scan; they stamp its calibration)."""

    def votes(self) -> list[np.ndarray] | None:
        """Per image of the last `predict` call, its members' argmax, (M, H, W) uint8 in member
        order (an ensemble's; None for one model): the scan's memorisation evidence."""
        return None

    def describe(self) -> dict[str, Any]:
        return {"kind": self.name, "files": [str(Path(f).resolve()) for f in self.files()]}


class EnsembleTeacher(Teacher):
    """The mean of its members' probabilities (a snapshot ensemble, several models' maps)."""

    name = "ensemble"

    def __init__(self, members: list[Teacher], name: str = "ensemble") -> None:
        if not members:
            raise ValueError("an ensemble needs at least one teacher")
        sizes = {m.size for m in members} - {None}
        orders = {m.channel_order for m in members} - {None}
        if len(sizes) > 1 or len(orders) > 1:
            raise ValueError(f"ensemble members need one input size and channel order; got sizes "
                             f"{sorted(sizes)} and orders {sorted(orders)}")
        self.members, self.name = members, name
        self.may_miss = any(m.may_miss for m in members)
        self.size = sizes.pop() if sizes else None
        self.channel_order = orders.pop() if orders else None
        self.calibration = members[0].calibration if len(members) == 1 else None

    def predict(self, batch: dict[str, Any], classes: ClassSet) -> list[np.ndarray]:
        first = self.members[0].predict(batch, classes)
        out = [p.astype(np.float32, copy=True) for p in first]
        votes = [np.empty((len(self.members), *p.shape[1:]), np.uint8) for p in first]
        for k, m in enumerate(self.members):
            probs = first if k == 0 else m.predict(batch, classes)
            for i, p in enumerate(probs):
                votes[i][k] = p.argmax(0)
                if k:
                    out[i] += p
        for acc in out:
            acc /= len(self.members)
        self._votes = votes
        return out

    def votes(self) -> list[np.ndarray] | None:
        return getattr(self, "_votes", None)

    def missing(self, key: str) -> str | None:
        return next((p for m in self.members if (p := m.missing(key))), None)

    def files(self) -> list[Path]:
        return [f for m in self.members for f in m.files()]

    def describe(self) -> dict[str, Any]:
        return {"kind": self.name, "members": [m.describe() for m in self.members]}


def ensemble(members: list[Teacher], name: str = "ensemble") -> Teacher:
    """One teacher for the list: itself when alone, else their mean."""
    return members[0] if len(members) == 1 else EnsembleTeacher(members, name)


@dataclass
class TeacherSet:
    """The teacher(s) of a scan: one, or one per fold with the fold of every training image id.

    `data` is the run's data settings (an object with `open_source()`, `root`, `size`), None when
    the teachers came from files: the scan is then told the dataset. `seed` is the run's seed.
    """

    name: str
    teachers: list[Teacher]
    fold_of_id: dict[str, int] = field(default_factory=dict)
    data: Any = None
    seed: int = 0

    def for_record(self, record_id: str) -> int:
        """Index of the teacher that scores this record (its out-of-sample fold, else 0)."""
        return self.fold_of_id.get(record_id, 0) if len(self.teachers) > 1 else 0

    @property
    def size(self) -> int:
        """The network input side the scan's batches are made at (the data's when no teacher
        needs one)."""
        sizes = {t.size for t in self.teachers} - {None}
        if len(sizes) > 1:
            raise ValueError(f"teachers of one scan need one input size; got {sorted(sizes)}")
        return sizes.pop() if sizes else (self.data.size if self.data is not None else 128)

    @property
    def channel_order(self) -> str:
        orders = {t.channel_order for t in self.teachers} - {None}
        return orders.pop() if orders else "rgb"

    @property
    def may_miss(self) -> bool:
        return any(t.may_miss for t in self.teachers)

    def missing(self, key: str) -> str | None:
        return next((p for t in self.teachers if (p := t.missing(key))), None)

    def describe(self) -> dict[str, Any]:
        """JSON-able description kept in the scan run's config: kind, files, their sha256."""
        files = [Path(f) for t in self.teachers for f in t.files()]
        return {"teacher": self.name, "checkpoints": [str(f) for f in files],
                "teachers": [t.describe() for t in self.teachers],
                "sha256": {str(f): sha256_file(f) for f in files if f.is_file()}}
