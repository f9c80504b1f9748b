"""`labelaudit scan`: stream a split through the teacher(s), score, and store the findings.

Memory is flat in the number of images: one batch of probabilities lives at a time, results go
to the store in one transaction per batch, and per-class totals are running sums. A scan that
stops (crash, Ctrl-C) is resumed by the next identical `scan`: images already scored are
skipped, so nothing is written twice.
"""
from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader

from labelaudit.data import FaceParsingDataset, collate
from labelaudit.data.errors import BadInputError
from labelaudit.scan.score import ConfidenceStats, ImageAudit, ScanParams, audit_image
from labelaudit.scan.teachers import TeacherSet, describe, load_teachers
from labelaudit.store import (
    Dataset, FindingRecord, Image, ImageResult, ImageRow, Run, Store, default_db_url, open_db, repo,
)

log = logging.getLogger(__name__)

ImageHook = Callable[[Any, np.ndarray, np.ndarray, ImageAudit], None]
"""Called per scanned image with (record, probs (C,H,W), given label (H,W), audit)."""

Predict = Callable[[int, dict[str, Any]], list[np.ndarray]]
"""(teacher index, collated batch) -> per-image (C, H, W) probabilities in the original frame."""


@dataclass
class ScanOptions:
    """What to scan and how. `run_dir` is a `labelaudit train` run directory."""

    run_dir: Path
    split: str = "train"
    teacher: str = "auto"
    tta: bool = False
    db_url: str | None = None
    root: Path | None = None  # dataset root, when it moved since training
    labels_dir: Path | None = None  # scan a corrected label tree instead of the source's labels
    batch_size: int = 8
    workers: int = 0
    limit: int | None = None  # first N images only (benchmarks)
    maps: bool = True  # write teacher argmax and suspicion PNGs (the review shows them)
    resume: bool = True
    device: str = "auto"
    params: ScanParams = field(default_factory=ScanParams)
    progress: bool = True


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
    maps_dir: Path | None
    seconds: float = 0.0
    load_seconds: float = 0.0
    forward_seconds: float = 0.0
    own_seconds: float = 0.0  # scoring + regions + maps + DB writes
    hook_seconds: float = 0.0  # time spent in the caller's on_image (not the scan's)

    @property
    def images_per_s(self) -> float:
        return self.n_scored_now / self.seconds if self.seconds > 0 else 0.0

    @property
    def overhead(self) -> float:
        """The scan's own work as a fraction of the teacher forward time."""
        return self.own_seconds / self.forward_seconds if self.forward_seconds > 0 else 0.0


class ScanDataset(FaceParsingDataset):
    """Non-augmented samples that also carry the label in its original frame.

    A sample whose files cannot be read comes back as {"bad": (path, problem)} instead of
    raising, so the scan reports it and goes on.
    """

    def __getitem__(self, index: int) -> dict[str, Any]:
        rec = self.records[index]
        try:
            image, label = self.source.load_pair(rec, self.labels_dir)
        except BadInputError as err:
            return {"bad": (str(err.path), err.problem), "index": index}
        item = self._item(index, image, label)
        item["label_orig"] = label
        return item


def scan_collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """`collate` for the good items; the bad ones are listed under "bad"."""
    good = [it for it in items if "bad" not in it]
    batch = collate(good) if good else {}
    batch["bad"] = [it["bad"] for it in items if "bad" in it]
    batch["label_orig"] = [it["label_orig"] for it in good]
    return batch


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
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
            log.info("%s: no saved calibration; measuring thresholds on the val split", t.checkpoint)
            val = ScanDataset(source, "val", size=t.config.data.size, augment=False,
                              channel_order=t.config.data.channel_order)
            for batch in DataLoader(val, batch_size=opts.batch_size, collate_fn=scan_collate):
                if "image" in batch:
                    for p, label in zip(predict(k, batch), batch["label_orig"]):
                        stats.update(p, label)
        out.append(stats.thresholds(opts.params.threshold_floor))
    return out


def _scan_config(opts: ScanOptions, teachers: TeacherSet) -> dict[str, Any]:
    """The part of the options that defines "the same scan" (a resume must match it)."""
    return {"run_dir": str(opts.run_dir), "split": opts.split, "tta": opts.tta,
            "labels_dir": str(opts.labels_dir) if opts.labels_dir else None, "limit": opts.limit,
            "params": vars(opts.params), **describe(teachers)}


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


def _write_maps(maps_dir: Path, image_id: int, audit: ImageAudit) -> None:
    """The teacher argmax and suspicion PNGs of an audit made `with_heatmap`."""
    assert audit.prediction is not None and audit.suspicion is not None
    cv2.imwrite(str(maps_dir / "teacher" / f"{image_id}.png"), audit.prediction)
    cv2.imwrite(str(maps_dir / "suspicion" / f"{image_id}.png"), audit.suspicion)


class HeapTrimmer:
    """Hands the heap's free pages back to the OS after each batch (glibc `malloc_trim`).

    Each batch allocates and frees ~0.7 MB probability maps per image next to the network's
    activations; glibc keeps the freed pages, and the heap's holes made the scan's resident
    memory creep up over its first few hundred images (measured: 421 -> 448 MB over 320 images
    of the cpu preset; Python and numpy allocations themselves stay flat). Trimming once per
    batch keeps the peak flat (benchmark: 400 MB for 60 images, 397 MB for 240). A no-op where
    the C library has no `malloc_trim`.
    """

    def __init__(self) -> None:
        import ctypes

        try:  # the symbols already loaded into this process (no library search, no subprocess)
            self._trim = getattr(ctypes.CDLL(None), "malloc_trim", None)
        except OSError:
            self._trim = None

    @property
    def active(self) -> bool:
        return self._trim is not None

    def __call__(self) -> None:
        if self._trim is not None:
            self._trim(0)


def run_scan(opts: ScanOptions, on_image: ImageHook | None = None,
             predict: Predict | None = None) -> ScanResult:
    """Scan `opts.split` of the run's dataset; see the module docstring.

    `on_image` sees every scored image (the benchmark scores cleanlab on the same
    probabilities); `predict` replaces the networks' forward pass (default: the run's teachers).
    """
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    device = _device(opts.device)
    teachers = load_teachers(opts.run_dir, opts.teacher, device)
    cfg = teachers.config
    if opts.root is not None:
        cfg.data.root = Path(opts.root)
    source = cfg.data.open_source()
    classes = source.classes
    dataset = ScanDataset(source, opts.split, size=cfg.data.size, augment=False,
                          channel_order=cfg.data.channel_order, on_bad="raise",
                          labels_dir=opts.labels_dir)
    if opts.limit is not None:
        dataset.records = dataset.records[:opts.limit]
    db_url = opts.db_url or default_db_url(opts.run_dir)
    store = open_db(db_url)
    try:
        dataset_id, image_ids = index_images(store, source, opts.split, dataset.records,
                                             opts.labels_dir)
        config = _scan_config(opts, teachers)
        run_id = _find_resumable(store, dataset_id, config) if opts.resume else None
        with store.session() as s:
            if run_id is None:
                ds = s.get(Dataset, dataset_id)
                run = repo.start_run(s, "scan", ds, {**config, "class_pixels": [0] * classes.num_classes},
                                     seed=cfg.seed, checkpoint=teachers.teachers[0].checkpoint)
            else:
                run = s.get(Run, run_id)
                log.info("resuming scan run %d", run_id)
            run_id = run.id
            done = repo.scored_image_ids(s, run)
        maps_dir = None
        if opts.maps:
            maps_dir = Path(opts.run_dir) / "scans" / str(run_id)
            for sub in ("teacher", "suspicion"):
                (maps_dir / sub).mkdir(parents=True, exist_ok=True)
        todo = [i for i, rec in enumerate(dataset.records) if image_ids[rec.id] not in done]
        result = ScanResult(run_id, db_url, teachers.name, len(dataset.records), 0,
                            len(dataset.records) - len(todo), [], maps_dir)
        predict = predict or network_predictor(teachers, classes, device, opts.tta)
        thresholds = _thresholds(teachers, source, opts, predict)
        loader = DataLoader(torch.utils.data.Subset(dataset, todo), batch_size=opts.batch_size,
                            shuffle=False, num_workers=opts.workers, collate_fn=scan_collate)
        class_pixels = np.zeros(classes.num_classes, dtype=np.int64)
        status = "failed"
        try:
            with store.session() as s:
                run = s.get(Run, run_id)
                class_pixels += np.asarray(run.config.get("class_pixels", class_pixels), np.int64)
                bad_all = [list(b) for b in run.config.get("bad_inputs", [])]
                t_load = time.perf_counter()
                bar = tqdm(total=len(todo), desc=f"scan {opts.split}", unit="img",
                           disable=None if opts.progress else True)
                trim_heap = HeapTrimmer()
                for batch in loader:
                    t_fwd = time.perf_counter()
                    result.load_seconds += t_fwd - t_load
                    result.bad.extend(batch["bad"])
                    for path, problem in batch["bad"]:
                        log.warning("skipping bad input: %s: %s", path, problem)
                    if batch["bad"]:
                        bad_all.extend(list(b) for b in batch["bad"] if list(b) not in bad_all)
                        run.config = {**run.config, "bad_inputs": bad_all}
                    if "image" not in batch:
                        s.commit()
                        bar.update(len(batch["bad"]))
                        t_load = time.perf_counter()
                        continue
                    probs = _forward(teachers, batch, dataset.records, predict)
                    t_own = time.perf_counter()
                    result.forward_seconds += t_own - t_fwd
                    hook_start = result.hook_seconds
                    results = []
                    for k, idx in enumerate(batch["index"].tolist()):
                        rec = dataset.records[idx]
                        label = batch["label_orig"][k]
                        p = probs[k]
                        audit = audit_image(p, label, thresholds[teachers.for_record(rec.id)],
                                            opts.params, with_heatmap=maps_dir is not None)
                        image_id = image_ids[rec.id]
                        if maps_dir is not None:
                            _write_maps(maps_dir, image_id, audit)
                        valid = label != 255
                        class_pixels += np.bincount(label[valid].ravel(),
                                                    minlength=classes.num_classes)[:classes.num_classes]
                        results.append(ImageResult(
                            image_id, audit.label_quality, audit.n_suspect_pixels,
                            [FindingRecord(r.given, r.suggested, r.kind, r.score, r.area, r.bbox,
                                           r.mask) for r in audit.regions],
                            audit.mean_self_confidence))
                        if on_image is not None:
                            t_hook = time.perf_counter()
                            on_image(rec, p, label, audit)
                            result.hook_seconds += time.perf_counter() - t_hook
                    for res, lbl in zip(results, batch["label_orig"]):
                        im = s.get(Image, res.image_id)
                        if im is not None and im.width is None:  # the label frame, for masks
                            im.height, im.width = (int(v) for v in lbl.shape[:2])
                    run.config = {**run.config, "class_pixels": class_pixels.tolist()}
                    result.n_scored_now += repo.write_scan_batch(s, run, results)
                    trim_heap()
                    t_load = time.perf_counter()
                    result.own_seconds += t_load - t_own - (result.hook_seconds - hook_start)
                    bar.update(len(results) + len(batch["bad"]))
                bar.close()
                status = "done"
        except KeyboardInterrupt:
            status = "interrupted"
            raise
        finally:
            with store.session() as s:
                repo.finish_run(s, s.get(Run, run_id), status)
        result.seconds = time.perf_counter() - t0
        return result
    finally:
        store.close()


def network_predictor(teachers: TeacherSet, classes, device: torch.device, tta: bool) -> Predict:
    """The default Predict: teacher k's softmax in each image's original label frame."""
    from labelaudit.predict import predict_batch_probs

    amp = device.type == "cuda"

    def predict(k: int, batch: dict[str, Any]) -> list[np.ndarray]:
        return predict_batch_probs(teachers.teachers[k].model, batch, device, classes, amp=amp,
                                   flip_tta=tta)
    return predict


def _forward(teachers: TeacherSet, batch: dict[str, Any], records, predict: Predict
             ) -> list[np.ndarray]:
    """Probabilities per image of the batch, each from the teacher that scores its record."""
    which = [teachers.for_record(records[i].id) for i in batch["index"].tolist()]
    if len(set(which)) == 1:
        return predict(which[0], batch)
    out: list[np.ndarray | None] = [None] * len(which)
    for t in sorted(set(which)):
        rows = [k for k, w in enumerate(which) if w == t]
        sub = {key: (v[rows] if isinstance(v, torch.Tensor) else [v[k] for k in rows])
               for key, v in batch.items() if key != "bad"}
        for k, p in zip(rows, predict(t, sub)):
            out[k] = p
    return out  # type: ignore[return-value]
