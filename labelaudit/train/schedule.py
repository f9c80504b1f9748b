"""Learning-rate schedule of DML-CSR: poly decay during DML, then K cosine cycles (docs/design.md §2).

A pure function of (epoch, iteration), so a resumed run needs no scheduler state.
"""
from __future__ import annotations

import math

from labelaudit.train.config import ScheduleConfig


def in_csr(s: ScheduleConfig, epoch: int) -> bool:
    """True when `epoch` (0-based) belongs to the cyclical self-regulation phase."""
    return epoch >= s.csr_start


def cycle_of(s: ScheduleConfig, epoch: int) -> int:
    """0-based CSR cycle index of `epoch` (-1 during DML)."""
    return -1 if epoch < s.csr_start else (epoch - s.csr_start) // s.cycle_epochs


def is_cycle_end(s: ScheduleConfig, epoch: int) -> bool:
    """True when `epoch` is the last epoch of a CSR cycle: the teacher is updated after it."""
    if epoch < s.csr_start:
        return False
    k = epoch - s.csr_start
    return (k + 1) % s.cycle_epochs == 0 and k < s.cycles * s.cycle_epochs


def is_teacher_update(s: ScheduleConfig, epoch: int) -> bool:
    """True when the student is folded into the teacher after `epoch`: every CSR cycle end and,
    with `seed_teacher`, the last DML epoch (the released code's first snapshot)."""
    seeds = s.seed_teacher and s.csr_start > 0 and epoch == s.csr_start - 1
    return seeds or is_cycle_end(s, epoch)


def is_snapshot_epoch(s: ScheduleConfig, epoch: int) -> bool:
    """True when the student of `epoch` (0-based) is one of the `s.snapshots` kept: the ends of
    `snapshots` equal stretches of the run (every epoch when there are more snapshots than epochs)."""
    if s.snapshots <= 0:
        return False
    return epoch + 1 in {max(1, round(k * s.epochs / s.snapshots)) for k in range(1, s.snapshots + 1)}


def learning_rate(s: ScheduleConfig, epoch: int, it: int, iters_per_epoch: int) -> float:
    """LR for iteration `it` of `epoch`.

    DML: poly decay lr·(1 - t/T)^p per iteration over the DML phase. CSR: inside each cycle of N
    epochs a cosine from cycle_lr_max to cycle_lr_min, stepped once per epoch (the released
    code steps it per iteration; the paper describes per-epoch).
    """
    if epoch < s.csr_start:
        total = max(1, s.csr_start * iters_per_epoch)
        t = epoch * iters_per_epoch + it
        return s.lr * (1 - t / total) ** s.poly_power
    k = (epoch - s.csr_start) % s.cycle_epochs
    if s.cycle_epochs == 1:
        return s.cycle_lr_max
    cos = 0.5 * (1 + math.cos(math.pi * k / (s.cycle_epochs - 1)))
    return s.cycle_lr_min + (s.cycle_lr_max - s.cycle_lr_min) * cos
