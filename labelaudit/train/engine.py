"""The DML-CSR training loop: decoupled multi-task learning, then cyclical self-regulation.

One process or many (torchrun + DDP). Per epoch: train the student (with the teacher's soft
targets once a teacher exists), let the CSR teacher take its snapshot (labelaudit.train.teacher),
validate, checkpoint atomically. Building the data and the model is kept out of the loop
(`_build_data`, `_build_student`) so that `fit` reads in one sitting.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch.utils.data import DataLoader, DistributedSampler, Subset

from labelaudit import distributed as D
from labelaudit.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from labelaudit.train.config import TrainConfig, config_from_dict, to_toml
from labelaudit.train.runlog import append_metrics, last_scores, plot_curves, write_report
from labelaudit.train.schedule import cycle_of, in_csr, is_snapshot_epoch, learning_rate
from labelaudit.train.teacher import CSRTeacher

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
DML_STUDENT = "dml_student.pt"
BEST = "best.pt"
SNAPSHOTS = "snapshots"  # <run>/snapshots/epoch-0010.pt: the students kept (schedule.snapshots)


@dataclass
class TrainResult:
    """What a finished run reports (mean F1 in percent on the validation split)."""

    run_dir: Path
    epochs: int
    student_val: dict[str, float] = field(default_factory=dict)
    teacher_val: dict[str, float] = field(default_factory=dict)
    dml_student_val: dict[str, float] = field(default_factory=dict)
    test: dict[str, float] = field(default_factory=dict)
    best: dict[str, Any] = field(default_factory=dict)
    images_per_s: float = 0.0
    seconds: float = 0.0


@dataclass
class _Data:
    source: Any
    train_set: Any  # the FaceParsingDataset (set_epoch reseeds its augmentation)
    val_set: Any
    train_subset: Any  # the images this run trains on (a fold's subset or all)
    sampler: DistributedSampler
    loader: DataLoader


def _seed_everything(seed: int) -> None:
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _unwrap(m: torch.nn.Module) -> torch.nn.Module:
    return m.module if isinstance(m, torch.nn.parallel.DistributedDataParallel) else m


def _planted(cfg: TrainConfig, run_dir: Path, source, records, dist: D.Dist):
    """The run's planted labels: written by rank 0 (or reused on resume), read by all."""
    from labelaudit.data.planted import load_planted, plant

    d = cfg.data
    if dist.is_master:
        plant(run_dir, source, records, d.labels, d.plant, d.plant_max, cfg.seed)
    D.barrier(dist)
    return load_planted(run_dir) if d.plant > 0 else None


def _build_data(cfg: TrainConfig, dist: D.Dist, train_indices: list[int] | None,
                run_dir: Path) -> _Data:
    """Datasets, the seeded (Distributed)Sampler and the training loader."""
    from labelaudit.data import FaceParsingDataset, collate

    d, s = cfg.data, cfg.schedule
    source = d.open_source()
    for split in ("train", "val"):  # fail in seconds, not when the loader reaches a bad file
        source.preflight(split, d.on_bad)
    common = dict(size=d.size, channel_order=d.channel_order, seed=cfg.seed, on_bad=d.on_bad,
                  labels_dir=d.labels)
    train_set = FaceParsingDataset(source, "train", augment=True, scale_range=(d.scale_min, d.scale_max),
                                   rotation=d.rotation, flip=d.flip, **common)
    if train_indices is None:  # a K-fold teacher never plants (see DataConfig.plant)
        train_set.planted = _planted(cfg, run_dir, source, train_set.records, dist)
    val_set = FaceParsingDataset(source, "val", augment=False, **common)
    if len(val_set) == 0:
        log.warning("%s: the val split is empty: validation F1 is not measured (nan), and the "
                    "calibrated scan needs held-out images (`labelaudit calibrate --split`)", source.root)
    subset = Subset(train_set, train_indices) if train_indices is not None else train_set
    if len(subset) // dist.world_size < s.batch_size:
        raise ValueError(f"{d.root}: {len(subset)} training images are fewer than one batch of "
                         f"{s.batch_size} per process; lower --batch-size")
    # One sampler for one or many processes: seeded shuffle, reshuffled by set_epoch.
    sampler = DistributedSampler(subset, num_replicas=dist.world_size, rank=dist.rank, shuffle=True,
                                 seed=cfg.seed, drop_last=True)
    loader = DataLoader(subset, batch_size=s.batch_size, sampler=sampler, drop_last=True,
                        num_workers=d.workers, collate_fn=collate, persistent_workers=d.workers > 0)
    return _Data(source, train_set, val_set, subset, sampler, loader)


def _build_student(cfg: TrainConfig, num_classes: int, pretrained: bool) -> torch.nn.Module:
    from model import build_model, load_pretrained_backbone

    m = cfg.model
    net = build_model(num_classes, depth=m.depth, edges=True, conva_kernel=m.conva_kernel,
                      width=m.width, abn=m.abn)
    if m.pretrained and pretrained:
        load_pretrained_backbone(net.backbone, m.pretrained)
    return net


def _open_state(run_dir: Path, resume: bool) -> dict[str, Any] | None:
    ckpt = run_dir / CHECKPOINT
    if ckpt.exists() and not resume:
        raise FileExistsError(f"{run_dir} already holds a run ({CHECKPOINT}); pass --resume to "
                              "continue it or choose another --run")
    if resume and not ckpt.exists():
        raise CheckpointError(f"{ckpt}: nothing to resume")
    return load_checkpoint(ckpt, ("student", "epoch", "config")) if resume else None


def check_resume(run_dir: str | Path, epochs: int | None) -> tuple[int, int]:
    """Before `--resume`: (epochs done, epochs of the schedule) of the run in `run_dir`. Raises ValueError when `epochs`
    asks for another schedule than the saved one (a resumed run keeps its schedule)."""
    state = load_checkpoint(Path(run_dir) / CHECKPOINT, ("epoch", "config"))
    saved = int(state["config"]["schedule"]["epochs"])
    if epochs is not None and epochs != saved:
        raise ValueError(f"{run_dir}: --epochs {epochs}, but the run was started for {saved} "
                         f"epochs ({state['epoch']} done) and --resume keeps its schedule; "
                         "drop --epochs, or train a new --run")
    return int(state["epoch"]), saved


class Trainer:
    """Holds the model, teacher, optimiser and data of one run; `fit()` runs it to the end.

    Args:
        cfg: the resolved config (a resumed run keeps the config saved with it).
        run_dir: where checkpoints, metrics.jsonl, curves.png and report.json go.
        resume: continue the run in `run_dir` from its checkpoint.
        train_indices: train on these training-set indices only (a K-fold teacher).
        progress: progress bars (rank 0, terminals only).
        on_epoch: called on rank 0 with each epoch's metrics record.
    """

    def __init__(self, cfg: TrainConfig, run_dir: str | Path, *, resume: bool = False,
                 train_indices: list[int] | None = None, progress: bool = True,
                 on_epoch: Callable[[dict[str, Any]], None] | None = None) -> None:
        from model import convert_sync_abn
        from model.losses import DMLCSRLoss, LossWeights

        self.run_dir = Path(run_dir)
        state = _open_state(self.run_dir, resume)
        if state is not None:
            saved = config_from_dict(state["config"])
            if saved.to_dict() != cfg.to_dict():
                log.warning("resuming with the run's saved config; the given one differs")
            cfg = saved
        self.cfg, s = cfg, cfg.schedule
        self.dist = D.setup_distributed()
        self.progress = progress and self.dist.is_master
        self.on_epoch = on_epoch
        _seed_everything(cfg.seed)
        self.device = self.dist.device
        self.use_amp = cfg.amp and self.device.type == "cuda"
        self.data = _build_data(cfg, self.dist, train_indices, self.run_dir)
        self.classes = self.data.source.classes
        net = _build_student(cfg, self.classes.num_classes, pretrained=state is None)
        # The teacher keeps plain ABN (never synchronised): rank 0 re-estimates its BN alone.
        self.teacher = CSRTeacher(net, s, self.device, self.dist, self._bn_batches)
        net = (convert_sync_abn(net) if self.dist.enabled else net).to(self.device)
        if self.use_amp:
            net = net.to(memory_format=torch.channels_last)
        self.student = net if not self.dist.enabled else torch.nn.parallel.DistributedDataParallel(
            net, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.optimizer = torch.optim.SGD(self.student.parameters(), lr=s.lr, momentum=s.momentum,
                                         weight_decay=s.weight_decay)
        weights = LossWeights(edge_width=s.edge_width) if s.edge_loss else LossWeights(
            edge_width=s.edge_width, binary_edge=0.0, category_edge=0.0, binary_attention=0.0,
            category_attention=0.0)
        self.criterion = DMLCSRLoss(weights, composition=s.csr_loss)
        self.start_epoch = 0
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, Any] = {}
        self.calibration: dict[str, list] | None = None
        if state is not None:
            self._restore(state)

    # ----------------------------------------------------------------- state
    def _restore(self, state: dict[str, Any]) -> None:
        _unwrap(self.student).load_state_dict(state["student"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.teacher.load_state_dict(state)
        self.start_epoch = int(state["epoch"])
        self.history = list(state.get("history", []))
        self.best = dict(state.get("best", {}))
        self.calibration = state.get("calibration")
        torch.set_rng_state(state["rng"]["torch"])
        log.info("resumed %s at epoch %d", self.run_dir, self.start_epoch)

    def _state(self, epoch_done: int) -> dict[str, Any]:
        return {
            "format": "labelaudit-train-v1", "config": self.cfg.to_dict(), "epoch": epoch_done,
            "student": _unwrap(self.student).state_dict(), **self.teacher.state_dict(),
            "calibration": self.calibration, "optimizer": self.optimizer.state_dict(),
            "rng": {"torch": torch.get_rng_state()}, "history": self.history, "best": self.best,
            "classes": list(self.classes.names),
            "dataset": {"kind": self.data.source.kind, "root": str(self.cfg.data.root)},
        }

    def _bn_batches(self) -> DataLoader:
        # the augmented training images, as the student saw them: statistics of the plain
        # letterboxed images cost 3-4 val F1 points on the synthetic set (measured)
        from labelaudit.data import collate

        return DataLoader(self.data.train_subset, batch_size=self.cfg.schedule.batch_size,
                          shuffle=False, num_workers=self.cfg.data.workers, collate_fn=collate)

    # ----------------------------------------------------------------- steps
    def _autocast(self):
        if self.use_amp:
            return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        return torch.autocast(device_type="cpu", enabled=False)

    def _train_step(self, batch: dict[str, Any], teacher: torch.nn.Module | None, where: str) -> dict[str, float]:
        image = batch["image"].to(self.device, non_blocking=True)
        label = batch["label"].to(self.device, non_blocking=True)
        if self.use_amp:
            image = image.contiguous(memory_format=torch.channels_last)
        with self._autocast():
            outputs = self.student(image)
            teacher_out = None
            if teacher is not None:
                with torch.no_grad():
                    teacher_out = teacher(image)
        loss, parts = self.criterion(
            tuple(o.float() for o in outputs), label,
            None if teacher_out is None else tuple(o.float() for o in teacher_out),
            cycle=self.teacher.cycles_done)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()} at {where}")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return parts

    def _train_epoch(self, epoch: int) -> dict[str, float]:
        from tqdm.auto import tqdm

        s = self.cfg.schedule
        self.data.sampler.set_epoch(epoch)
        self.data.train_set.set_epoch(epoch)
        self.student.train()
        teacher = self.teacher.model if in_csr(s, epoch) else None
        sums: dict[str, float] = {}
        t0, n_iters = time.perf_counter(), len(self.data.loader)
        bar = tqdm(self.data.loader, desc=f"epoch {epoch + 1}/{s.epochs}", leave=False,
                   disable=None if self.progress else True, dynamic_ncols=True)  # None: off when not a terminal
        for it, batch in enumerate(bar):
            lr = learning_rate(s, epoch, it, n_iters)
            for g in self.optimizer.param_groups:
                g["lr"] = lr
            parts = self._train_step(batch, teacher, f"epoch {epoch + 1} iteration {it}")
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + float(v)
            bar.set_postfix(loss=f"{parts['total']:.3f}", lr=f"{lr:.2e}")
        seconds = time.perf_counter() - t0
        out = {k: D.all_reduce_mean(v / max(1, n_iters), self.dist) for k, v in sums.items()}
        images = n_iters * s.batch_size * self.dist.world_size
        return {**out, "lr": lr, "seconds": seconds, "images_per_s": images / max(seconds, 1e-9)}

    def _validate(self, model: torch.nn.Module, calibrate: bool = False) -> dict[str, float]:
        """Val scores; with `calibrate`, also keep the per-class thresholds the scan will use."""
        from labelaudit.confidence import ConfidenceStats
        from labelaudit.train.evaluate import evaluate

        stats = ConfidenceStats(self.classes.num_classes) if calibrate else None
        scores = evaluate(_unwrap(model), self.data.val_set, self.device,
                          batch_size=self.cfg.schedule.batch_size, amp=self.use_amp, confidence=stats)
        if stats is not None:
            self.calibration = {"class_confidence_sum": stats.sum.tolist(),
                                "class_pixel_count": stats.count.tolist()}
        return {k: v for k, v in scores.as_dict().items() if "/" not in k}

    # ----------------------------------------------------------------- run
    def fit(self) -> TrainResult:
        s = self.cfg.schedule
        t_start = time.perf_counter()
        if self.dist.is_master:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "config.toml").write_text(to_toml(self.cfg))
        throughput = []
        for epoch in range(self.start_epoch, s.epochs):
            record: dict[str, Any] = {"epoch": epoch + 1, "phase": "csr" if in_csr(s, epoch) else "dml",
                                      "cycle": cycle_of(s, epoch) + 1, **self._train_epoch(epoch)}
            throughput.append(record["images_per_s"])
            teacher_updated = self.teacher.after_epoch(_unwrap(self.student), epoch)
            if self.dist.is_master:
                record.update({f"val/student/{k}": v for k, v in self._validate(self.student).items()})
                if teacher_updated:
                    record.update({f"val/teacher/{k}": v for k, v in
                                   self._validate(self.teacher.model, calibrate=True).items()})
                self._save_epoch(epoch, record)
            D.barrier(self.dist)
        return self._finish(time.perf_counter() - t_start, throughput)

    def _save_epoch(self, epoch: int, record: dict[str, Any]) -> None:
        """Rank 0 after each epoch: best model, DML-end student, checkpoint, logs, callback."""
        self._track_best(epoch, record)
        if epoch + 1 == self.cfg.schedule.csr_start:
            save_checkpoint({"student": _unwrap(self.student).state_dict(),
                             "classes": list(self.classes.names), "config": self.cfg.to_dict(),
                             "val": {k: v for k, v in record.items() if k.startswith("val/")}},
                            self.run_dir / DML_STUDENT)
        if is_snapshot_epoch(self.cfg.schedule, epoch):
            from model import inference_state_dict

            save_checkpoint({"student": inference_state_dict(_unwrap(self.student).state_dict()),
                             "epoch": epoch + 1, "classes": list(self.classes.names),
                             "config": self.cfg.to_dict()},
                            self.run_dir / SNAPSHOTS / f"epoch-{epoch + 1:04d}.pt")
        self.history.append(record)
        save_checkpoint(self._state(epoch + 1), self.run_dir / CHECKPOINT)
        append_metrics(self.run_dir, record)
        plot_curves(self.history, self.run_dir / "curves.png")
        if self.on_epoch:
            self.on_epoch(record)

    def _track_best(self, epoch: int, record: dict[str, Any]) -> None:
        for who in ("student", "teacher"):
            f1 = record.get(f"val/{who}/mean_f1")
            if f1 is not None and not math.isnan(f1) and f1 > self.best.get("mean_f1", -1.0):
                self.best = {"mean_f1": f1, "epoch": epoch + 1, "model": who}
                model = _unwrap(self.student) if who == "student" else self.teacher.model
                save_checkpoint({"model": model.state_dict(), "best": self.best,
                                 "classes": list(self.classes.names), "config": self.cfg.to_dict()},
                                self.run_dir / BEST)

    def _finish(self, seconds: float, throughput: list[float]) -> TrainResult:
        res = TrainResult(self.run_dir, self.cfg.schedule.epochs, best=self.best, seconds=seconds,
                          images_per_s=sum(throughput) / len(throughput) if throughput else 0.0)
        if self.dist.is_master:
            res.student_val = last_scores(self.history, "student")
            res.teacher_val = last_scores(self.history, "teacher")
            res.dml_student_val = last_scores(self.history, "student", phase="dml")
            if self.cfg.eval_test and self.teacher.model is not None:
                res.test = self._test_scores()
            write_report(self.run_dir, {
                "run_dir": str(self.run_dir), "epochs": res.epochs, "seconds": seconds,
                "images_per_s": res.images_per_s, "student_val": res.student_val,
                "teacher_val": res.teacher_val, "dml_student_val": res.dml_student_val,
                "test": res.test, "best": res.best})
        D.barrier(self.dist)
        return res

    def _test_scores(self) -> dict[str, float]:
        from labelaudit.data import FaceParsingDataset
        from labelaudit.train.evaluate import evaluate

        d = self.cfg.data
        test_set = FaceParsingDataset(self.data.source, "test", size=d.size, augment=False,
                                      channel_order=d.channel_order, seed=self.cfg.seed,
                                      on_bad=d.on_bad, labels_dir=d.labels)
        return evaluate(self.teacher.model, test_set, self.device, batch_size=self.cfg.schedule.batch_size,
                        amp=self.use_amp).as_dict()
