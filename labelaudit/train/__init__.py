"""`labelaudit train`: DML-CSR training (config, schedule, engine, checkpoints, K folds)."""
from labelaudit.train.config import TrainConfig, load_config, preset
from labelaudit.train.engine import TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "load_config", "preset", "train"]
