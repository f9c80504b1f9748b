"""Load the network(s) a scan trusts, from a training run directory.

Teachers a run can provide:
  csr    the self-ensembled CSR teacher of `checkpoint.pt` (the student when no cycle ended yet);
  dml    the student saved at the end of the DML phase (`dml_student.pt`): an ordinary training;
  final  the last student of `checkpoint.pt`;
  folds  the K out-of-sample teachers of `train --folds K` (`fold-<k>/checkpoint.pt`): each
         training image is scored by the teacher that never saw it;
  snapshots  the mean probability of the students kept along the way
         (`schedule.snapshot_every`, `snapshots/epoch-*.pt`): an ensemble over training time.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from labelaudit.train.checkpoint import CheckpointError, load_checkpoint
from labelaudit.train.config import TrainConfig, config_from_dict
from labelaudit.train.engine import CHECKPOINT, DML_STUDENT, SNAPSHOTS

log = logging.getLogger(__name__)

TEACHERS = ("auto", "csr", "dml", "final", "folds", "snapshots")


@dataclass
class Teacher:
    """One judge: an inference network, or several whose probabilities are averaged."""

    name: str
    models: list[torch.nn.Module]
    config: TrainConfig
    checkpoint: Path
    calibration: dict[str, list] | None = None  # per-class confidence sums from the val split


@dataclass
class TeacherSet:
    """The teacher(s) of a scan: one, or one per fold with the fold of every training image id."""

    name: str
    teachers: list[Teacher]
    fold_of_id: dict[str, int] = field(default_factory=dict)

    @property
    def config(self) -> TrainConfig:
        return self.teachers[0].config

    def for_record(self, record_id: str) -> int:
        """Index of the teacher that scores this record (its out-of-sample fold, else 0)."""
        return self.fold_of_id.get(record_id, 0) if len(self.teachers) > 1 else 0


def _inference_model(state: dict[str, torch.Tensor], cfg: TrainConfig, num_classes: int,
                     device: torch.device) -> torch.nn.Module:
    from model import build_model, inference_state_dict

    m = cfg.model
    net = build_model(num_classes, depth=m.depth, edges=False, conva_kernel=m.conva_kernel,
                      width=m.width, abn=m.abn)
    net.load_state_dict(inference_state_dict(state), strict=True)
    return net.to(device).eval()


def _load_one(path: Path, which: str, device: torch.device) -> Teacher:
    state = load_checkpoint(path, ("student", "config", "classes"))
    weights, calib = state["student"], None
    if which == "csr":
        if state.get("teacher") is None:
            log.warning("%s: no CSR cycle has ended yet; scanning with the student", path)
        else:
            weights = state["teacher"]
        calib = state.get("calibration")
    cfg = config_from_dict(state["config"])
    return Teacher(which, [_inference_model(weights, cfg, len(state["classes"]), device)], cfg,
                   path, calib)


def _load_snapshots(run_dir: Path, device: torch.device) -> Teacher:
    files = sorted((run_dir / SNAPSHOTS).glob("epoch-*.pt"))
    if not files:
        raise CheckpointError(f"{run_dir / SNAPSHOTS}: no snapshots; train with "
                              "schedule.snapshot_every > 0 for the snapshots teacher")
    models = []
    for path in files:
        state = load_checkpoint(path, ("student", "config", "classes"))
        cfg = config_from_dict(state["config"])
        models.append(_inference_model(state["student"], cfg, len(state["classes"]), device))
    log.info("snapshots teacher: %d students (%s ... %s)", len(files), files[0].name, files[-1].name)
    return Teacher("snapshots", models, cfg, run_dir / SNAPSHOTS)


def load_teachers(run_dir: str | Path, which: str = "auto", device: torch.device | None = None
                  ) -> TeacherSet:
    """The teacher set named `which` from a `labelaudit train` run directory.

    "auto" is "folds" when the run has folds, else "csr". Raises CheckpointError naming the
    missing or unreadable file.
    """
    if which not in TEACHERS:
        raise ValueError(f"unknown teacher {which!r}; choose one of {', '.join(TEACHERS)}")
    run_dir = Path(run_dir)
    device = device or torch.device("cpu")
    folds_file = run_dir / "folds.json"
    if which == "auto":
        which = "folds" if folds_file.exists() else "csr"
    if which == "snapshots":
        return TeacherSet(which, [_load_snapshots(run_dir, device)])
    if which != "folds":
        path = run_dir / (DML_STUDENT if which == "dml" else CHECKPOINT)
        if not path.exists() and folds_file.exists():
            raise CheckpointError(f"{path}: not found; this run trained folds only "
                                  "(use --teacher folds)")
        return TeacherSet(which, [_load_one(path, which, device)])
    if not folds_file.exists():
        raise CheckpointError(f"{folds_file}: not found; train with --folds K for fold teachers")
    meta = json.loads(folds_file.read_text())
    teachers = [_load_one(run_dir / f"fold-{k}" / CHECKPOINT, "csr", device)
                for k in range(int(meta["k"]))]
    source = teachers[0].config.data.open_source()
    records = source.records("train")
    folds = np.asarray(meta["fold_of_index"])
    if len(folds) != len(records):
        raise CheckpointError(f"{folds_file}: {len(folds)} fold entries but {source.root} has "
                              f"{len(records)} training images now; retrain the folds")
    ids = meta.get("ids") or [r.id for r in records]
    return TeacherSet("folds", teachers, {i: int(f) for i, f in zip(ids, folds)})


def describe(teachers: TeacherSet) -> dict[str, Any]:
    """JSON-able description of a teacher set, kept in the scan run's config."""
    return {"teacher": teachers.name, "checkpoints": [str(t.checkpoint) for t in teachers.teachers]}
