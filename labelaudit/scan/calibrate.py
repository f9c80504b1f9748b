"""`labelaudit calibrate`: fit the scorer of one teacher on one dataset, without clean labels.

The teacher scores a held-out split (val by default: images it never trained on). Each image's
given labels are copied (24 times for 40 images: about 960 maps in all), each copy corrupted in
known ways (`data.corrupt`); every candidate region of every copy (`scan.candidates`) becomes a
row of features, labelled by whether it matches an injected error (IoU >= 0.3 with a connected
region of changed pixels, the benchmark's own matching rule). When the teacher's run planted
known errors in some of its training labels (`data.planted`), those images add rows too: their
planted labels against the teacher that trained on them, the way a scan of the training split
meets a real error. Every row carries the `trained` feature (planted rows 1, val copies 0), the
two sources weigh the same, and a scan of the training split scores its candidates as trained.
A gradient-boosted model is fitted on the rows and stored in the run folder
(`calibration/<teacher>[-k].pkl` + `.json`); its out-of-image cross-validated ECE and AUC are
kept with it (on the planted rows when there are any). Pre-existing errors of the labels count
as clean here, which makes the model slightly cautious. Up to 64 images are kept in memory; a
larger split is read twice (thresholds and confusion first, then the copies), so memory stays
flat.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import DataLoader

from labelaudit.confidence import ConfidenceStats, self_confidence
from labelaudit.data.classes import IGNORE_INDEX
from labelaudit.data.planted import INDEX as PLANTED_INDEX
from labelaudit.data.planted import Planted, load_planted
from labelaudit.scan.calibrator import (
    FLOOR, TRAINED, CalibrationInfo, Calibrator, cross_validated, expected_calibration_error,
    fit_model, reliability, with_trained,
)
from labelaudit.scan.candidates import FEATURES, Candidates, TeacherContext, find_candidates
from labelaudit.data.corrupt import corrupt
from labelaudit.scan.forward import Predict, ScanDataset, scan_collate
from labelaudit.scan.score import top_class

log = logging.getLogger(__name__)

MAPS = 960  # corrupted label maps a calibration aims at (24 copies of 40 val images)
MATCH_IOU = 0.3  # a candidate is an error when it overlaps an injected error region this much
FOLDER = "calibration"


@dataclass
class CalibrationOptions:
    split: str = "val"
    copies: int | None = None  # corrupted copies per image; None: about MAPS maps in all (2-24)
    limit: int | None = 400  # images of the split used at most
    seed: int = 0
    batch_size: int = 8
    progress: bool = True
    planted: bool = True  # learn from the errors planted in the teacher's training labels too

    def copies_for(self, n_images: int) -> int:
        """Corrupted copies per held-out image: `copies`, else about MAPS maps in all (2-24)."""
        return self.copies or int(np.clip(np.ceil(MAPS / n_images), 2, 24))


def calibration_path(run_dir: Path, teacher: str, k: int = 0, n_teachers: int = 1,
                     planted: bool = True) -> Path:
    """Where the calibration of teacher `teacher` (fold k of n) lives in its run folder; one
    made without the planted errors (`CalibrationOptions.planted` off) is kept beside it."""
    name = teacher if n_teachers == 1 else f"{teacher}-{k}"
    return Path(run_dir) / FOLDER / f"{name}{'' if planted else '-val-only'}.pkl"


def candidate_truth(cands: Candidates, changed: np.ndarray, iou: float = MATCH_IOU) -> np.ndarray:
    """(n,) bool: candidate k overlaps a connected region of `changed` with IoU >= iou."""
    import cv2

    n = len(cands)
    m, truth = cv2.connectedComponents(changed.astype(np.uint8), connectivity=8)
    if n == 0 or m <= 1:
        return np.zeros(n, bool)
    both = (cands.ids > 0) & (truth > 0)
    key = (cands.ids[both].astype(np.int64) - 1) * m + truth[both]
    pairs, inter = np.unique(key, return_counts=True)
    cand, region = pairs // m, pairs % m
    size = np.bincount(truth.ravel(), minlength=m)
    score = inter / (cands.area[cand] + size[region] - inter)
    best = np.zeros(n)
    np.maximum.at(best, cand, score)
    return best >= iou


def teacher_context(stats: ConfidenceStats, confusion: np.ndarray, flip_pairs,
                    floor: float = 0.5) -> TeacherContext:
    """The context of `find_candidates` from a pass over clean-ish labels."""
    rows = confusion.sum(1, keepdims=True)
    rate = np.where(rows > 0, confusion / np.maximum(rows, 1), 0.0)
    return TeacherContext(stats.thresholds(floor), rate,
                          TeacherContext.mirror_matrix(len(confusion), flip_pairs))


class _Rows:
    """Collects feature rows (with the `trained` column), truth and the image each came from."""

    def __init__(self) -> None:
        self.x: list[np.ndarray] = []
        self.y: list[np.ndarray] = []
        self.group: list[np.ndarray] = []

    def add(self, cands: Candidates, truth: np.ndarray, group: int, trained: bool) -> None:
        self.x.append(with_trained(cands.features, trained))
        self.y.append(truth)
        self.group.append(np.full(len(cands), group))

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if not self.x:
            return np.zeros((0, len(FEATURES) + 1), np.float32), np.zeros(0, bool), np.zeros(0, int)
        return np.concatenate(self.x), np.concatenate(self.y), np.concatenate(self.group)


def _images(dataset: ScanDataset, predict: Predict, k: int, opts: CalibrationOptions, what: str):
    """Yields (probs, label, edges, record id) of the dataset's images, batch by batch."""
    from tqdm.auto import tqdm

    loader = DataLoader(dataset, batch_size=opts.batch_size, collate_fn=scan_collate)
    with tqdm(total=len(dataset), desc=f"calibrate {what}", unit="img",
              disable=None if opts.progress else True) as bar:
        for batch in loader:
            if "image" in batch:
                ids = [dataset.records[i].id for i in batch["index"].tolist()]
                yield from zip(predict(k, batch), batch["label_orig"], batch["edges"], ids)
            bar.update(len(batch["index"]) if "index" in batch else 0)


@dataclass
class CalibrationRows:
    """The rows a calibration fits on, and what they were made from."""

    x: np.ndarray  # (n, len(FEATURES) + 1) features with the `trained` column
    y: np.ndarray  # (n,) bool: the candidate is an injected or planted error
    groups: np.ndarray  # (n,) the image each row came from (planted images: negative)
    context: TeacherContext
    n_images: int  # held-out images
    copies: int  # corrupted copies per held-out image
    n_planted: int  # planted training images


def calibration_rows(source, size: int, channel_order: str, predict: Predict, k: int,
                     opts: CalibrationOptions, planted: Planted | None = None) -> CalibrationRows:
    """The rows of teacher k: every candidate of the corrupted copies of the held-out split's
    labels, then of the planted training images (see the module docstring)."""
    dataset = ScanDataset(source, opts.split, size=size, augment=False, channel_order=channel_order)
    if opts.limit is not None:
        dataset.records = dataset.records[:opts.limit]
    if not dataset.records:
        raise ValueError(f"{source.root}: the {opts.split} split has no images to calibrate on")
    if len(dataset) < 20:
        log.warning("calibrating on %d %s images only: p_error will be rough", len(dataset), opts.split)
    held = list(_images(dataset, predict, k, opts, opts.split)) if len(dataset) <= 64 else None

    def images():
        return held if held is not None else _images(dataset, predict, k, opts, opts.split)

    ctx = _context(images(), source.classes)
    copies = opts.copies_for(len(dataset))
    rows = _Rows()
    _copies_rows(rows, images(), ctx, source.classes, copies, np.random.default_rng(opts.seed))
    n_planted = _planted_rows(rows, planted, source, size, channel_order, predict, k, ctx, opts)
    return CalibrationRows(*rows.arrays(), ctx, len(dataset), copies, n_planted)


def calibrate_teacher(source, size: int, channel_order: str, predict: Predict, k: int,
                      teacher: str, checkpoint: Path, opts: CalibrationOptions,
                      planted: Planted | None = None) -> Calibrator:
    """Fit the scorer of teacher k (see the module docstring)."""
    t0 = time.perf_counter()
    r = calibration_rows(source, size, channel_order, predict, k, opts, planted)
    x, y = r.x, r.y
    trained = x[:, -1] > 0
    if y.sum() < 2 or (~y).sum() < 2:
        raise ValueError(f"{source.root}: too few candidates to calibrate on ({int(y.sum())} "
                         f"errors, {int((~y).sum())} clean) in {r.n_images} {opts.split} images; "
                         "scan with --scorer rules")
    weight = _balance(trained)
    model = fit_model(x, y, opts.seed, weight)
    facts = _cross_validated_facts(x, y, r.groups, weight, trained, opts.seed)
    import sklearn

    info = CalibrationInfo(teacher, str(checkpoint), opts.split, r.n_images, r.copies, len(y),
                           int(y.sum()), float(y.mean()), time.perf_counter() - t0,
                           facts["ece"], facts["auc"], [*FEATURES, TRAINED], sklearn.__version__,
                           facts["table"], facts["prior_stored"], planted_images=r.n_planted,
                           planted_candidates=int(trained.sum()),
                           planted_errors=int(y[trained].sum()), cv_ece_val=facts["ece_val"])
    log.info("calibration of %s on %d %s images x %d copies and %d planted training images: "
             "%d candidates, %d errors, cv ECE %.3f (val copies %.3f), cv AUC %.3f, %.1f s",
             teacher, r.n_images, opts.split, r.copies, r.n_planted, len(y), int(y.sum()),
             info.cv_ece, info.cv_ece_val, info.cv_auc, info.seconds)
    return Calibrator(model, info, r.context)


def _context(images, classes) -> TeacherContext:
    """Per-class thresholds and the teacher's confusion on the given labels."""
    c = classes.num_classes
    stats, confusion = ConfidenceStats(c), np.zeros((c, c))
    for probs, label, _, _ in images:
        stats.update(probs, label)
        valid = label != IGNORE_INDEX
        confusion += np.bincount(label[valid].astype(np.int64) * c + probs.argmax(0)[valid],
                                 minlength=c * c).reshape(c, c)
    return teacher_context(stats, confusion, classes.flip_pairs)


def _candidate_rows(rows: _Rows, probs: np.ndarray, label: np.ndarray, noisy: np.ndarray,
                    edges: np.ndarray, ctx: TeacherContext, group: int, trained: bool,
                    pred_top=None) -> None:
    """The candidates of `noisy` against the teacher, labelled by the errors `noisy != label`."""
    pred, top = pred_top if pred_top is not None else top_class(probs)
    cands = find_candidates(probs, noisy, self_confidence(probs, noisy), pred, top, ctx, edges)
    rows.add(cands, candidate_truth(cands, noisy != label), group, trained)


def _copies_rows(rows: _Rows, images, ctx: TeacherContext, classes, copies: int,
                 rng: np.random.Generator) -> None:
    """Rows of every candidate of `copies` corrupted copies of each held-out label."""
    for i, (probs, label, edges, _) in enumerate(images):
        pred_top = top_class(probs)
        for _ in range(copies):
            noisy, _ = corrupt(label, rng, classes.num_classes, classes.flip_pairs)
            _candidate_rows(rows, probs, label, noisy, edges, ctx, i, False, pred_top)


def _planted_rows(rows: _Rows, planted: Planted | None, source, size: int, channel_order: str,
                  predict: Predict, k: int, ctx: TeacherContext, opts: CalibrationOptions) -> int:
    """Rows of the planted training images: their planted labels against the teacher that
    trained on them, the planted errors as truth. Returns the number of images used."""
    if not planted:
        return 0
    ds = ScanDataset(source, "train", size=size, augment=False, channel_order=channel_order,
                     labels_dir=planted.labels_dir)
    ds.records = [r for r in ds.records if r.id in planted]
    n = 0
    for probs, label, edges, rid in _images(ds, predict, k, opts, "planted"):
        _candidate_rows(rows, probs, label, planted.label(rid), edges, ctx, -1 - n, True)
        n += 1
    return n


def _balance(trained: np.ndarray) -> np.ndarray | None:
    """Row weights under which the planted rows weigh as much as the val copies'; None when
    only one of the two is there. Uniform weights are passed as none: the library then finds
    the same bin edges unweighted, where with weights it finds them one percentile at a time
    (scikit-learn 1.9: 3.8 s instead of 0.04 s for 22,702 rows x 23 features, per fit)."""
    if not (trained.any() and (~trained).any()):
        return None
    w = np.ones(len(trained))
    w[trained] = (~trained).sum() / trained.sum()
    return w


def _cross_validated_facts(x: np.ndarray, y: np.ndarray, groups: np.ndarray,
                           weight: np.ndarray | None, trained: np.ndarray, seed: int) -> dict:
    """ECE, AUC and reliability of the model's out-of-image probabilities (each image's
    candidates scored by a model fitted without that image) on the rows like those a scan of
    the training split meets (the planted ones when there are any), the ECE on the val copies,
    and the share of errors among the candidates it would store (p >= FLOOR)."""
    from sklearn.metrics import roc_auc_score

    cv = cross_validated(x, y, groups, seed, weight)
    ok = ~np.isnan(cv)
    scan_like = ok & (trained if trained.any() else np.ones(len(y), bool))
    p, t = cv[scan_like], y[scan_like]
    val = ok & ~trained
    both = len(np.unique(t)) == 2
    return {"ece": expected_calibration_error(p, t), "table": reliability(p, t),
            "ece_val": expected_calibration_error(cv[val], y[val]),
            "auc": float(roc_auc_score(t, p)) if both else float("nan"),
            "prior_stored": float(t[p >= FLOOR].mean()) if (p >= FLOOR).any() else float("nan")}


def _stamp(files: list[Path], source, teacher) -> str:
    """What a stored calibration must have been made from to be reused (its options may
    differ: `labelaudit calibrate` sets them, `scan` reuses the result): the files, the
    dataset and the teacher's description (its test-time views among it)."""
    parts = []
    for f in files:
        st = Path(f).stat()
        parts.append(f"{Path(f).resolve()}|{st.st_mtime_ns}|{st.st_size}")
    described = json.dumps(teacher.describe(), sort_keys=True)
    return "|".join([*parts, str(Path(source.root).resolve()), described])


def planted_of(run_dir: Path, teachers) -> Planted | None:
    """The planted labels a calibration of these teachers learns from: their run's own, when
    the run's one teacher (a network or its snapshot ensemble) trained on them; None for K-fold
    teachers (they score images they never trained on) and for teachers from files."""
    if teachers.data is None or len(teachers.teachers) != 1:
        return None
    return load_planted(run_dir)


def load_or_calibrate(run_dir: Path, teachers, k: int, source, predict: Predict,
                      opts: CalibrationOptions, force: bool = False) -> Calibrator:
    """Teacher k's calibration from the run folder, fitted (and stored) when missing, stale
    (another checkpoint or dataset) or `force`d."""
    t = teachers.teachers[k]
    path = calibration_path(run_dir, teachers.name, k, len(teachers.teachers), opts.planted)
    planted = planted_of(run_dir, teachers) if opts.planted else None
    stamp = _stamp([*t.files(), *([Path(run_dir) / PLANTED_INDEX] if planted else [])], source, t)
    if path.exists() and not force:
        try:
            cal = Calibrator.load(path)
        except ValueError as err:  # an older format or a damaged file: fit it again
            log.info("%s; calibrating again", err)
        else:
            if cal.info.checkpoint == stamp:
                return cal
            log.info("%s: made from another checkpoint or dataset; calibrating again", path)
    cal = calibrate_teacher(source, teachers.size, teachers.channel_order, predict, k,
                            teachers.name, stamp, opts, planted)
    cal.save(path)
    return cal


def calibrate_run(scan: Any, opts: CalibrationOptions | None = None) -> list[tuple[Path, Calibrator]]:
    """Fit (again) and store the calibration of every teacher a scan with options `scan`
    (a ScanOptions: run folder, teacher, files, dataset) would use."""
    from labelaudit.scan.forward import device_named, teacher_predictor

    opts = opts or CalibrationOptions()
    teachers = scan.teachers(device_named(scan.device))
    source = scan.source(teachers)
    predict = teacher_predictor(teachers, source.classes)
    n = len(teachers.teachers)
    return [(calibration_path(scan.run_dir, teachers.name, k, n, opts.planted),
             load_or_calibrate(scan.run_dir, teachers, k, source, predict, opts, force=True))
            for k in range(n)]
