"""Where a scan run keeps its per-image maps: the one place that knows the folder layout.

    <run_dir>/scans/<scan run id>/teacher/<image id>.png     teacher argmax (uint8 class ids)
    <run_dir>/scans/<scan run id>/suspicion/<image id>.png   1 - self-confidence, 0..255
    <run_dir>/scans/<scan run id>/given/<image id>.png       the given label as one index PNG
                                                             (written by the review)
    <run_dir>/scans/<scan run id>/relabel/<image id>.png     the image at its label's size, for
                                                             Label Studio (written by relabel)

`run_dir` is the training run the scan used; the scan stores it (absolute) in its config.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ScanMaps:
    root: Path

    @classmethod
    def at(cls, run_dir: str | Path, scan_run_id: int) -> ScanMaps:
        return cls(Path(run_dir) / "scans" / str(scan_run_id))

    @classmethod
    def of(cls, run: Any) -> ScanMaps:
        """The maps of a scan run's DB row (its config's run_dir)."""
        return cls.at(run.config.get("run_dir", "."), run.id)

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
