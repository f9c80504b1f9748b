"""K-fold teachers: each trained without one fold of the training images.

Every training image can then be scored by a teacher that never saw its (possibly wrong)
label, which an in-sample teacher partly memorises.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import numpy as np

from labelaudit import distributed as D
from labelaudit.train.config import TrainConfig
from labelaudit.train.engine import CHECKPOINT, Trainer


def fold_assignment(n: int, k: int, seed: int) -> np.ndarray:
    """(n,) fold id in [0, k) for each training index: a seeded permutation cut in k near-equal parts."""
    perm = np.random.default_rng(seed).permutation(n)
    folds = np.empty(n, dtype=np.int64)
    for f, chunk in enumerate(np.array_split(perm, k)):
        folds[chunk] = f
    return folds


def train_folds(cfg: TrainConfig, run_dir: str | Path, *, resume: bool = False, progress: bool = True,
                on_epoch: Callable[[dict[str, Any]], None] | None = None) -> list:
    """Train cfg.folds runs into run_dir/fold-<k>; run_dir/folds.json maps images to folds."""
    from labelaudit.data import FaceParsingDataset

    run_dir = Path(run_dir)
    d = cfg.data
    source = d.open_source()
    records = FaceParsingDataset(source, "train", size=d.size, on_bad=d.on_bad,
                                 labels_dir=d.labels).records
    n = len(records)
    folds = fold_assignment(n, cfg.folds, cfg.seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "folds.json").write_text(json.dumps({"k": cfg.folds, "seed": cfg.seed,
                                                    "fold_of_index": folds.tolist(),
                                                    "ids": [r.id for r in records]}))
    results = []
    for k in range(cfg.folds):
        sub = run_dir / f"fold-{k}"
        done = (sub / "report.json").exists()
        if done and resume:
            continue
        keep = [i for i in range(n) if folds[i] != k]
        trainer = Trainer(cfg, sub, resume=resume and (sub / CHECKPOINT).exists(),
                          train_indices=keep, progress=progress,
                          on_epoch=(lambda r, k=k: on_epoch({**r, "fold": k})) if on_epoch else None)
        try:
            results.append(trainer.fit())
        finally:
            if k == cfg.folds - 1:
                D.cleanup(trainer.dist)
    return results
