"""Teachers from a `labelaudit train` run directory.

Teachers a run can provide:
  csr    the self-ensembled CSR teacher of `checkpoint.pt` (the student when no cycle ended yet);
  dml    the student saved at the end of the DML phase (`dml_student.pt`): an ordinary training;
  final  the last student of `checkpoint.pt`;
  folds  the K out-of-sample teachers of `train --folds K` (`fold-<k>/checkpoint.pt`): each
         training image is scored by the teacher that never saw it;
  snapshots  the mean probability of the students kept along the way
         (`schedule.snapshots`, `snapshots/epoch-*.pt`): an ensemble over training time.
"""
from __future__ import annotations

import json
import logging
import tomllib
from pathlib import Path

import numpy as np
import torch

from labelaudit.predict import Views
from labelaudit.teachers.base import EnsembleTeacher, TeacherSet, ensemble
from labelaudit.teachers.network import NetworkTeacher, checkpoint_teacher, labelaudit_teacher
from labelaudit.teachers.probs import ProbsTeacher
from labelaudit.train.checkpoint import CheckpointError, load_checkpoint
from labelaudit.train.config import TrainConfig, config_from_dict
from labelaudit.train.engine import CHECKPOINT, DML_STUDENT, SNAPSHOTS

log = logging.getLogger(__name__)

TEACHERS = ("auto", "csr", "dml", "final", "folds", "snapshots")
# From this many training images on, "auto" prefers the snapshots teacher to the CSR teacher:
# benchmarks/bench_teachers.py measured it ahead at N = 1600 and 3200 and behind at N = 400
# (flip+drop recall at P >= 0.8; README, "Teachers at growing scale").
SNAPSHOTS_FROM = 1000


def _config(d: dict, root: Path | None) -> TrainConfig:
    """A run's training config, its dataset at `root` when given (the dataset moved since)."""
    cfg = config_from_dict(d)
    if root is not None:
        cfg.data.root = str(root)
    return cfg


def _auto(run_dir: Path, folds_file: Path, root: Path | None) -> str:
    """folds when trained, else snapshots for a run kept them on >= SNAPSHOTS_FROM images, else
    csr."""
    if folds_file.exists():
        return "folds"
    config_file = run_dir / "config.toml"  # written when the training starts: no checkpoint read
    if any((run_dir / SNAPSHOTS).glob("epoch-*.pt")) and config_file.exists():
        cfg = _config(tomllib.loads(config_file.read_text()), root)
        n = len(cfg.data.open_source().records("train"))
        if n >= SNAPSHOTS_FROM:
            return "snapshots"
        log.info("%d training images (< %d): the CSR teacher, not the snapshots", n, SNAPSHOTS_FROM)
    return "csr"


def _load_one(path: Path, which: str, device: torch.device, views: Views, root: Path | None
              ) -> tuple[NetworkTeacher, TrainConfig]:
    """The network `which` of one training checkpoint, and that run's config (see `_config`)."""
    state = load_checkpoint(path, ("student", "config", "classes"))
    teacher = labelaudit_teacher(state, path, which, "csr" if which == "csr" else "final", device, views)
    return teacher, _config(state["config"], root)


def _snapshots(run_dir: Path, device: torch.device, views: Views, root: Path | None
               ) -> tuple[EnsembleTeacher, TrainConfig]:
    """The mean of the students kept along the run, and the run's config (from a snapshot)."""
    files = sorted((run_dir / SNAPSHOTS).glob("epoch-*.pt"))
    if not files:
        raise CheckpointError(f"{run_dir / SNAPSHOTS}: no snapshots; train with "
                              "schedule.snapshots > 0 for the snapshots teacher")
    log.info("snapshots teacher: %d students (%s ... %s)", len(files), files[0].name, files[-1].name)
    loaded = [_load_one(f, "final", device, views, root) for f in files]
    return EnsembleTeacher([t for t, _ in loaded], "snapshots"), loaded[-1][1]


def load_teachers(run_dir: str | Path, which: str = "auto", device: torch.device | None = None,
                  views: Views = Views(), root: Path | None = None) -> TeacherSet:
    """The teacher set named `which` from a `labelaudit train` run directory.

    "auto" is "folds" when the run has folds, else "snapshots" when the run kept them and has at
    least SNAPSHOTS_FROM training images, else "csr". `root`: the dataset's root when it moved
    since training (the set's data settings and the choice above use it). Raises
    CheckpointError naming the missing or unreadable file.
    """
    if which not in TEACHERS:
        raise ValueError(f"unknown teacher {which!r}; choose one of {', '.join(TEACHERS)}")
    run_dir = Path(run_dir)
    device = device or torch.device("cpu")
    folds_file = run_dir / "folds.json"
    if which == "auto":
        which = _auto(run_dir, folds_file, root)
    if which == "folds":
        return _folds(run_dir, folds_file, device, views, root)
    if which == "snapshots":
        teacher, cfg = _snapshots(run_dir, device, views, root)
        return TeacherSet(which, [teacher], data=cfg.data, seed=cfg.seed)
    path = run_dir / (DML_STUDENT if which == "dml" else CHECKPOINT)
    if not path.exists() and folds_file.exists():
        raise CheckpointError(f"{path}: not found; this run trained folds only (use --teacher folds)")
    teacher, cfg = _load_one(path, which, device, views, root)
    return TeacherSet(which, [teacher], data=cfg.data, seed=cfg.seed)


def _folds(run_dir: Path, folds_file: Path, device: torch.device, views: Views,
           root: Path | None) -> TeacherSet:
    if not folds_file.exists():
        raise CheckpointError(f"{folds_file}: not found; train with --folds K for fold teachers")
    meta = json.loads(folds_file.read_text())
    paths = [run_dir / f"fold-{k}" / CHECKPOINT for k in range(int(meta["k"]))]
    loaded = [_load_one(p, "csr", device, views, root) for p in paths]
    teachers, cfg = [t for t, _ in loaded], loaded[0][1]
    source = cfg.data.open_source()
    records = source.records("train")
    folds = np.asarray(meta["fold_of_index"])
    if len(folds) != len(records):
        raise CheckpointError(f"{folds_file}: {len(folds)} fold entries but {source.root} has "
                              f"{len(records)} training images now; retrain the folds")
    ids = meta.get("ids") or [r.id for r in records]
    return TeacherSet("folds", teachers, {i: int(f) for i, f in zip(ids, folds)}, cfg.data, cfg.seed)


def open_teachers(run_dir, which: str = "auto", *, checkpoints=(), probs=(), device=None,
                  views: Views = Views(), root: Path | None = None) -> TeacherSet:
    """The teachers a scan is told about: the checkpoint files and probability folders given
    (their mean when several), else teacher `which` of the training run in `run_dir` (root:
    its dataset's, when it moved)."""
    if not checkpoints and not probs:
        return load_teachers(run_dir, which, device, views, root)
    if not checkpoints and not views.plain:
        raise ValueError(f"{', '.join(map(str, probs))}: probability maps are used as written; "
                         "give --tta / --scales to `labelaudit predict` when writing them")
    members = [checkpoint_teacher(c, device, views) for c in checkpoints]
    members += [ProbsTeacher(p) for p in probs]
    one = ensemble(members)
    return TeacherSet(one.name, [one])
