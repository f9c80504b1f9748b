"""Where a scan run's per-image maps are: the one place that knows their layout.

The scan stores each image's teacher argmax and suspicion map as PNG bytes in the store
(`store.models.ScanMap`, since schema v7); files are made from them where a reader needs files
(the FiftyOne review). Scans stored before v7 wrote the two maps as files here:

    <run_dir>/<maps>/teacher/<image id>.png     teacher argmax (uint8 class ids)
    <run_dir>/<maps>/suspicion/<image id>.png   1 - self-confidence, 0..255
    <run_dir>/<maps>/given/<image id>.png       the given label as one index PNG (the review's)
    <run_dir>/<maps>/relabel/<image id>.png     the image at its label's size, for Label Studio
                                                (written by relabel)

`run_dir` is the training run the scan used; the scan stores it (absolute) in its config, and
`<maps>` = scans/<scan run id>-<random tag> under the key MAPS_KEY. The tag keeps apart the
scans of several stores on one run folder (a SQLite file and a PostgreSQL server both number
their runs from 1). Scans stored before the tag existed have scans/<scan run id>.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from labelaudit.files import write_bytes_atomic
from labelaudit.store.rle import decode_label_png, encode_label_png

MAPS_KEY = "maps_folder"


@dataclass(frozen=True)
class ScanMaps:
    root: Path

    @staticmethod
    def new_folder(scan_run_id: int) -> str:
        """The maps folder (relative to the run folder) of a new scan run."""
        return f"scans/{scan_run_id}-{secrets.token_hex(4)}"

    @classmethod
    def of(cls, run: Any) -> ScanMaps:
        """The maps of a scan run's DB row (its config's run_dir and MAPS_KEY)."""
        folder = run.config.get(MAPS_KEY) or f"scans/{run.id}"
        return cls(Path(run.config.get("run_dir", ".")) / folder)

    def teacher(self, image_id: int) -> Path:
        return self.root / "teacher" / f"{image_id}.png"

    def suspicion(self, image_id: int) -> Path:
        return self.root / "suspicion" / f"{image_id}.png"

    def given(self, image_id: int) -> Path:
        return self.root / "given" / f"{image_id}.png"

    def relabel_image(self, image_id: int) -> Path:
        return self.root / "relabel" / f"{image_id}.png"

    def read(self, image_id: int, stored: tuple[bytes, bytes] | None
             ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """The (teacher, suspicion) maps of an image from its `stored` PNGs (`repo.scan_map_pngs`),
        else from the files of a scan made before v7; None for a map that is in neither."""
        if stored is not None:
            return decode_label_png(stored[0]), decode_label_png(stored[1])
        return _read_png(self.teacher(image_id)), _read_png(self.suspicion(image_id))

    def files(self, image_id: int, stored: tuple[bytes, bytes] | None) -> tuple[Path, Path]:
        """The (teacher, suspicion) maps of an image as files: its `stored` PNGs written here
        once (a cache the store can make again: not flushed to the disk one by one; an empty
        file left by a crash is written again), or the files a scan made before v7 wrote."""
        paths = self.teacher(image_id), self.suspicion(image_id)
        if stored is not None:
            for path, data in zip(paths, stored):
                if not path.exists() or path.stat().st_size == 0:
                    write_bytes_atomic(path, data, durable=False)
        return paths


def encode_maps(teacher: np.ndarray, suspicion: np.ndarray) -> tuple[bytes, bytes]:
    """The two (H, W) uint8 maps of an image as the PNG bytes the store keeps (`ScanMaps.read`)."""
    return encode_label_png(teacher), encode_label_png(suspicion)


def _read_png(path: Path) -> np.ndarray | None:
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED) if path.exists() else None
