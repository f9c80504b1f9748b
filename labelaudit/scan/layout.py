"""Where a scan run keeps its per-image maps: the one place that knows the folder layout.

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

    def create(self) -> ScanMaps:
        for sub in ("teacher", "suspicion"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        return self
