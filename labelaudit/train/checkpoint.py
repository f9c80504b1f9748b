"""Plain-dict checkpoints, written atomically and read with weights_only=True."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from labelaudit.files import atomic_file

log = logging.getLogger(__name__)


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used; the message names the file and what is wrong."""


def save_checkpoint(obj: dict[str, Any], path: str | Path) -> None:
    """Write `obj` to `path` so that a reader sees either the old file or the whole new one."""
    with atomic_file(path) as f:
        torch.save(obj, f)


def load_checkpoint(path: str | Path, required: tuple[str, ...] = ()) -> dict[str, Any]:
    """Read a checkpoint on the CPU; a missing, truncated or foreign file raises CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for truncated/corrupt zips
        raise CheckpointError(
            f"{path}: unreadable checkpoint ({type(e).__name__}: {e}); it may be truncated or "
            "corrupt. Nothing was overwritten: move it away to start again."
        ) from e
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: not a labelaudit checkpoint (a {type(obj).__name__})")
    missing = [k for k in required if k not in obj]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {', '.join(missing)}")
    return obj
