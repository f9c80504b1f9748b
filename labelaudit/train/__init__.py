"""`labelaudit train`: DML-CSR training (config, schedule, engine, checkpoints, K folds).

    cfg = load_config("cpu", overrides={"data.root": "data/synth"})
    result = train(cfg, "runs/a")

Training writes only its run directory; recording the run in the findings store is the caller's
choice (`labelaudit.tracking.recorded_training`, which the CLI and the demo use).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from labelaudit import distributed
from labelaudit.train.config import TrainConfig, load_config, preset
from labelaudit.train.engine import TrainResult, Trainer
from labelaudit.train.folds import train_folds

__all__ = ["TrainConfig", "TrainResult", "load_config", "preset", "train"]


def train(cfg: TrainConfig, run_dir: str | Path, *, resume: bool = False, progress: bool = True,
          on_epoch: Callable[[dict[str, Any]], None] | None = None) -> TrainResult | list[TrainResult]:
    """Train one run (or K fold runs when cfg.folds >= 2) into `run_dir`; see `Trainer`."""
    if cfg.folds >= 2:
        return train_folds(cfg, run_dir, resume=resume, progress=progress, on_epoch=on_epoch)
    trainer = Trainer(cfg, run_dir, resume=resume, progress=progress, on_epoch=on_epoch)
    try:
        return trainer.fit()
    finally:
        distributed.cleanup(trainer.dist)
