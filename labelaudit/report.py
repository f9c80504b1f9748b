"""`labelaudit report`: the audit and the retrain as pictures and one markdown page.

Writes into `out`: `contact_sheet.png` (worst images: image | given | teacher | suspicion),
`confusion_pairs.png`, `label_quality_hist.png`, `pr_curve.png` (when clean labels exist: the
images ranked by label_quality and, with cleanlab installed, by cleanlab's softmin score of the
same self-confidences, each with its AP, and the chance line),
`reliability.png` (calibrated scans: p_error against the observed error rate) and `report.md`
with the numbers (before/after validation metrics when a retrained run is given).
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from sqlalchemy import select

from labelaudit.scan.layout import ScanMaps
from labelaudit.scan.summary import ScanSummary, listed_phrase, resolve_scan_run, shift_phrase, summarize
from labelaudit.store import Image, ImageScore, Run, Store, repo

log = logging.getLogger(__name__)


@dataclass
class Report:
    out: Path
    scan_run_id: int
    files: list[Path] = field(default_factory=list)
    before: dict[str, float] = field(default_factory=dict)
    after: dict[str, float] = field(default_factory=dict)


def palette(n: int) -> np.ndarray:
    """(n, 3) uint8 RGB colours, one per class (`data.classes.class_colours`: those of the App)."""
    from labelaudit.data.classes import class_colours

    return np.array([[int(h[i:i + 2], 16) for i in (1, 3, 5)] for h in class_colours(n)], np.uint8)


def _colour(label: np.ndarray, pal: np.ndarray) -> np.ndarray:
    return pal[np.where(label < len(pal), label, 0)]


def _maps(store: Store, run_id: int, image_ids: list[int]
          ) -> tuple[ScanMaps, dict[int, tuple[bytes, bytes]]]:
    """The scan's maps folder and the stored maps of `image_ids` (`ScanMaps.read` takes both)."""
    with store.session() as s:
        run = s.get(Run, run_id)
        return ScanMaps.of(run), repo.scan_map_pngs(s, run, image_ids)


def _scored(store: Store, run_id: int) -> list[tuple[Image, float]]:
    with store.session() as s:
        rows = s.execute(select(Image, ImageScore.label_quality)
                         .join(ImageScore, ImageScore.image_id == Image.id)
                         .where(ImageScore.run_id == run_id)
                         .order_by(ImageScore.label_quality, ImageScore.image_id)).all()
        for im, _ in rows:
            s.expunge(im)
    return [(im, float(q)) for im, q in rows]


def contact_sheet(store: Store, run_id: int, path: Path, k: int = 8, tile: int = 160) -> Path:
    """Worst `k` images as rows: image (in the label frame, findings outlined) | given label |
    teacher | suspicion, each row titled with its label_quality and its top finding; a class
    colour legend below."""
    with store.session() as s:
        run = s.get(Run, run_id)
        ds = run.dataset
        names = list(ds.class_names)
        source = repo.open_dataset_source(ds)
    by_rel = source.records_by_relpath()
    pal = palette(len(names))
    rows = []
    worst = _scored(store, run_id)[:k]
    maps, stored = _maps(store, run_id, [im.id for im, _ in worst])
    for im, q in worst:
        rec = by_rel.get(im.image_relpath)
        if rec is None:
            continue
        img = source.load_image(rec)  # in the label frame (CelebAMask-HQ: 1024 px images, 512 px labels)
        given = source.load_label(rec)
        teacher, heat = maps.read(im.id, stored.get(im.id))
        teacher = np.zeros_like(given) if teacher is None else teacher
        heat = np.zeros_like(given) if heat is None else heat
        heat_rgb = cv2.cvtColor(cv2.applyColorMap(heat, cv2.COLORMAP_INFERNO), cv2.COLOR_BGR2RGB)
        img = _outline_findings(store, run_id, im.id, img)
        cells = [img, _colour(given, pal), _colour(teacher, pal), heat_rgb]
        cells = [cv2.resize(c, (tile, tile), interpolation=cv2.INTER_NEAREST) for c in cells]
        row = np.concatenate(cells, axis=1)
        cv2.putText(row, f"{Path(im.image_relpath).name} quality {q:.3f}", (4, 14),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
        top = _top_finding(store, run_id, im.id, names)
        if top:
            cv2.putText(row, top, (4, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 0), 1, cv2.LINE_AA)
        rows.append(row)
    if not rows:
        rows = [np.zeros((tile, 4 * tile, 3), np.uint8)]
    header = np.zeros((22, 4 * tile, 3), np.uint8)
    for i, t in enumerate(("image", "given", "teacher", "suspicion")):
        cv2.putText(header, t, (i * tile + 6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                    (255, 255, 255), 1, cv2.LINE_AA)
    sheet = np.concatenate([header] + rows + [_legend(names, pal, 4 * tile)], axis=0)
    cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    return path


def _top_finding(store: Store, run_id: int, image_id: int, names: list[str]) -> str:
    """"given->suggested score (kind)" of the image's most suspicious finding, or ""."""
    with store.session() as s:
        found = repo.findings_for_image(s, s.get(Run, run_id), image_id)
        if not found:
            return ""
        f = found[0]
        more = f" +{len(found) - 1}" if len(found) > 1 else ""
        return f"{names[f.given_class]}->{names[f.suggested_class]} {f.score:.2f} ({f.kind}){more}"


def _legend(names: list[str], pal: np.ndarray, width: int, per_row: int = 4) -> np.ndarray:
    """A strip of class colour swatches with their names."""
    rows = -(-len(names) // per_row)
    strip = np.zeros((rows * 18 + 4, width, 3), np.uint8)
    cell = width // per_row
    for i, name in enumerate(names):
        x, y = (i % per_row) * cell + 4, (i // per_row) * 18 + 4
        strip[y:y + 12, x:x + 12] = pal[i] if i else (60, 60, 60)  # background: grey swatch
        cv2.putText(strip, name, (x + 16, y + 11), cv2.FONT_HERSHEY_SIMPLEX, 0.38,
                    (255, 255, 255), 1, cv2.LINE_AA)
    return strip


def _outline_findings(store: Store, run_id: int, image_id: int, img: np.ndarray) -> np.ndarray:
    """The image with the outlines of its findings drawn in yellow."""
    from skimage.segmentation import mark_boundaries

    regions = np.zeros(img.shape[:2], np.int32)
    with store.session() as s:
        for k, f in enumerate(repo.findings_for_image(s, s.get(Run, run_id), image_id), 1):
            m = f.mask(img.shape[:2])
            if m is not None:
                regions[m] = k
    if not regions.any():
        return img
    return (mark_boundaries(img, regions, color=(1, 1, 0), mode="thick") * 255).astype(np.uint8)


def _truth_noisy(store: Store, run_id: int, scored: list[tuple[Image, float]]) -> np.ndarray | None:
    """Per scored image: does its label differ from the clean label? None without clean labels."""
    with store.session() as s:
        source = repo.open_dataset_source(s.get(Run, run_id).dataset)
    by_rel = source.records_by_relpath()
    out = []
    for im, _ in scored:
        rec = by_rel.get(im.image_relpath)
        clean = source.load_clean_label(rec) if rec is not None else None
        if clean is None:
            return None
        out.append(bool((clean != source.load_label(rec)).any()))
    return np.asarray(out)


def charts(store: Store, run_id: int, sm: ScanSummary, out: Path) -> list[Path]:
    """Confusion-pair bars, label_quality histogram, and the image-level PR curve if possible."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    pairs = sorted(sm.pairs, key=lambda p: -p.pixels)[:15]  # drawn by pixels, so sorted by them
    fig, ax = plt.subplots(figsize=(7, 0.35 * max(3, len(pairs)) + 1))
    ax.barh([f"{p.given} -> {p.suggested}" for p in pairs][::-1], [p.pixels for p in pairs][::-1])
    ax.set_xlabel("flagged pixels")
    ax.set_title("confusion pairs (given -> suggested)")
    files.append(_save(fig, out / "confusion_pairs.png"))

    scored = _scored(store, run_id)
    q = np.asarray([v for _, v in scored])
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.hist(q, bins=40)  # the axis fits the values
    ax.set_xlabel("label_quality (low = worst)")
    ax.set_ylabel("images")
    ax.set_title(f"label_quality of {len(q)} images")
    files.append(_save(fig, out / "label_quality_hist.png"))

    noisy = _truth_noisy(store, run_id, scored)
    if noisy is not None and noisy.any() and (~noisy).any():
        curves = {"label_quality": q}
        softmin = _cleanlab_softmin(store, run_id, scored)
        if softmin is not None:
            curves["cleanlab softmin, same self-confidences"] = softmin
        fig, ax = plt.subplots(figsize=(5, 4))
        for name, scores in curves.items():
            recall, precision, ap = _pr(scores, noisy)
            ax.plot(recall, precision, label=f"{name} (AP {ap:.3f})")
        ax.axhline(noisy.mean(), ls="--", c="grey", label=f"chance ({noisy.mean():.3f})")
        ax.legend(loc="lower left", fontsize=8)
        ax.set_xlabel("recall (noisy images)")
        ax.set_ylabel("precision")
        ax.set_ylim(0, 1.05)
        ax.set_title("images ranked worst first")
        files.append(_save(fig, out / "pr_curve.png"))
    return files


def _pr(scores: np.ndarray, noisy: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(recall, precision, average precision) of the images ranked lowest score first."""
    order = np.argsort(scores, kind="stable")
    hits = noisy[order].cumsum()
    precision = hits / np.arange(1, len(scores) + 1)
    ap = float(precision[np.diff(np.concatenate([[0], hits])) > 0].sum() / noisy.sum())
    return hits / noisy.sum(), precision, ap


def _cleanlab_softmin(store: Store, run_id: int, scored: list[tuple[Image, float]]) -> np.ndarray | None:
    """cleanlab's image scores (`segmentation.rank.get_label_quality_scores`, softmin) on the
    scan's own self-confidences (1 - the suspicion map, 8 bits): softmin reads nothing but the
    given label's probability per pixel, so two channels [p, 1 - p] with label 0 are exactly
    its input. None without cleanlab (the `bench` extra) or without the maps."""
    try:
        from cleanlab.segmentation.rank import get_label_quality_scores
    except ImportError:
        return None
    maps, stored = _maps(store, run_id, [im.id for im, _ in scored])
    out = []
    for im, _ in scored:
        heat = maps.read(im.id, stored.get(im.id))[1]
        if heat is None:
            return None
        p = 1.0 - heat.astype(np.float32) / 255.0
        probs = np.stack([p, 1.0 - p])[None]
        out.append(get_label_quality_scores(np.zeros((1, *p.shape), int), probs, verbose=False)[0][0])
    return np.asarray(out)


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _val(run_dir: str | Path | None) -> dict[str, float]:
    if run_dir is None or not (Path(run_dir) / "report.json").exists():
        return {}
    rep = json.loads((Path(run_dir) / "report.json").read_text())
    return rep.get("teacher_val") or rep.get("student_val") or {}


def calibration_tables(store: Store, run_id: int) -> list[tuple[str, dict]]:
    """(name, calibration facts) of the calibrations a calibrated scan used (the JSON files
    beside the fitted models in the training run folder)."""
    from labelaudit.scan.calibrate import calibration_path

    with store.session() as s:
        cfg = s.get(Run, run_id).config or {}
    if cfg.get("scorer") != "calibrated" or not cfg.get("run_dir"):
        return []
    n = len(cfg.get("checkpoints", []))
    paths = [calibration_path(Path(cfg["run_dir"]), cfg.get("teacher", "csr"), k, n).with_suffix(".json")
             for k in range(n)]
    return [(p.stem, json.loads(p.read_text())) for p in paths if p.exists()]


def reliability_chart(tables: list[tuple[str, dict]], path: Path) -> Path:
    """Reliability diagram of p_error: mean predicted vs observed error rate per bin, from the
    calibration's out-of-image cross-validation on the corrupted held-out labels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=1, label="perfect")
    for name, info in tables:
        t = info.get("cv_reliability") or {}
        n = np.asarray(t.get("count", []), float)
        keep = n > 0
        if keep.any():
            ax.plot(np.asarray(t["mean_p"])[keep], np.asarray(t["rate"])[keep], marker="o",
                    label=f"{name} (ECE {info.get('cv_ece', float('nan')):.3f})")
    ax.set_xlabel("p_error (predicted)")
    ax.set_ylabel("share that were injected errors")
    ax.set_title("calibration (held-out labels, cross-validated)")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def make_report(store: Store, out: str | Path, *, run_id: int | None = None,
                before: str | Path | None = None, after: str | Path | None = None,
                top: int = 8) -> Report:
    """Pictures + report.md for scan `run_id` (default latest); `before`/`after` are train runs."""
    out = Path(out)
    run_id = resolve_scan_run(store, run_id)  # before any folder is made: a failure leaves none
    out.mkdir(parents=True, exist_ok=True)
    sm = summarize(store, run_id, top)
    rep = Report(out, run_id)
    rep.files.append(contact_sheet(store, run_id, out / "contact_sheet.png", k=top))
    rep.files += charts(store, run_id, sm, out)
    tables = calibration_tables(store, run_id)
    if tables:
        rep.files.append(reliability_chart(tables, out / "reliability.png"))
    rep.before, rep.after = _val(before), _val(after)
    lines = [f"# labelaudit report (scan run {run_id})", "",
             f"{sm.n_findings} findings in {sm.n_images} images.", ""]
    if sm.estimate:
        e = sm.estimate
        lines += [f"Estimated label errors in the split: {e['expected_errors']:.0f} (among "
                  f"{e['n_candidates']} candidate regions). Listed: {listed_phrase(e)}, "
                  f"p_error >= {e['cutoff']:.3f}." + (f" {shift_phrase(e).capitalize()}." if shift_phrase(e) else ""), ""]
    if rep.before:
        lines += ["| validation (teacher) | mean F1 | mIoU |", "|---|---|---|",
                  f"| before cleaning | {rep.before.get('mean_f1', float('nan')):.2f} | "
                  f"{rep.before.get('miou', float('nan')):.2f} |"]
        if rep.after:
            lines.append(f"| after cleaning | {rep.after.get('mean_f1', float('nan')):.2f} | "
                         f"{rep.after.get('miou', float('nan')):.2f} |")
        lines.append("")
    lines += ["| given | suggested | findings | pixels |", "|---|---|---|---|"]
    lines += [f"| {p.given} | {p.suggested} | {p.findings} | {p.pixels} |" for p in sm.pairs[:15]]
    lines += [""] + [f"![{f.stem}]({f.name})" for f in rep.files]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    rep.files.append(out / "report.md")
    return rep
