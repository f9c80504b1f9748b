"""What a finished scan says about the dataset, and its CSV exports (read from the store)."""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from sqlalchemy import func, select

from labelaudit.files import atomic_file
from labelaudit.scan.progress import totals
from labelaudit.store import Finding, Image, ImageScore, Run, Store, repo


@dataclass
class PairRow:
    given: str
    suggested: str
    findings: int
    pixels: int


@dataclass
class WorstImage:
    image_id: int
    image: str
    label_quality: float
    n_findings: int


@dataclass
class ScanSummary:
    """Dataset-level view of a scan run: worst images, confused pairs, noise per class."""

    run_id: int
    n_images: int
    n_findings: int
    worst: list[WorstImage]
    pairs: list[PairRow]
    noise_rate: dict[str, float]  # flagged pixels / labelled pixels, per given class
    bad_inputs: list[tuple[str, str]]
    estimate: dict | None = None  # calibrated scans: `scan.calibrated.SplitEstimate` as JSON
    # ensemble teachers (scan.memorisation): images with learnt pixels, those pixels, and the
    # findings that fewer than half of the members see; None for one-model teachers
    learnt: tuple[int, int, int] | None = None


def resolve_scan_run(store: Store, run_id: int | None = None) -> int:
    """`run_id`, or the latest finished scan run in the store that is not a benchmark's
    (`labelaudit bench` scans are chosen by id only); clear error when there is none."""
    with store.session() as s:
        if run_id is not None:
            run = s.get(Run, run_id)
            if run is None or run.kind != "scan":
                raise LookupError(f"{store.location}: no scan run with id {run_id}")
            return run.id
        runs = s.scalars(select(Run).where(Run.kind == "scan", Run.status == "done")
                         .order_by(Run.started_at.desc(), Run.id.desc())).all()
        run = next((r for r in runs if (r.config or {}).get("purpose") != "bench"), None)
        if run is None:
            hint = (f" (only benchmark scans: pass a scan run id, e.g. {runs[0].id})" if runs else
                    "; run `labelaudit scan` first")
            raise LookupError(f"{store.location}: no finished scan{hint}")
        return run.id


def class_names(store: Store, run_id: int) -> list[str]:
    with store.session() as s:
        run = s.get(Run, run_id)
        return list(run.dataset.class_names) if run.dataset else []


def summarize(store: Store, run_id: int, top: int = 20) -> ScanSummary:
    """Read a scan's summary from the store (top `top` images, all confusion pairs)."""
    names = class_names(store, run_id)
    with store.session() as s:
        run = s.get(Run, run_id)
        n_images = s.scalar(select(func.count(ImageScore.id)).where(ImageScore.run_id == run_id)) or 0
        n_findings = s.scalar(select(func.count(Finding.id)).where(Finding.run_id == run_id)) or 0
        worst = [WorstImage(sc.image_id, sc.image.image_relpath, sc.label_quality, sc.n_findings)
                 for sc in repo.top_images(s, run, top)]
        pairs = [PairRow(names[p.given], names[p.suggested], p.count, p.pixels)
                 for p in repo.confusion_pairs(s, run)]
        flagged = np.zeros(len(names), np.int64)
        for g, px in s.execute(select(Finding.given_class, func.sum(Finding.area))
                               .where(Finding.run_id == run_id).group_by(Finding.given_class)):
            flagged[int(g)] = int(px or 0)
        progress = run.progress or {}
        summed = totals(progress)  # over the ranks of a sharded scan
        pixels = np.asarray(summed["class_pixels"] or [0] * len(names), np.int64)
        rate = {n: float(flagged[i] / pixels[i]) if pixels[i] else 0.0 for i, n in enumerate(names)}
        bad = [tuple(b) for b in summed["bad_inputs"]]
        learnt = _learnt(s, run_id)
    return ScanSummary(run_id, int(n_images), int(n_findings), worst, pairs, rate, bad,  # type: ignore[arg-type]
                       progress.get("estimate"), learnt)


def _learnt(s, run_id: int) -> tuple[int, int, int] | None:
    n_images, pixels = s.execute(
        select(func.count(ImageScore.id), func.sum(ImageScore.learnt_pixels))
        .where(ImageScore.run_id == run_id, ImageScore.learnt_pixels > 0)).one()
    voted = s.scalar(select(func.count(ImageScore.id)).where(
        ImageScore.run_id == run_id, ImageScore.learnt_pixels.is_not(None)))
    if not voted:
        return None
    weak = s.scalar(select(func.count(Finding.id)).where(Finding.run_id == run_id,
                                                          Finding.agreement < 0.5))
    return int(n_images or 0), int(pixels or 0), int(weak or 0)


def _atomic_csv(path: Path, header: list[str], rows) -> None:
    with atomic_file(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def write_csvs(store: Store, run_id: int, out: str | Path) -> tuple[Path, Path]:
    """`images.csv` (worst first) and `findings.csv` (most suspicious first) with region PNGs.

    Image paths are relative to the dataset root; each finding's mask is a 0/255 PNG of the
    region in the original label frame, under `masks/`, named by finding id.
    """
    out = Path(out)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    names = class_names(store, run_id)
    with store.session() as s:
        q = (select(ImageScore, Image).join(Image, ImageScore.image_id == Image.id)
             .where(ImageScore.run_id == run_id)
             .order_by(ImageScore.label_quality, ImageScore.image_id))
        image_rows = [(im.image_relpath, f"{sc.label_quality:.6f}", sc.n_findings,
                       "" if sc.learnt_pixels is None else sc.learnt_pixels)
                      for sc, im in s.execute(q)]
    _atomic_csv(out / "images.csv", ["image", "label_quality", "n_findings", "learnt_pixels"],
                image_rows)

    def finding_rows():
        with store.session() as s:
            run = s.get(Run, run_id)
            for f in repo.iter_findings(s, run):
                im = f.image
                shape = (im.height, im.width) if im.height and im.width else None
                mask = f.mask(shape) if shape else f.mask()
                rel = f"masks/{f.id}.png"
                if mask is not None:
                    cv2.imwrite(str(out / rel), mask.astype(np.uint8) * 255)
                x, y, w, h = f.bbox
                yield (f.id, im.image_relpath, names[f.given_class], names[f.suggested_class],
                       f.kind, f"{f.score:.6f}", f.area, x, y, w, h, rel if mask is not None else "",
                       "" if f.agreement is None else f"{f.agreement:.3f}")

    _atomic_csv(out / "findings.csv", ["finding_id", "image", "given", "suggested", "kind", "score",
                                       "area", "x", "y", "w", "h", "mask", "agreement"], finding_rows())
    return out / "images.csv", out / "findings.csv"


def shift_phrase(estimate: dict) -> str:
    """Where p_error stands: at the split's estimated share of errors among the stored
    candidates, or at the calibration's (one teacher's shares; the range over K-fold ones)."""
    cal, split = estimate.get("prior_calibration") or [], estimate.get("prior_split") or []
    if not cal:
        return ""
    span = lambda xs: f"{min(xs):.2f}" if max(xs) - min(xs) < 0.005 else f"{min(xs):.2f}-{max(xs):.2f}"  # noqa: E731
    if cal == split:
        return f"p_error at the calibration's share of errors among candidates ({span(cal)})"
    return (f"p_error moved to this split's estimated share of errors among candidates, "
            f"{span(split)} (calibration: {span(cal)})")


def listed_phrase(estimate: dict) -> str:
    """"N findings at expected precision P (a-b by chance alone)" for a calibrated scan's
    estimate (`scan.calibrated.SplitEstimate` as JSON; scans before stop 29 have no spread)."""
    text = f"{estimate['n_listed']} findings at expected precision {estimate['expected_precision']:.2f}"
    spread = estimate.get("precision_spread", float("nan"))
    if estimate["n_listed"] and not math.isnan(spread):
        lo = max(0.0, estimate["expected_precision"] - spread)
        hi = min(1.0, estimate["expected_precision"] + spread)
        text += f" ({lo:.2f}-{hi:.2f} by chance alone, 95 %)"
    return text
