"""`labelaudit scan`: stream a split through the teacher(s), score, and store the findings.

Memory is flat in the number of images: one batch of probabilities lives at a time, results go
to the store in one transaction per few batches (`ScanWriter`), and per-class totals are
running sums. A scan that stops (crash, Ctrl-C) is resumed by the next identical `scan`: images
already scored are skipped, so nothing is written twice.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.data import DataLoader

from labelaudit.data.classes import IGNORE_INDEX
from labelaudit.files import sha256_file
from labelaudit.predict import AUDIT_VIEWS, Views
from labelaudit.scan.forward import (  # noqa: F401  (ScanDataset, scan_collate: public here too)
    Predict, ScanDataset, device_named, forward, scan_collate, teacher_predictor,
)
from labelaudit.data.planted import Planted
from labelaudit.scan.calibrate import CalibrationOptions, load_or_calibrate, planted_of
from labelaudit.scan.calibrated import CalibratedScorer, SplitEstimate, finalise_scores
from labelaudit.scan.heap import HeapTrimmer, long_lived_frozen
from labelaudit.scan.layout import MAPS_KEY, ScanMaps, encode_maps
from labelaudit.scan.memorisation import learnt_pixels, region_agreement
from labelaudit.scan.progress import rank_entry, totals, with_rank
from labelaudit.scan.score import ConfidenceStats, ImageAudit, Region, ScanParams, audit_image
from labelaudit.teachers import TeacherSet, open_teachers
from labelaudit.distributed import (
    Dist, all_reduce_mean, barrier, broadcast_object, release, setup_distributed,
)
from labelaudit.store import (
    Dataset, FindingRecord, ImageResult, ImageRow, Run, Store, default_db_url, open_db, repo,
)

log = logging.getLogger(__name__)

ImageHook = Callable[["ScoredImage"], None]
"""Called per scanned image with its record, image id, probs (C,H,W), given label (H,W) and
audit (before the end of a calibrated scan moves its scores to the split's prior)."""



@dataclass
class ScanOptions:
    """What to scan and how.

    `run_dir` is a `labelaudit train` run directory whose `teacher` judges, or, with `checkpoints`
    or `probs` (their mean when several), the folder the scan keeps its maps and calibration in;
    such a scan is told its dataset (`dataset` kind and `root`).
    """

    run_dir: Path
    split: str = "train"
    teacher: str = "auto"
    tta: bool | None = None  # also average each view with its mirror image (None: see `views`)
    scales: tuple[float, ...] | None = None  # test-time input scales (None: see `views`)
    db_url: str | None = None
    root: Path | None = None  # dataset root, when it moved since training
    labels_dir: Path | None = None  # scan a corrected label tree instead of the source's labels
    batch_size: int = 8
    workers: int = 0
    limit: int | None = None  # first N images only (benchmarks)
    maps: bool = True  # store teacher argmax and suspicion PNGs (the review shows them)
    resume: bool = True
    device: str = "auto"
    params: ScanParams = field(default_factory=ScanParams)
    progress: bool = True
    scorer: str = "calibrated"  # or "rules" (the hand-set rules of scan.score)
    precision: float = 0.8  # calibrated: list the findings whose expected precision meets this
    calibration: CalibrationOptions = field(default_factory=CalibrationOptions)
    recalibrate: bool = False  # fit the calibration again even when the run folder has one
    purpose: str = "audit"  # "bench": a benchmark's scan, never the default of review / export
    prior_shift: bool = True  # calibrated: move p_error to the split's estimated share of errors
    checkpoints: tuple[Path, ...] = ()  # checkpoint files (ours or the reference's) as the teacher
    probs: tuple[Path, ...] = ()  # probability-map folders (teachers.probs) as the teacher
    dataset: str | None = None  # dataset kind for checkpoint / probs teachers (with `root`)

    def views(self) -> Views:
        """The network teachers' test-time views: `tta` and `scales` where given, else those of
        AUDIT_VIEWS; a scan of probability maps alone takes them as written (one plain pass)."""
        default = Views() if self.probs and not self.checkpoints else AUDIT_VIEWS
        return Views(default.flip if self.tta is None else self.tta,
                     default.scales if self.scales is None else tuple(self.scales))

    def teachers(self, device: torch.device | None = None) -> TeacherSet:
        return open_teachers(self.run_dir, self.teacher, checkpoints=self.checkpoints,
                             probs=self.probs, device=device, views=self.views(), root=self.root)

    def source(self, teachers: TeacherSet):
        """The dataset to scan: the one named here, else the teachers' training run's."""
        from labelaudit.data import open_source

        if self.dataset is not None or teachers.data is None:
            if self.dataset is None or self.root is None:
                raise ValueError("a scan with --checkpoint or --probs needs --dataset and --root")
            return open_source(self.dataset, self.root)
        return teachers.data.open_source()  # at `root` when given (`teachers` put it there)


@dataclass
class ScanResult:
    """What one `scan` call did; timings split into the teacher forward and the scan's own work."""

    run_id: int
    db_url: str
    teacher: str
    n_images: int
    n_scored_now: int
    n_resumed: int
    bad: list[tuple[str, str]]
    maps_dir: Path | None  # where readers that need files get the stored maps (ScanMaps)
    seconds: float = 0.0
    load_seconds: float = 0.0
    forward_seconds: float = 0.0
    own_seconds: float = 0.0  # scoring + regions + maps + DB writes
    hook_seconds: float = 0.0  # time spent in the caller's on_image (not the scan's)
    calibration_seconds: float = 0.0  # fitting the scorer (once per dataset and teacher)
    rank: int = 0  # this process's rank in a sharded scan (torchrun); only rank 0 reports
    estimate: SplitEstimate | None = None  # calibrated scans: the split's errors and the list

    @property
    def images_per_s(self) -> float:
        return self.n_scored_now / self.seconds if self.seconds > 0 else 0.0

    @property
    def overhead(self) -> float:
        """The scan's own work as a fraction of the teacher forward time."""
        return self.own_seconds / self.forward_seconds if self.forward_seconds > 0 else 0.0


def _sha256(path: Path) -> str | None:
    try:
        return sha256_file(path)
    except OSError:
        return None


def index_images(store: Store, source, split: str, records, labels_dir: Path | None = None):
    """Register the dataset and the split's images in the store; {record id: image id}."""
    with store.session() as s:
        ds = repo.get_or_create_dataset(s, source.kind, str(source.root), list(source.classes.names),
                                        getattr(source, "merge_order", None))
        rows = []
        for rec in records:
            single = not rec.label_parts
            label_file = (labels_dir / source.label_relpath(rec)) if labels_dir else rec.label_path
            rows.append(ImageRow(split, str(source.image_relpath(rec)), str(source.label_relpath(rec)),
                                 _sha256(label_file) if single or labels_dir else None))
        ids = repo.upsert_images(s, ds, rows)
        dataset_id = ds.id
    return dataset_id, {rec.id: ids[str(source.image_relpath(rec))] for rec in records}


def _thresholds(teachers: TeacherSet, source, opts: ScanOptions, predict: Predict
                ) -> list[np.ndarray]:
    """Per-teacher confident thresholds: saved val calibration, else a pass over the val split."""
    out = []
    c = source.classes.num_classes
    for k, t in enumerate(teachers.teachers):
        stats = ConfidenceStats(c)
        if t.calibration:
            stats.sum = np.asarray(t.calibration["class_confidence_sum"], dtype=np.float64)
            stats.count = np.asarray(t.calibration["class_pixel_count"], dtype=np.int64)
        else:
            log.info("%s: no saved calibration; measuring thresholds on the val split", t.name)
            val = ScanDataset(source, "val", size=teachers.size, augment=False,
                              channel_order=teachers.channel_order)
            for batch in DataLoader(val, batch_size=opts.batch_size, collate_fn=scan_collate):
                if "image" in batch:
                    for p, label in zip(predict(k, batch), batch["label_orig"]):
                        stats.update(p, label)
        out.append(stats.thresholds(opts.params.threshold_floor))
    return out


def _scan_config(opts: ScanOptions, teachers: TeacherSet) -> dict[str, Any]:
    """The part of the options that defines "the same scan" (a resume must match it)."""
    return {"run_dir": str(Path(opts.run_dir).resolve()), "split": opts.split,
            "labels_dir": str(opts.labels_dir) if opts.labels_dir else None, "limit": opts.limit,
            "scorer": opts.scorer, "purpose": opts.purpose,
            **({"params": vars(opts.params)} if opts.scorer == "rules" else
               {"precision": opts.precision, "prior_shift": opts.prior_shift}),
            **teachers.describe()}


def _find_resumable(store: Store, dataset_id: int, config: dict[str, Any]) -> int | None:
    from sqlalchemy import select

    with store.session() as s:
        runs = s.scalars(select(Run).where(Run.kind == "scan", Run.dataset_id == dataset_id,
                                           Run.status.in_(("running", "interrupted", "failed")))
                         .order_by(Run.id.desc())).all()
        for r in runs:
            if {k: r.config.get(k) for k in config} == config:
                return r.id
    return None


@dataclass
class _Plan:
    """Everything a scan needs before its first batch (see `_plan`)."""

    store: Store
    db_url: str
    run_id: int
    teachers: TeacherSet
    dataset: ScanDataset
    image_ids: dict[str, int]  # record id -> image id
    todo: list[int]  # dataset indices still to score
    maps: ScanMaps | None
    thresholds: list[np.ndarray]  # per teacher, (C,)
    predict: Predict
    scorer: CalibratedScorer | None = None  # None: the rules
    calibration_seconds: float = 0.0
    rank: int = 0  # of a sharded scan (torchrun); 0 alone
    n_left: int = 0  # images of the split still to score, by all ranks together
    planted: Planted | None = None  # the teacher's planted training labels (a train-split scan)


@dataclass
class ScoredImage:
    """One image's audit with what it was made from (the probabilities are not stored)."""

    record: Any
    image_id: int
    label: np.ndarray  # (H, W) given label, original frame
    probs: np.ndarray  # (C, H, W)
    audit: ImageAudit
    agreement: list[float] | None = None  # per region: an ensemble's members that see it
    learnt_pixels: int | None = None  # scan.memorisation (ensembles only)


def add_memorisation_evidence(scored: list[ScoredImage], votes: list[np.ndarray] | None) -> None:
    """An ensemble teacher's votes -> each region's agreement and each image's learnt pixels."""
    if votes is None:
        return
    for im, v in zip(scored, votes):
        im.agreement = [region_agreement(v, r.bbox, r.mask, r.suggested) for r in im.audit.regions]
        im.learnt_pixels = learnt_pixels(v, im.label)


def _open_run(store: Store, dataset_id: int, config: dict[str, Any], opts: ScanOptions,
              teachers: TeacherSet, seed: int) -> tuple[int, set[int]]:
    """(scan run id, ids of the images it already scored): a resumable run, or a new one."""
    run_id = _find_resumable(store, dataset_id, config) if opts.resume else None
    with store.session() as s:
        if run_id is None:
            run = repo.start_run(s, "scan", s.get(Dataset, dataset_id), config, seed=seed,
                                 checkpoint=teachers.teachers[0].files()[0])
            repo.add_run_config(s, run, {MAPS_KEY: ScanMaps.new_folder(run.id)})
        else:
            run = s.get(Run, run_id)
            log.info("resuming scan run %d", run_id)
        return run.id, repo.scored_image_ids(s, run)


def _plan(opts: ScanOptions, store: Store, db_url: str, dist: Dist, predict: Predict | None) -> _Plan:
    """Teachers, dataset, the scan run (new or resumed), this rank's images, thresholds or the
    calibration.

    Sharded (torchrun): rank 0 indexes the images, opens the run, fits a missing calibration and
    lists the images still to score; it broadcasts the run id and that list, and rank r scores
    every world-th image of it from r on. A resume with another number of ranks neither repeats
    nor loses an image (the list is made from the store each time).
    """
    teachers = opts.teachers(dist.device)
    source = opts.source(teachers)
    dataset = ScanDataset.for_teachers(source, opts.split, teachers, opts.limit, opts.labels_dir)
    predict = predict or teacher_predictor(teachers, source.classes)
    t0 = time.perf_counter()
    shared = None
    if dist.is_master:
        dataset_id, image_ids = index_images(store, source, opts.split, dataset.records, opts.labels_dir)
        run_id, done = _open_run(store, dataset_id, _scan_config(opts, teachers), opts, teachers,
                                 teachers.seed)
        calibrators = _calibrators(opts, teachers, source, predict)
        shared = (run_id, [i for i, rec in enumerate(dataset.records) if image_ids[rec.id] not in done])
    run_id, todo = broadcast_object(shared, dist)
    if not dist.is_master:  # the rows exist now: indexing again only reads their ids
        _, image_ids = index_images(store, source, opts.split, dataset.records, opts.labels_dir)
        calibrators = _calibrators(opts, teachers, source, predict)  # rank 0 stored them
    n_left, todo = len(todo), todo[dist.rank::dist.world_size]
    with store.session() as s:  # the run row, once: its maps folder and this rank's histogram
        row = s.get(Run, run_id)
        maps = ScanMaps.of(row) if opts.maps else None
        hist = rank_entry(row.progress, dist.rank).get("p_hist")
    planted = planted_of(opts.run_dir, teachers) if opts.split == "train" else None
    if calibrators is None:
        thresholds = _thresholds(teachers, source, opts, predict)
        return _Plan(store, db_url, run_id, teachers, dataset, image_ids, todo, maps, thresholds,
                     predict, rank=dist.rank, n_left=n_left, planted=planted)
    scorer = CalibratedScorer(calibrators, hist, on_training_images=opts.split == "train")
    return _Plan(store, db_url, run_id, teachers, dataset, image_ids, todo, maps,
                 [c.context.thresholds for c in calibrators], predict, scorer,
                 time.perf_counter() - t0, dist.rank, n_left, planted)


def _calibrators(opts: ScanOptions, teachers: TeacherSet, source, predict: Predict):
    """The teachers' calibrations (fitted when missing), or None for the rules."""
    if opts.scorer == "rules":
        return None
    return [load_or_calibrate(opts.run_dir, teachers, k, source, predict, opts.calibration,
                              opts.recalibrate) for k in range(len(teachers.teachers))]


def score_batch(plan: _Plan, batch: dict[str, Any], probs: list[np.ndarray],
                params: ScanParams) -> list[ScoredImage]:
    """The audit of every image of a batch: pure (no files but the planted labels, no store)."""
    recs = [plan.dataset.records[i] for i in batch["index"].tolist()]
    labels = batch["label_orig"]
    if plan.scorer is not None:
        audits = plan.scorer.audit_batch(
            [(plan.teachers.for_record(rec.id), p, lb, e)
             for rec, p, lb, e in zip(recs, probs, labels, batch["edges"])],
            with_heatmap=plan.maps is not None)
    else:
        audits = [audit_image(p, lb, plan.thresholds[plan.teachers.for_record(rec.id)], params,
                              with_heatmap=plan.maps is not None)
                  for rec, p, lb in zip(recs, probs, labels)]
    if plan.planted is not None:
        for rec, lb, a in zip(recs, labels, audits):
            if rec.id in plan.planted:
                changed = plan.planted.changed(rec.id, lb)
                a.regions = [r for r in a.regions if not on_planted(r, changed)]
    return [ScoredImage(rec, plan.image_ids[rec.id], lb, p, a)
            for rec, lb, p, a in zip(recs, labels, probs, audits)]


def on_planted(region: Region, changed: np.ndarray) -> bool:
    """Whether at least half of a region lies where an error was planted in the training label
    (`changed`, (H, W) bool): the teacher learnt that error, the given label is right there."""
    x, y, w, h = region.bbox
    return bool(changed[y:y + h, x:x + w][region.mask].mean() >= 0.5)


class ScanWriter:
    """Writes a scan's results: one short transaction per `every` images (or `seconds`,
    whichever comes first) for their scores, findings, maps (PNG bytes), image sizes and this
    rank's part of the run's progress (class pixel counts, bad inputs, the calibrated scorer's
    histogram: `scan.progress`). `flush` stores what waits; the scan calls it at its end,
    Ctrl-C included, so a hard kill loses at most that many images' rows (a resumed scan scores
    them again). Measured: a transaction costs ~4 ms, a write per 8-image batch was ~0.5 ms of
    the scan's own ~5 ms per image (docs/experiments.md, stop 24)."""

    def __init__(self, store: Store, run_id: int, num_classes: int,
                 scorer: CalibratedScorer | None = None, rank: int = 0, every: int = 32,
                 seconds: float = 5.0) -> None:
        self.store, self.run_id, self.scorer, self.rank = store, run_id, scorer, rank
        self.every, self.seconds = every, seconds
        with store.session() as s:
            mine = rank_entry(s.get(Run, run_id).progress, rank)
        self.class_pixels = np.zeros(num_classes, np.int64)
        self.class_pixels += np.asarray(mine.get("class_pixels") or self.class_pixels, np.int64)
        self.bad_inputs = [list(b) for b in mine.get("bad_inputs", [])]
        self._results: list[ImageResult] = []
        self._frames: dict[int, tuple[int, int]] = {}  # the label frame of each image, for masks
        self._last = time.perf_counter()

    def write(self, scored: list[ScoredImage], bad: list[tuple[str, str]]) -> int:
        """Take one batch, store the rows when enough wait; returns how many images were new to
        the run among those stored by this call."""
        c = len(self.class_pixels)
        for im in scored:
            valid = im.label != IGNORE_INDEX
            self.class_pixels += np.bincount(im.label[valid].ravel(), minlength=c)[:c]
            self._results.append(_result(im))
            self._frames[im.image_id] = im.label.shape[:2]
        self.bad_inputs += [list(b) for b in bad if list(b) not in self.bad_inputs]
        due = len(self._results) >= self.every or time.perf_counter() - self._last >= self.seconds
        return self.flush() if due or bad else 0

    @property
    def waiting(self) -> int:
        """Images scored but not yet stored."""
        return len(self._results)

    def flush(self) -> int:
        """Store every waiting image (and the progress up to them) in one transaction."""
        self._last = time.perf_counter()
        entry = {"class_pixels": self.class_pixels.tolist(), "bad_inputs": self.bad_inputs,
                 **({"p_hist": [h.tolist() for h in self.scorer.hist]} if self.scorer else {})}
        results, frames, self._results, self._frames = self._results, self._frames, [], {}
        with self.store.session() as s:
            return repo.write_scan_batch(s, s.get(Run, self.run_id), results, frames=frames,
                                         progress=lambda p: with_rank(p, self.rank, entry))


def _result(im: ScoredImage) -> ImageResult:
    """What the store keeps of a scored image."""
    a = im.audit
    agreement = im.agreement or [None] * len(a.regions)
    maps = None if a.prediction is None or a.suspicion is None else encode_maps(a.prediction, a.suspicion)
    return ImageResult(im.image_id, a.label_quality, a.n_suspect_pixels,
                       [FindingRecord(r.given, r.suggested, r.kind, r.score, r.area, r.bbox, r.mask,
                                      agreement=g) for r, g in zip(a.regions, agreement)],
                       a.mean_self_confidence, im.learnt_pixels, maps)


def run_scan(opts: ScanOptions, on_image: ImageHook | None = None,
             predict: Predict | None = None) -> ScanResult:
    """Scan `opts.split` of the run's dataset; see the module docstring.

    `on_image` sees every scored image (the benchmark scores cleanlab on the same
    probabilities); `predict` replaces the networks' forward pass (default: the run's teachers).
    Under torchrun every rank scores its shard (see `_plan`); rank 0 then ends the run (the
    calibrated scorer's final step over the whole split) while the others wait.
    """
    t0 = time.perf_counter()
    dist = setup_distributed()
    try:
        if opts.device != "auto":
            dist = replace(dist, device=device_named(opts.device))
        return _run(opts, on_image, predict, dist, t0)
    finally:
        release(dist)


def _run(opts: ScanOptions, on_image: ImageHook | None, predict: Predict | None, dist: Dist,
         t0: float) -> ScanResult:
    """`run_scan` once the process group is there."""
    db_url = opts.db_url or default_db_url(opts.run_dir)
    store = open_db(db_url)
    try:
        plan = _plan(opts, store, db_url, dist, predict)
        n = len(plan.dataset.records)
        result = ScanResult(plan.run_id, db_url, plan.teachers.name, n, 0, n - plan.n_left, [],
                            plan.maps.root if plan.maps else None,
                            calibration_seconds=plan.calibration_seconds, rank=dist.rank)
        status = "failed"
        try:
            _scan_batches(plan, opts, on_image, result)
            # every shard is in the store (the reduction is also the ranks' meeting point)
            result.n_scored_now = round(all_reduce_mean(result.n_scored_now, dist) * dist.world_size)
            if plan.scorer is not None and dist.is_master:
                result.estimate = _finalise(plan, opts.precision, opts.prior_shift)
            status = "done"
        except KeyboardInterrupt:
            status = "interrupted"
            raise
        finally:
            if dist.is_master:
                with store.session() as s:
                    repo.finish_run(s, s.get(Run, plan.run_id), status)
        barrier(dist)  # the run is finished for every rank's caller
        result.seconds = time.perf_counter() - t0
        return result
    finally:
        store.close()


def _scan_batches(plan: _Plan, opts: ScanOptions, on_image: ImageHook | None, result: ScanResult) -> None:
    """load -> forward -> score -> write, batch by batch, timing each part."""
    from tqdm.auto import tqdm

    loader = DataLoader(torch.utils.data.Subset(plan.dataset, plan.todo), batch_size=opts.batch_size,
                        shuffle=False, num_workers=opts.workers, collate_fn=scan_collate)
    writer = ScanWriter(plan.store, plan.run_id, plan.dataset.source.classes.num_classes,
                        plan.scorer, plan.rank)
    bar = tqdm(total=len(plan.todo), desc=f"scan {opts.split}", unit="img",
               disable=None if opts.progress else True)
    try:
        with long_lived_frozen():
            _batches(plan, opts, loader, writer, on_image, result, bar)
    except BaseException:  # Ctrl-C included: keep what was scored
        n = writer.waiting
        try:
            if n:
                writer.flush()
        except Exception:  # the store itself failed: say so, raise the first error
            log.exception("could not store the last %d scored images", n)
        raise
    finally:
        bar.close()
    t_own = time.perf_counter()
    if writer.waiting:
        result.n_scored_now += writer.flush()
    result.own_seconds += time.perf_counter() - t_own


def _batches(plan: _Plan, opts: ScanOptions, loader: DataLoader, writer: ScanWriter,
             on_image: ImageHook | None, result: ScanResult, bar) -> None:
    """The loop of `_scan_batches`."""
    trim_heap = HeapTrimmer()
    t_load = time.perf_counter()
    for batch in loader:
        t_fwd = time.perf_counter()
        result.load_seconds += t_fwd - t_load
        result.bad.extend(batch["bad"])
        for path, problem in batch["bad"]:
            log.warning("skipping bad input: %s: %s", path, problem)
        scored: list[ScoredImage] = []
        hook_seconds = 0.0
        t_own = t_fwd
        if "image" in batch:
            probs = forward(plan.teachers, batch, plan.dataset.records, plan.predict)
            t_own = time.perf_counter()
            result.forward_seconds += t_own - t_fwd
            scored = score_batch(plan, batch, probs, opts.params)
            if len(plan.teachers.teachers) == 1:
                add_memorisation_evidence(scored, plan.teachers.teachers[0].votes())
            if on_image is not None:
                t_hook = time.perf_counter()
                for im in scored:
                    on_image(im)
                hook_seconds = time.perf_counter() - t_hook
        result.n_scored_now += writer.write(scored, batch["bad"])
        trim_heap()
        t_load = time.perf_counter()
        if scored:
            result.own_seconds += t_load - t_own - hook_seconds
        result.hook_seconds += hook_seconds
        bar.update(len(scored) + len(batch["bad"]))


def _finalise(plan: _Plan, precision: float, shift: bool) -> SplitEstimate:
    """The end of a calibrated scan: the split's prior, p_error, the list, image qualities."""
    assert plan.scorer is not None
    teacher_of = {plan.image_ids[r.id]: plan.teachers.for_record(r.id) for r in plan.dataset.records}
    with plan.store.session() as s:
        run = s.get(Run, plan.run_id)
        progress = dict(run.progress or {})
        if "estimate" in progress:  # finalised already (a resumed scan that had nothing left)
            return SplitEstimate(**progress["estimate"])
        found, quality = repo.scan_scores(s, run)
        hist = [np.asarray(h, np.int64) for h in totals(progress)["p_hist"]]
        est, scores, drop, new_quality = finalise_scores(plan.scorer.calibrators, hist, found,
                                                          quality, teacher_of, precision, shift)
        repo.rescore_scan(s, run, scores, drop, new_quality, {**progress, "estimate": est.to_json()})
    log.info("scan %d: about %.0f label errors among %d candidates; %d findings listed at "
             "expected precision %.2f (p_error >= %.3f)", plan.run_id, est.expected_errors,
             est.n_candidates, est.n_listed, est.expected_precision, est.cutoff)
    return est
