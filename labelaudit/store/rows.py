"""Plain records that the scan hands to the store, and the finding fingerprint.

These are what the rest of the tool builds; the ORM rows in ``models.py`` are what the store keeps.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

FINGERPRINT_GRID = 32
"""Grid step (label pixels) on which a finding's bbox centre is quantised for its fingerprint."""


def finding_fingerprint(
    image_id: int, given: int, suggested: int, bbox: tuple[int, int, int, int],
    grid: int = FINGERPRINT_GRID,
) -> str:
    """Stable key for "the same finding" across rescans: image, given->suggested, bbox centre cell.

    A rescan by a slightly different teacher moves a region by a few pixels; the centre is
    quantised on a coarse grid so most such moves keep the key. Regions that move across a cell
    border are matched by mask IoU instead (``repo.carry_decisions``). The migration to schema v2
    backfills old findings with this function: changing it needs a migration that recomputes.
    """
    x, y, w, h = (int(v) for v in bbox)
    cx, cy = (2 * x + w) // 2, (2 * y + h) // 2
    return f"{int(image_id)}:{int(given)}>{int(suggested)}@{cx // grid},{cy // grid}"


@dataclass(frozen=True)
class ImageRow:
    """One image of a dataset as the data layer indexes it (paths relative to the dataset root)."""

    split: str
    image_relpath: str
    label_relpath: str
    label_sha256: str | None = None
    width: int | None = None
    height: int | None = None


@dataclass
class FindingRecord:
    """One suspect region found by the scan.

    Args:
        given: class the annotation gives the region.
        suggested: class the teacher sees there.
        kind: "flip" | "missing" | "spurious" | "boundary".
        score: suspicion in [0, 1]; HIGH = more likely a label error.
        area: region size in label pixels.
        bbox: (x, y, w, h) in label pixels of the original frame.
        mask: bool region mask, either (h, w) cropped to the bbox or (H, W) full frame
            (cropped here). Stored as RLE, never as a dense array.
        mask_path: alternative to ``mask``: a PNG of the region written elsewhere.
        agreement: share of an ensemble teacher's members that see this error (None: one model).
    """

    given: int
    suggested: int
    kind: str
    score: float
    area: int
    bbox: tuple[int, int, int, int]
    mask: np.ndarray | None = None
    mask_path: str | None = None
    agreement: float | None = None


@dataclass
class ImageResult:
    """Scan result for one image.

    Args:
        image_id: ``Image.id`` (from ``repo.upsert_images``).
        label_quality: in [0, 1]; LOW = worst label.
        n_suspect_pixels: pixels flagged as suspect (before grouping into regions).
        findings: the image's suspect regions (n_findings = len(findings)).
        mean_self_confidence: mean over labelled pixels of p[given label], in [0, 1].
        learnt_pixels: pixels an ensemble's newest member took from the given label against
            its older members (scan.memorisation; None: one model).
        maps: the teacher argmax and suspicion maps as PNG bytes (``models.ScanMap``), or None.
    """

    image_id: int
    label_quality: float
    n_suspect_pixels: int
    findings: list[FindingRecord] = field(default_factory=list)
    mean_self_confidence: float | None = None
    learnt_pixels: int | None = None
    maps: tuple[bytes, bytes] | None = None


class ConfusionPair(NamedTuple):
    """How often the scan proposes ``suggested`` where the labels say ``given``."""

    given: int
    suggested: int
    count: int
    pixels: int
