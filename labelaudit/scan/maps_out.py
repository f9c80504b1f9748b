"""`labelaudit predict`: a teacher's probabilities for a split, written as a probability folder
(the format of labelaudit.teachers.probs) that `scan --probs` reads here or on another machine.

Streamed (one batch in memory), resumable (maps already written are kept), shardable: shard i of
n writes every n-th image from the i-th on, so n machines or torchrun ranks split a dataset.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from torch.utils.data import DataLoader, Subset

from labelaudit.distributed import local_device
from labelaudit.scan.forward import ScanDataset, device_named, scan_collate
from labelaudit.teachers.probs import map_path, write_classes, write_map

log = logging.getLogger(__name__)


@dataclass
class PredictResult:
    out: Path
    n_images: int  # this shard's images
    n_written: int
    n_kept: int  # already in the folder (an earlier, interrupted predict)
    bad: list[tuple[str, str]]
    seconds: float

    @property
    def images_per_s(self) -> float:
        return self.n_written / self.seconds if self.seconds > 0 else 0.0


def parse_shard(text: str | None) -> tuple[int, int]:
    """ "i/n" -> (i, n); None -> torchrun's (RANK, WORLD_SIZE), else (0, 1)."""
    if text is None:
        return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard {text!r}: expected i/n, e.g. 0/4") from None
    if not 0 <= i < n:
        raise ValueError(f"--shard {text!r}: i must lie in [0, n)")
    return i, n


def write_probability_maps(opts, out: str | Path, shard: tuple[int, int] = (0, 1),
                           dtype: str = "float16") -> PredictResult:
    """Write the probabilities of `opts.split` (a ScanOptions: teacher, dataset, batch size) to
    `out`: classes.json and one <image path>.npz per image, in the label frame."""
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    out = Path(out)
    # torchrun: one GPU a rank; no process group is needed, the shards are fixed
    device = local_device() if opts.device == "auto" else device_named(opts.device)
    teachers = opts.teachers(device)
    if len(teachers.teachers) > 1:
        raise ValueError("predict writes one teacher's maps; K-fold teachers: use --teacher csr "
                         "per fold run, or scan them directly")
    teacher = teachers.teachers[0]
    source = opts.source(teachers)
    dataset = ScanDataset.for_teachers(source, opts.split, teachers, opts.limit)
    i, n = shard
    mine = list(range(i, len(dataset.records), n))
    todo = [k for k in mine if not map_path(out, source.image_relpath(dataset.records[k])).is_file()]
    write_classes(out, list(source.classes.names))
    bad: list[tuple[str, str]] = []
    loader = DataLoader(Subset(dataset, todo), batch_size=opts.batch_size, collate_fn=scan_collate,
                        num_workers=opts.workers)
    with tqdm(total=len(todo), desc=f"predict {opts.split}", unit="img",
              disable=None if opts.progress else True) as bar:
        for batch in loader:
            bad += batch["bad"]
            if "image" in batch:
                for key, p in zip(batch["key"], teacher.predict(batch, source.classes)):
                    write_map(out, key, p, dtype)
            bar.update(len(batch["key"]) + len(batch["bad"]))
    for path, problem in bad:
        log.warning("skipped %s: %s", path, problem)
    return PredictResult(out, len(mine), len(todo) - len(bad), len(mine) - len(todo), bad,
                         time.perf_counter() - t0)
