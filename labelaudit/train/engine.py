"""The DML-CSR training loop: decoupled multi-task learning, then cyclical self-regulation.

One process or many (torchrun + DDP). Per epoch: train the student (with the teacher's soft
targets once a teacher exists), at each CSR cycle end (and, with `schedule.seed_teacher`, at the
end of the DML phase) fold the student into the self-ensembled teacher (eq. 6), re-estimate the
teacher's BN statistics, validate, checkpoint atomically.
"""
from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, DistributedSampler, Subset

from labelaudit.train import distributed as D
from labelaudit.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from labelaudit.train.config import TrainConfig, config_from_dict, to_toml
from labelaudit.train.schedule import cycle_of, in_csr, is_teacher_update, learning_rate

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"


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


def _seed_everything(seed: int) -> None:
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _unwrap(m: torch.nn.Module) -> torch.nn.Module:
    return m.module if hasattr(m, "module") and isinstance(m, torch.nn.parallel.DistributedDataParallel) else m


class Trainer:
    """Holds the model, teacher, optimiser and data of one run; `fit()` runs it to the end."""

    def __init__(self, cfg: TrainConfig, run_dir: str | Path, *, resume: bool = False,
                 train_indices: list[int] | None = None, progress: bool = True,
                 on_epoch: Callable[[dict[str, Any]], None] | None = None) -> None:
        from model import build_model, convert_sync_abn
        from model.ensemble import SelfEnsemble
        from model.losses import DMLCSRLoss, LossWeights

        from labelaudit.data import FaceParsingDataset

        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.dist = D.setup_distributed()
        self.progress = progress and self.dist.is_master
        self.on_epoch = on_epoch
        self.ckpt_path = self.run_dir / CHECKPOINT
        if self.ckpt_path.exists() and not resume:
            raise FileExistsError(
                f"{self.run_dir} already holds a run ({CHECKPOINT}); pass --resume to continue it "
                "or choose another --out"
            )
        if resume and not self.ckpt_path.exists():
            raise CheckpointError(f"{self.ckpt_path}: nothing to resume")
        state = load_checkpoint(self.ckpt_path, ("student", "epoch", "config")) if resume else None
        if state is not None:
            saved = config_from_dict(state["config"])
            if saved.to_dict() != cfg.to_dict():
                log.warning("resuming with the run's saved config; the given one differs")
            self.cfg = cfg = saved

        _seed_everything(cfg.seed)
        self.device = self.dist.device
        self.use_amp = cfg.amp and self.device.type == "cuda"
        d = cfg.data
        self.source = d.open_source()
        self.classes = self.source.classes
        common = dict(size=d.size, channel_order=d.channel_order, seed=cfg.seed, on_bad=d.on_bad,
                      labels_dir=d.labels)
        self.train_set = FaceParsingDataset(
            self.source, "train", augment=True, scale_range=(d.scale_min, d.scale_max),
            rotation=d.rotation, flip=d.flip, **common)
        self.val_set = FaceParsingDataset(self.source, "val", augment=False, **common)
        if train_indices is not None:
            self.train_subset: Any = Subset(self.train_set, train_indices)
            self.bn_subset: Any = Subset(self.train_set, train_indices)
        else:
            self.train_subset, self.bn_subset = self.train_set, self.train_set
        s = cfg.schedule
        per_rank = len(self.train_subset) // self.dist.world_size
        if per_rank < s.batch_size:
            raise ValueError(
                f"{d.root}: {len(self.train_subset)} training images are fewer than one batch of "
                f"{s.batch_size} per process; lower --batch-size"
            )
        # One sampler for one or many processes: seeded shuffle, reshuffled by set_epoch.
        self.sampler = DistributedSampler(
            self.train_subset, num_replicas=self.dist.world_size, rank=self.dist.rank,
            shuffle=True, seed=cfg.seed, drop_last=True)
        from labelaudit.data import collate

        self.collate = collate
        self.loader = DataLoader(
            self.train_subset, batch_size=s.batch_size, sampler=self.sampler, drop_last=True,
            num_workers=d.workers, collate_fn=collate, persistent_workers=d.workers > 0)
        self.iters_per_epoch = len(self.loader)

        m = cfg.model
        net = build_model(self.classes.num_classes, depth=m.depth, edges=True,
                          conva_kernel=m.conva_kernel, width=m.width, abn=m.abn)
        if m.pretrained and state is None:
            from model import load_pretrained_backbone

            load_pretrained_backbone(net.backbone, m.pretrained)
        # The teacher keeps plain ABN (never synchronised): rank 0 re-estimates its BN alone.
        self.ensemble = SelfEnsemble(net)
        self.ensemble.teacher.to(self.device)
        # eq. 6 as written: the running mean of this cycle's per-epoch instances
        self.cycle_mean: SelfEnsemble | None = None
        if s.teacher_average == "epochs":
            self.cycle_mean = SelfEnsemble(net)
            self.cycle_mean.teacher.to(self.device)
        if self.dist.enabled:
            net = convert_sync_abn(net)
        net.to(self.device)
        if self.use_amp:
            net = net.to(memory_format=torch.channels_last)
        self.student = net
        if self.dist.enabled:
            self.student = torch.nn.parallel.DistributedDataParallel(
                net, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.optimizer = torch.optim.SGD(
            self.student.parameters(), lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay)
        self.criterion = DMLCSRLoss(LossWeights(edge_width=s.edge_width), composition=s.csr_loss)
        self.teacher: torch.nn.Module | None = None
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
        if state.get("teacher") is not None:
            self.ensemble.load_state_dict({"num_snapshots": state["ensemble"]["num_snapshots"],
                                           "teacher": state["teacher"]})
            self.teacher = self.ensemble.teacher
        if self.cycle_mean is not None and state.get("cycle_mean") is not None:
            self.cycle_mean.load_state_dict(state["cycle_mean"])
        self.start_epoch = int(state["epoch"])
        self.history = list(state.get("history", []))
        self.best = dict(state.get("best", {}))
        self.calibration = state.get("calibration")
        torch.set_rng_state(state["rng"]["torch"])
        log.info("resumed %s at epoch %d", self.run_dir, self.start_epoch)

    def _state(self, epoch_done: int) -> dict[str, Any]:
        return {
            "format": "labelaudit-train-v1",
            "config": self.cfg.to_dict(),
            "epoch": epoch_done,
            "student": _unwrap(self.student).state_dict(),
            "teacher": None if self.teacher is None else self.teacher.state_dict(),
            "ensemble": {"num_snapshots": self.ensemble.num_snapshots},
            "cycle_mean": None if self.cycle_mean is None else self.cycle_mean.state_dict(),
            "calibration": self.calibration,
            "optimizer": self.optimizer.state_dict(),
            "rng": {"torch": torch.get_rng_state()},
            "history": self.history,
            "best": self.best,
            "classes": list(self.classes.names),
            "dataset": {"kind": self.source.kind, "root": str(self.cfg.data.root)},
        }

    # ----------------------------------------------------------------- steps
    def _autocast(self):
        if self.use_amp:
            return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        return torch.autocast(device_type="cpu", enabled=False)

    def _train_epoch(self, epoch: int) -> dict[str, float]:
        from tqdm.auto import tqdm

        s = self.cfg.schedule
        self.sampler.set_epoch(epoch)
        self.train_set.set_epoch(epoch)
        self.student.train()
        cycles_done = self.ensemble.num_snapshots
        sums: dict[str, float] = {}
        n_images = 0
        t0 = time.perf_counter()
        bar = tqdm(self.loader, desc=f"epoch {epoch + 1}/{s.epochs}", disable=None if self.progress else True,  # None: off when not a terminal
                   leave=False, dynamic_ncols=True)
        for it, batch in enumerate(bar):
            lr = learning_rate(s, epoch, it, self.iters_per_epoch)
            for g in self.optimizer.param_groups:
                g["lr"] = lr
            image = batch["image"].to(self.device, non_blocking=True)
            label = batch["label"].to(self.device, non_blocking=True)
            if self.use_amp:
                image = image.contiguous(memory_format=torch.channels_last)
            with self._autocast():
                outputs = self.student(image)
                teacher_out = None
                if self.teacher is not None and in_csr(s, epoch):
                    with torch.no_grad():
                        teacher_out = self.teacher(image)
            loss, parts = self.criterion(
                tuple(o.float() for o in outputs), label,
                None if teacher_out is None else tuple(o.float() for o in teacher_out),
                cycle=cycles_done)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss became {loss.item()} at epoch {epoch + 1} iter {it}")
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            n_images += image.shape[0]
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + float(v)
            bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{lr:.2e}")
        seconds = time.perf_counter() - t0
        out = {k: D.all_reduce_mean(v / max(1, self.iters_per_epoch), self.dist) for k, v in sums.items()}
        out["lr"] = lr
        out["seconds"] = seconds
        out["images_per_s"] = n_images * self.dist.world_size / max(seconds, 1e-9)
        return out

    def _validate(self, model: torch.nn.Module, calibrate: bool = False) -> dict[str, float]:
        """Val scores; with `calibrate`, also keep the per-class thresholds the scan will use."""
        from labelaudit.confidence import ConfidenceStats
        from labelaudit.train.evaluate import evaluate

        stats = ConfidenceStats(self.classes.num_classes) if calibrate else None
        scores = evaluate(_unwrap(model), self.val_set, self.device,
                          batch_size=self.cfg.schedule.batch_size, amp=self.use_amp, confidence=stats)
        if stats is not None:
            self.calibration = {"class_confidence_sum": stats.sum.tolist(),
                                "class_pixel_count": stats.count.tolist()}
        return scores.as_dict()

    def _add_instance(self, epoch: int) -> None:
        """Eq. 6 as written: every CSR epoch's student is one of its cycle's N instances."""
        if self.cycle_mean is not None and in_csr(self.cfg.schedule, epoch):
            self.cycle_mean.update(_unwrap(self.student))

    def _update_teacher(self, epoch: int) -> None:
        """Eq. 6: fold the student (or the cycle's mean instance) into the running mean,
        re-estimate BN, broadcast."""
        from model.ensemble import reestimate_bn

        snapshot = _unwrap(self.student)
        if self.cycle_mean is not None and self.cycle_mean.num_snapshots > 0:
            snapshot = self.cycle_mean.teacher
            self.cycle_mean.reset()  # the next cycle starts a new mean
        self.ensemble.update(snapshot)
        self.teacher = self.ensemble.teacher
        if self.dist.is_master:
            # the augmented training images, as the student saw them: statistics of the plain
            # letterboxed images cost 3-4 val F1 points on the synthetic set (measured)
            loader = DataLoader(self.bn_subset, batch_size=self.cfg.schedule.batch_size,
                                shuffle=False, num_workers=self.cfg.data.workers,
                                collate_fn=self.collate)
            reestimate_bn(self.teacher, loader, self.device, max_batches=self.cfg.schedule.bn_batches)
        D.broadcast_module(self.teacher, self.dist)
        self.teacher.eval()
        log.info("epoch %d: teacher updated from %d snapshot(s)", epoch + 1, self.ensemble.num_snapshots)

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
                                      "cycle": cycle_of(s, epoch) + 1}
            record.update(self._train_epoch(epoch))
            throughput.append(record["images_per_s"])
            self._add_instance(epoch)
            teacher_updated = is_teacher_update(s, epoch)
            if teacher_updated:
                self._update_teacher(epoch)
            if self.dist.is_master:
                record.update({f"val/student/{k}": v for k, v in self._validate(self.student).items()
                               if "/" not in k})
                if teacher_updated:
                    record.update({f"val/teacher/{k}": v for k, v in
                                   self._validate(self.teacher, calibrate=True).items() if "/" not in k})
                self._track_best(epoch, record)
                if epoch + 1 == s.csr_start:
                    save_checkpoint({"student": _unwrap(self.student).state_dict(),
                                     "classes": list(self.classes.names), "config": self.cfg.to_dict(),
                                     "val": {k: v for k, v in record.items() if k.startswith("val/")}},
                                    self.run_dir / "dml_student.pt")
                self.history.append(record)
                save_checkpoint(self._state(epoch + 1), self.ckpt_path)
                with open(self.run_dir / "metrics.jsonl", "a") as f:
                    f.write(json.dumps(record) + "\n")
                _plot_curves(self.history, self.run_dir / "curves.png")
                if self.on_epoch:
                    self.on_epoch(record)
            D.barrier(self.dist)
        return self._finish(time.perf_counter() - t_start, throughput)

    def _track_best(self, epoch: int, record: dict[str, Any]) -> None:
        for who in ("student", "teacher"):
            f1 = record.get(f"val/{who}/mean_f1")
            if f1 is not None and not math.isnan(f1) and f1 > self.best.get("mean_f1", -1.0):
                self.best = {"mean_f1": f1, "epoch": epoch + 1, "model": who}
                model = _unwrap(self.student) if who == "student" else self.teacher
                save_checkpoint({"model": model.state_dict(), "best": self.best,
                                 "classes": list(self.classes.names), "config": self.cfg.to_dict()},
                                self.run_dir / "best.pt")

    def _finish(self, seconds: float, throughput: list[float]) -> TrainResult:
        res = TrainResult(self.run_dir, self.cfg.schedule.epochs, best=self.best, seconds=seconds,
                          images_per_s=sum(throughput) / len(throughput) if throughput else 0.0)
        if self.dist.is_master:
            last = self.history[-1] if self.history else {}
            res.student_val = {k.split("/")[-1]: v for k, v in last.items() if k.startswith("val/student/")}
            teacher_rows = [r for r in self.history if "val/teacher/mean_f1" in r]
            if teacher_rows:
                res.teacher_val = {k.split("/")[-1]: v for k, v in teacher_rows[-1].items()
                                   if k.startswith("val/teacher/")}
            dml = [r for r in self.history if r["phase"] == "dml"]
            if dml:
                res.dml_student_val = {k.split("/")[-1]: v for k, v in dml[-1].items()
                                       if k.startswith("val/student/")}
            if self.cfg.eval_test and self.teacher is not None:
                from labelaudit.data import FaceParsingDataset
                from labelaudit.train.evaluate import evaluate

                d = self.cfg.data
                test_set = FaceParsingDataset(self.source, "test", size=d.size, augment=False,
                                              channel_order=d.channel_order, seed=self.cfg.seed,
                                              on_bad=d.on_bad, labels_dir=d.labels)
                res.test = evaluate(self.teacher, test_set, self.device,
                                    batch_size=self.cfg.schedule.batch_size, amp=self.use_amp).as_dict()
            report = {
                "run_dir": str(self.run_dir), "epochs": res.epochs, "seconds": seconds,
                "images_per_s": res.images_per_s, "student_val": res.student_val,
                "teacher_val": res.teacher_val, "dml_student_val": res.dml_student_val,
                "test": res.test, "best": res.best,
            }
            (self.run_dir / "report.json").write_text(json.dumps(report, indent=2))
        D.barrier(self.dist)
        return res


def _plot_curves(history: list[dict[str, Any]], path: Path) -> None:
    """Loss and validation mean F1 per epoch, written next to the metrics log."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.2))
    a.plot(epochs, [r.get("total", float("nan")) for r in history], label="train loss")
    a.set_xlabel("epoch"); a.set_yscale("log"); a.legend()
    b.plot(epochs, [r.get("val/student/mean_f1", float("nan")) for r in history], "o-", label="student")
    te = [(r["epoch"], r["val/teacher/mean_f1"]) for r in history if "val/teacher/mean_f1" in r]
    if te:
        b.plot(*zip(*te), "s-", label="CSR teacher")
    b.set_xlabel("epoch"); b.set_ylabel("val mean F1 (%)"); b.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
