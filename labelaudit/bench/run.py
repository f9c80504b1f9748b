"""`labelaudit bench`: score scans against known noise, side by side with cleanlab.

For each teacher of a run (CSR teacher, DML student, K-fold teachers) one scan is made; on the
way, the same probabilities feed cleanlab's segmentation API in chunks (it needs whole arrays in
memory): `rank.get_label_quality_scores(method="softmin")` for images and pixels and
`filter.find_label_issues(n_jobs=1)` for a flagged-pixel mask. Everything is compared with the
truth the synthetic generator kept (`labels_clean/`, `noise_types/`), at image, region and pixel
level, overall and per noise type, and once more as if errors were rarer (`RARER_SHARE`).
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
from scipy import ndimage

from labelaudit.bench.scoring import (
    NOISE_TYPES, MaskCounts, PixelAP, RegionCounts, auroc, average_precision, bootstrap_interval,
    precision_at_k, true_regions,
)
from labelaudit.data.classes import IGNORE_INDEX
from labelaudit.scan.calibrator import (
    adjust, expected_calibration_error, expected_precision_cutoff, histogram, reliability,
    sampling_ece, split_share,
)

log = logging.getLogger(__name__)

# ours, each in its own scan of the same teacher; "calibrated-val-only": the calibrated scorer
# fitted on the val copies alone, without the errors planted in the training labels
DEFAULT_SCORERS = ("calibrated", "rules")
SCORERS = (*DEFAULT_SCORERS, "calibrated-val-only")
LIST_TARGET = 0.8  # the precision asked of the list (`scan --precision` default)
# every bench also reads its scores as if only this share of the images were noisy (clean
# images counted several times): the synthetic sets are 15-50 % noisy, users' data often less
RARER_SHARE = 0.1
TYPE_CODE = {v: k for k, v in NOISE_TYPES.items()}
UNKNOWN = 255  # label != clean label where the generator kept no per-pixel noise type


@dataclass
class MethodScores:
    """Detection quality of one method (ours / cleanlab) with one teacher."""

    image_ap: float = float("nan")
    image_auroc: float = float("nan")
    image_p_at_k: float = float("nan")
    image_r_at_k: float = float("nan")
    region_precision: float = float("nan")
    region_recall: float = float("nan")
    region_f1: float = float("nan")
    # recall of whole-part flips and drops where the findings' precision is >= 0.8
    part_recall_at_p80: float = float("nan")
    # recall of every true region where the findings' precision is >= 0.8
    recall_at_p80: float = float("nan")
    # 95 % bootstrap intervals over the images (the images resampled with replacement)
    image_ap_ci: tuple[float, float] = (float("nan"), float("nan"))
    recall_at_p80_ci: tuple[float, float] = (float("nan"), float("nan"))
    # R @ P>=0.8 minus the rules' on the same images, with its paired 95 % bootstrap interval
    margin_over_rules: float = float("nan")
    margin_over_rules_ci: tuple[float, float] = (float("nan"), float("nan"))
    pixel_precision: float = float("nan")
    pixel_recall: float = float("nan")
    pixel_f1: float = float("nan")
    pixel_ap: float = float("nan")
    by_type: dict[str, dict[str, float]] = field(default_factory=dict)
    seconds: float = 0.0  # this method's own scoring time (forward excluded)
    # the findings' scores read as probabilities of being an error (meant for `calibrated`)
    ece: float = float("nan")
    # the ECE a perfectly calibrated scorer would show on these scores (sampling alone)
    ece_if_calibrated: float = float("nan")
    ece_if_calibrated_q95: float = float("nan")
    reliability: dict[str, list] = field(default_factory=dict)
    # the findings counted in region P / R: all of them (rules), or the list a user gets at
    # --precision LIST_TARGET (calibrated), with its expected precision (mean p_error)
    n_listed: int = 0
    listed_expected_precision: float = float("nan")
    # calibrated: the scan's estimate of the number of errors vs the true corrupted regions
    estimated_errors: float = float("nan")
    true_regions: int = 0
    # the same scores as if only RARER_SHARE of the images were noisy (`_Accumulator.rarer`)
    rarer: dict[str, float] = field(default_factory=dict)


@dataclass
class TeacherBench:
    teacher: str
    scan_run_id: int
    n_images: int
    n_noisy: int
    methods: dict[str, MethodScores]
    scan_images_per_s: float
    forward_seconds: float
    scan_overhead: float  # our scoring + store as a fraction of the forward time (first scorer)
    calibration_seconds: float = 0.0  # fitting the calibrated scorer (once per dataset and teacher)


@dataclass
class BenchReport:
    root: str
    run_dir: str
    split: str
    teachers: list[TeacherBench]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def _prf(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r > 0 else 0.0


class _Truth:
    """Per-image noise ground truth: a type map (0 clean, NOISE_CODES, 255 unknown).

    Read from the record's clean label and, when the generator kept it, `noise_types/<id>.png`
    in the dataset root (found upwards from the clean label).
    """

    def __init__(self) -> None:
        self.types_dir: Path | None = None

    def type_map(self, rec, label: np.ndarray) -> np.ndarray:
        from labelaudit.data import read_label

        if rec.clean_label_path is None or not Path(rec.clean_label_path).exists():
            raise FileNotFoundError(f"{rec.image_path}: no clean label; `labelaudit bench` needs "
                                    "labels_clean/ beside the labels (a `labelaudit synth` set)")
        clean = read_label(rec.clean_label_path)
        if self.types_dir is None:
            self.types_dir = next((p / "noise_types" for p in Path(rec.clean_label_path).parents
                                   if (p / "noise_types").is_dir()), Path("/nonexistent"))
        diff = (clean != label) & (label != IGNORE_INDEX)
        path = self.types_dir / f"{rec.id}.png"
        tm = cv2.imread(str(path), cv2.IMREAD_UNCHANGED) if path.exists() else None
        if tm is None or tm.shape != label.shape:
            return np.where(diff, UNKNOWN, 0).astype(np.uint8)
        # pixels the generator touched but left on the same class are not errors
        return np.where(diff, np.where(tm > 0, tm, UNKNOWN), 0).astype(np.uint8)


def clean_weight(noisy: np.ndarray, share: float) -> int:
    """How many times to count each clean image so that about `share` of the images are noisy
    (a whole number, at least 1: a split already that clean is left as it is)."""
    k, n_clean = int(noisy.sum()), int((~noisy).sum())
    return max(1, round(k * (1 - share) / (share * n_clean))) if k and n_clean else 1


def _weighted_ap(scores: np.ndarray, noisy: np.ndarray, counts: np.ndarray) -> float:
    """Image AP with each image taken `counts` times (a bootstrap draw)."""
    keep = np.repeat(np.arange(len(scores)), counts)
    return average_precision(scores[keep], noisy[keep]) if noisy[keep].any() else float("nan")


class _Accumulator:
    """Streams one method's outputs into image / region / pixel measures."""

    def __init__(self) -> None:
        self.image_scores: list[float] = []  # HIGH = more likely noisy
        self.image_types: list[set[int]] = []
        self.regions = RegionCounts(iou=0.3)
        self.mask = MaskCounts()
        self.pixel_ap = PixelAP()
        self.type_mask: dict[int, MaskCounts] = {}
        self.type_ap: dict[int, PixelAP] = {}
        self.seconds = 0.0
        self.listed_cutoff = -np.inf  # region P / R of the findings scoring >= this
        self.estimated_errors = float("nan")
        self.image_ids: list[int] = []  # the store's image ids, in update order
        # (calibration's share, split's share) when the scan moved p_error between them
        self.shift: tuple[float, float] | None = None

    def update(self, image_score: float, flagged: np.ndarray, pixel_score: np.ndarray,
               regions: list[np.ndarray], tmap: np.ndarray, valid: np.ndarray,
               region_scores: list[float]) -> None:
        truth = tmap > 0
        codes = set(int(c) for c in np.unique(tmap) if c)
        self.image_scores.append(float(image_score))
        self.image_types.append(codes)
        self.regions.update(regions, [(m, name) for m, name in true_regions(tmap)]
                            + ([(tmap == UNKNOWN, "unknown")] if UNKNOWN in codes else []),
                            region_scores)
        self.mask.update(flagged & valid, truth)
        self.pixel_ap.update(pixel_score, truth, valid)
        for c in codes:
            self.type_mask.setdefault(c, MaskCounts()).update(flagged & valid, tmap == c)
        for c in list(self.type_ap) + [c for c in codes if c not in self.type_ap]:
            ap = self.type_ap.setdefault(c, PixelAP())
            keep = valid & ((tmap == c) | ~truth)  # this type's pixels against the clean ones
            ap.update(pixel_score, tmap == c, keep)

    @property
    def noisy(self) -> np.ndarray:
        """(n_images,) bool: which images hold a true error, in update order."""
        return np.asarray([bool(t) for t in self.image_types], bool)

    def scores(self) -> MethodScores:
        s = np.asarray(self.image_scores)
        noisy = self.noisy
        k = int(noisy.sum())
        out = MethodScores(seconds=self.seconds, estimated_errors=self.estimated_errors,
                           true_regions=len(self.regions.truths))
        if 0 < k < len(s):
            out.image_ap = average_precision(s, noisy)
            out.image_ap_ci = bootstrap_interval(lambda c: _weighted_ap(s, noisy, c), len(s))
            out.image_auroc = auroc(s, noisy)
            out.image_p_at_k = precision_at_k(s, noisy, k)
            out.image_r_at_k = out.image_p_at_k  # k = number of noisy images: P@k == R@k
        out.region_precision, out.region_recall = self.regions.listed(self.listed_cutoff)
        out.region_f1 = _prf(out.region_precision, out.region_recall)
        out.part_recall_at_p80 = self.regions.recall_at_precision(("flip", "drop"), 0.8)
        recall_at_p80 = self.regions.recall_at_precision_of(tuple(self.regions.true_total), 0.8)
        out.recall_at_p80 = recall_at_p80(np.ones(self.regions.n_images))
        out.recall_at_p80_ci = bootstrap_interval(recall_at_p80, self.regions.n_images)
        p, hit = self.regions.outcomes()
        if len(p):
            out.ece = expected_calibration_error(np.clip(p, 0, 1), hit)
            out.ece_if_calibrated, out.ece_if_calibrated_q95 = sampling_ece(p)
            out.reliability = reliability(np.clip(p, 0, 1), hit)
            listed = p >= self.listed_cutoff
            out.n_listed = int(listed.sum())
            if listed.any() and np.isfinite(self.listed_cutoff):
                out.listed_expected_precision = float(p[listed].mean())
        out.pixel_precision, out.pixel_recall, out.pixel_f1 = self.mask.prf()
        out.pixel_ap = self.pixel_ap.value()
        for c in sorted(set().union(*self.image_types) if self.image_types else []):
            name = NOISE_TYPES.get(c, "unknown")
            has = np.asarray([c in t for t in self.image_types])
            keep = has | ~noisy  # images with this type against the clean images
            row: dict[str, float] = {"images": int(has.sum())}
            if has.sum() and (~noisy).sum():
                row["image_ap"] = average_precision(s[keep], has[keep])
                row["image_auroc"] = auroc(s[keep], has[keep])
            row["region_recall"] = self.regions.listed(self.listed_cutoff, name)[1]
            row["recall_small"] = self.regions.listed(self.listed_cutoff, name, True)[1]
            row["recall_large"] = self.regions.listed(self.listed_cutoff, name, False)[1]
            mp, mr, mf = self.type_mask[c].prf()
            row["pixel_recall"] = mr
            row["pixel_ap"] = self.type_ap[c].value()
            out.by_type[name] = row
        out.rarer = self.rarer(RARER_SHARE)
        return out

    def rarer(self, share: float) -> dict[str, float]:
        """Image AP, R @ P>=0.8 and (with a list) ECE and the list's expected and measured
        precision, every clean image counted `clean_weight` times: the same teacher and scores
        on a split where errors are rarer. The list is cut again as a scan of that split would
        cut it, its scores moved to that split's share first when the scan moved them (image AP
        keeps the split's own image scores: such a move changed it by 0.001 at most, stop 32).
        Empty when the split has no clean or no noisy image."""
        noisy = self.noisy
        if not noisy.any() or noisy.all():
            return {}
        k = clean_weight(noisy, share)
        w = np.where(noisy, 1, k)
        out = {"noisy_share": float(noisy.sum() / w.sum()), "clean_weight": float(k),
               "image_ap": _weighted_ap(np.asarray(self.image_scores), noisy, w),
               "recall_at_p80": self.regions.recall_at_precision(
                   tuple(self.regions.true_total), 0.8, image_weight=w)}
        p, hit = self.regions.outcomes()
        if np.isfinite(self.listed_cutoff) and len(p):
            row_w = w[np.asarray(self.regions.ranked_image, np.int64)]
            p, hit = self._shifted_again(np.repeat(np.clip(p, 0, 1), row_w)), np.repeat(hit, row_w)
            listed = p >= expected_precision_cutoff(p, LIST_TARGET)
            out["ece"] = expected_calibration_error(p, hit)
            if listed.any():
                out["listed_expected_precision"] = float(p[listed].mean())
                out["listed_precision"] = float(hit[listed].mean())
        return out

    def _shifted_again(self, p: np.ndarray) -> np.ndarray:
        """The scores a scan of the reweighted split would store: moved back to the
        calibration's share, then to the share that split's candidates give (as `scan`)."""
        if self.shift is None:
            return p
        calibration, split = self.shift
        raw = adjust(p, split, calibration)
        return adjust(raw, calibration, split_share(histogram(raw), calibration))


class _CleanlabChunks:
    """Buffers same-shaped images and runs cleanlab's segmentation API on chunks of them."""

    def __init__(self, acc: _Accumulator, chunk: int) -> None:
        self.acc = acc
        self.chunk = chunk
        self.buf: dict[tuple[int, ...], list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}

    def add(self, probs: np.ndarray, label: np.ndarray, tmap: np.ndarray) -> None:
        items = self.buf.setdefault(probs.shape, [])
        items.append((probs, label, tmap))
        if len(items) >= self.chunk:
            self._flush(probs.shape)

    def close(self) -> None:
        for shape in list(self.buf):
            self._flush(shape)

    def _flush(self, shape: tuple[int, ...]) -> None:
        from cleanlab.segmentation.filter import find_label_issues
        from cleanlab.segmentation.rank import get_label_quality_scores

        items = self.buf.pop(shape, [])
        if not items:
            return
        t0 = time.perf_counter()
        probs = np.stack([p for p, _, _ in items])
        labels = np.stack([np.where(lb == IGNORE_INDEX, 0, lb) for _, lb, _ in items]).astype(np.int64)
        image_q, pixel_q = get_label_quality_scores(labels, probs, method="softmin", verbose=False)
        issues = find_label_issues(labels, probs, n_jobs=1, verbose=False)
        self.acc.seconds += time.perf_counter() - t0
        for i, (_, lb, tmap) in enumerate(items):
            n, comp = cv2.connectedComponents(issues[i].astype(np.uint8), connectivity=8)
            regions = [comp == r for r in range(1, n)]
            valid = lb != IGNORE_INDEX
            # a component's score: 1 - its mean pixel label quality (cleanlab's pixel scores)
            region_scores = [1.0 - float(v) for v in
                             ndimage.mean(pixel_q[i], labels=comp, index=np.arange(1, n))]
            self.acc.update(1.0 - float(image_q[i]), issues[i].astype(bool), 1.0 - pixel_q[i],
                            regions, tmap, valid, region_scores)


def _our_pixel_score(findings, shape: tuple[int, int], q: np.ndarray) -> tuple[np.ndarray, np.ndarray, list]:
    """Our flagged mask, pixel ranking (finding pixels first, by region score; then 1 - q) and
    full-frame region masks, from an image's stored findings."""
    flagged = np.zeros(shape, bool)
    region_rank = np.zeros(shape, np.float32)
    masks = []
    for f in findings:
        full = f.mask(shape)
        masks.append(full)
        flagged |= full
        region_rank = np.where(full, np.maximum(region_rank, f.score), region_rank)
    score = np.where(flagged, 0.5 + 0.5 * region_rank, 0.5 * (1.0 - q))
    return flagged, score, masks


def margin_over(ours: _Accumulator, base: _Accumulator) -> tuple[float, tuple[float, float]]:
    """R @ P>=0.8 of `ours` minus `base`'s on the same images, and its 95 % paired bootstrap
    interval (each draw takes the same images for both)."""
    kinds = tuple(ours.regions.true_total)
    where = {im: i for i, im in enumerate(base.image_ids)}
    order = np.asarray([where[im] for im in ours.image_ids], np.int64)
    a = ours.regions.recall_at_precision_of(kinds, 0.8)
    b = base.regions.recall_at_precision_of(kinds, 0.8)

    def diff(counts: np.ndarray) -> float:
        aligned = np.empty_like(counts)
        aligned[order] = counts
        return a(counts) - b(aligned)

    return diff(np.ones(len(order), np.int64)), bootstrap_interval(diff, len(order))


def _from_store(db_url: str, run_id: int, seen: dict[int, tuple], listed_only: bool) -> _Accumulator:
    """Our scores as the store holds them at the end of the scan (final p_error, image
    qualities), against each image's truth (`seen`: image id -> (type map, valid, q)).

    Every stored finding enters the ranking (recall at precision, ECE); with `listed_only` the
    flagged pixels and region precision / recall are those of the list a user gets at
    --precision LIST_TARGET (the calibrated scorer stores its candidates down to a floor).
    """
    from labelaudit.store import ImageScore, Run, open_db, repo

    acc = _Accumulator()
    store = open_db(db_url)
    try:
        with store.session() as s:
            run = s.get(Run, run_id)
            estimate = (run.progress or {}).get("estimate") or {}
            acc.estimated_errors = float(estimate.get("expected_errors", float("nan")))
            acc.shift = _single_shift(estimate)
            quality = dict(s.query(ImageScore.image_id, ImageScore.label_quality)
                           .filter(ImageScore.run_id == run_id).all())
            found = repo.findings_for_images(s, run, list(seen))
        scores = np.asarray([f.score for fs in found.values() for f in fs])
        cutoff = expected_precision_cutoff(scores, LIST_TARGET) if listed_only else -np.inf
        for image_id, (tmap, valid, q) in seen.items():
            listed = [f for f in found[image_id] if f.score >= cutoff]
            flagged, score, _ = _our_pixel_score(listed, tmap.shape, q)
            acc.update(1.0 - quality[image_id], flagged, score,
                       [f.mask(tmap.shape) for f in found[image_id]], tmap, valid,
                       [f.score for f in found[image_id]])
        acc.listed_cutoff = cutoff
        acc.image_ids = list(seen)
    finally:
        store.close()
    return acc


def _single_shift(estimate: dict) -> tuple[float, float] | None:
    """(calibration's share, split's share) of a one-teacher scan that moved p_error; None
    when it did not. A K-fold scan moves each teacher's scores by its own share, which the
    bench's rows do not keep: its rarer reading leaves the scores where that split had them."""
    cal, split = estimate.get("prior_calibration") or [], estimate.get("prior_split") or []
    if len(cal) > 1 and cal != split:
        log.warning("bench: %d teachers' shares; the rarer reading is not moved again", len(cal))
    return (float(cal[0]), float(split[0])) if len(cal) == 1 and cal != split else None


def _margins_over_rules(methods: dict[str, MethodScores], accs: dict[str, _Accumulator]) -> None:
    """Each of our scorers' R @ P>=0.8 against the rules' (paired interval), when they ran."""
    rules = accs.get("rules")
    if rules is None:
        return
    for scorer, acc in accs.items():
        if scorer != "rules":
            m = methods[scorer]
            m.margin_over_rules, m.margin_over_rules_ci = margin_over(acc, rules)


def run_bench(run_dir: str | Path, teachers: tuple[str, ...] = ("csr", "dml"), *,
              scorers: tuple[str, ...] = DEFAULT_SCORERS, db_url: str | None = None, split: str = "train",
              root: str | Path | None = None, batch_size: int = 8, limit: int | None = None,
              cleanlab_chunk: int = 64, tta: bool | None = None, progress: bool = True,
              prior_shift: bool = True, scales: tuple[float, ...] | None = None) -> BenchReport:
    """Per teacher, one fresh scan per scorer (listing every stored finding: precision 0), and
    cleanlab on the first scan's probabilities; everything scored against the known noise."""
    from labelaudit.confidence import self_confidence
    from labelaudit.scan.calibrate import CalibrationOptions
    from labelaudit.scan.run import ScanOptions, run_scan

    try:
        import cleanlab  # noqa: F401
    except ImportError:
        raise ValueError("labelaudit bench compares with cleanlab: pip install 'labelaudit[bench]'") from None
    run_dir = Path(run_dir)
    rows = []
    truth = _Truth()
    for name in teachers:
        theirs = _Accumulator()
        chunks = _CleanlabChunks(theirs, cleanlab_chunk)
        methods: dict[str, MethodScores] = {}
        accs: dict[str, _Accumulator] = {}
        first = None
        for scorer in scorers:
            seen: dict[int, tuple] = {}

            def on_image(im, seen=seen, feed=first is None):
                tmap = truth.type_map(im.record, im.label)
                seen[im.image_id] = (tmap, im.label != IGNORE_INDEX, self_confidence(im.probs, im.label))
                if feed:
                    chunks.add(im.probs, im.label, tmap)

            calibrated = scorer.startswith("calibrated")
            opts = ScanOptions(run_dir=run_dir, split=split, teacher=name, tta=tta, scales=scales,
                               db_url=db_url,
                               root=Path(root) if root else None, batch_size=batch_size,
                               limit=limit, resume=False, progress=progress,
                               scorer="calibrated" if calibrated else scorer, precision=0.0,
                               purpose="bench", prior_shift=prior_shift,
                               calibration=CalibrationOptions(planted=scorer == "calibrated"))
            res = run_scan(opts, on_image=on_image)
            ours = _from_store(res.db_url, res.run_id, seen, listed_only=calibrated)
            ours.seconds = res.own_seconds
            methods[scorer], accs[scorer] = ours.scores(), ours
            first = first or (res, ours)
            log.info("bench %s / %s: scan run %d", name, scorer, res.run_id)
        chunks.close()
        methods["cleanlab"] = theirs.scores()
        _margins_over_rules(methods, accs)
        res, ours = first
        rows.append(TeacherBench(name, res.run_id, res.n_scored_now, int(ours.noisy.sum()),
                                 methods, res.images_per_s, res.forward_seconds, res.overhead,
                                 res.calibration_seconds))
    data_root = str(truth.types_dir.parent) if truth.types_dir else str(root or "")
    return BenchReport(data_root, str(run_dir), split, rows)


# ------------------------------------------------------------------ presentation

def _f(x: float) -> str:
    return "n/a" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.3f}"


def _interval(value: float, ci: tuple[float, float]) -> str:
    return "n/a" if np.isnan(value) else f"{_f(value)} ({_f(ci[0])} to {_f(ci[1])})"


def _rarer_table(report: BenchReport) -> list[str]:
    """The scores as if only RARER_SHARE of the images were noisy (`_Accumulator.rarer`)."""
    lines = ["", f"| teacher | method | as if {RARER_SHARE:.0%} noisy: each clean image counted | "
                 "noisy share | image AP | R @ P>=0.8 | ECE | expected P of the list | "
                 "measured P |", "|---|---|---|---|---|---|---|---|---|"]
    for t in report.teachers:
        for m, s in t.methods.items():
            r = s.rarer
            if r:
                lines.append(f"| {t.teacher} | {m} | {r['clean_weight']:.0f}x | "
                             f"{_f(r['noisy_share'])} | {_f(r['image_ap'])} | "
                             f"{_f(r['recall_at_p80'])} | {_f(r.get('ece', float('nan')))} | "
                             f"{_f(r.get('listed_expected_precision', float('nan')))} | "
                             f"{_f(r.get('listed_precision', float('nan')))} |")
    return lines


def markdown(report: BenchReport) -> str:
    """The report as markdown tables: overall, the calibrated list, per noise type and size,
    as if errors were rarer, and the timings."""
    lines = ["| teacher | method | image AP | AUROC | region P | region R | "
             "R @ P>=0.8 | flip+drop R @ P>=0.8 | pixel P | pixel R | pixel F1 | pixel AP |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for t in report.teachers:
        for m, s in t.methods.items():
            lines.append(f"| {t.teacher} | {m} | {_f(s.image_ap)} | {_f(s.image_auroc)} | "
                         f"{_f(s.region_precision)} | {_f(s.region_recall)} | "
                         f"{_f(s.recall_at_p80)} | {_f(s.part_recall_at_p80)} | {_f(s.pixel_precision)} | {_f(s.pixel_recall)} | "
                         f"{_f(s.pixel_f1)} | {_f(s.pixel_ap)} |")
    lines += ["", "| teacher | method | image AP, 95 % interval | R @ P>=0.8, 95 % interval | "
                  "R @ P>=0.8 minus the rules', 95 % paired interval |",
              "|---|---|---|---|---|"]  # the images resampled with replacement, 1000 draws
    for t in report.teachers:
        for m, s in t.methods.items():
            lines.append(f"| {t.teacher} | {m} | {_interval(s.image_ap, s.image_ap_ci)} | "
                         f"{_interval(s.recall_at_p80, s.recall_at_p80_ci)} | "
                         f"{_interval(s.margin_over_rules, s.margin_over_rules_ci)} |")
    lines += ["", f"| teacher | method | ECE of the scores | ECE if calibrated (mean / 95 %) | "
                  f"findings in region P / R | "
                  f"expected P (list at {LIST_TARGET}) | measured P | estimated errors | "
                  "true corrupted regions |", "|---|---|---|---|---|---|---|---|---|"]
    for t in report.teachers:
        for m, s in t.methods.items():
            if m != "cleanlab":
                est = "n/a" if np.isnan(s.estimated_errors) else f"{s.estimated_errors:.0f}"
                lines.append(f"| {t.teacher} | {m} | {_f(s.ece)} | {_f(s.ece_if_calibrated)} / "
                             f"{_f(s.ece_if_calibrated_q95)} | {s.n_listed} | "
                             f"{_f(s.listed_expected_precision)} | {_f(s.region_precision)} | "
                             f"{est} | {s.true_regions} |")
    lines += ["", "| teacher | method | noise type | images | image AP | region recall | "
                  f"recall < 50 px | recall >= 50 px | pixel recall | pixel AP |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for t in report.teachers:
        for m, s in t.methods.items():
            for kind, row in s.by_type.items():
                lines.append(f"| {t.teacher} | {m} | {kind} | {row['images']} | "
                             f"{_f(row.get('image_ap', float('nan')))} | {_f(row['region_recall'])} | "
                             f"{_f(row.get('recall_small', float('nan')))} | "
                             f"{_f(row.get('recall_large', float('nan')))} | "
                             f"{_f(row['pixel_recall'])} | {_f(row['pixel_ap'])} |")
    lines += _rarer_table(report)
    lines += ["", "| teacher | images | noisy | scan images/s | forward s | scan overhead | "
                  "calibration s | scoring s per method |", "|---|---|---|---|---|---|---|---|"]
    for t in report.teachers:
        secs = ", ".join(f"{m} {s.seconds:.1f}" for m, s in t.methods.items())
        lines.append(f"| {t.teacher} | {t.n_images} | {t.n_noisy} | {t.scan_images_per_s:.1f} | "
                     f"{t.forward_seconds:.1f} | {100 * t.scan_overhead:.0f}% | "
                     f"{t.calibration_seconds:.1f} | {secs} |")
    return "\n".join(lines)
