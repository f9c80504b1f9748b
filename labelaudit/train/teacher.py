"""The CSR teacher of a training run: when the student is folded into it, and how (eq. 6).

`CSRTeacher.after_epoch` is called once per finished epoch. Inside the CSR phase with
``schedule.teacher_average = "epochs"`` every epoch's student is one of its cycle's N instances
(their running mean is kept); at each teacher update (a cycle end, and with ``seed_teacher`` the
last DML epoch) the snapshot (the cycle's mean instance, or the student) is folded into the
running mean of the teacher, whose BN statistics are then re-estimated on the training images
(rank 0) and broadcast.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from torch import nn

from labelaudit import distributed as D
from labelaudit.train.config import ScheduleConfig
from labelaudit.train.schedule import in_csr, is_teacher_update

log = logging.getLogger(__name__)


class CSRTeacher:
    """The self-ensembled teacher (None until the first update) and the cycle's mean instance.

    Args:
        net: a module with the student's architecture (copied, never trained).
        schedule: the run's schedule (teacher updates, averaging mode).
        bn_batches: a callable giving the batches for BN re-estimation (rank 0 only).
    """

    def __init__(self, net: nn.Module, schedule: ScheduleConfig, device, dist: D.Dist,
                 bn_batches: Callable[[], Iterable[Any]]) -> None:
        from model.ensemble import SelfEnsemble

        self.schedule, self.dist, self.device, self.bn_batches = schedule, dist, device, bn_batches
        self.ensemble = SelfEnsemble(net)
        self.ensemble.teacher.to(device)
        self.cycle_mean: SelfEnsemble | None = None
        if schedule.teacher_average == "epochs":
            self.cycle_mean = SelfEnsemble(net)
            self.cycle_mean.teacher.to(device)
        self.model: nn.Module | None = None

    @property
    def cycles_done(self) -> int:
        """m, the number of snapshots folded in (the CSR target's alpha is 1/(m+1))."""
        return self.ensemble.num_snapshots

    def after_epoch(self, student: nn.Module, epoch: int) -> bool:
        """Note the finished epoch's student; True when the teacher was updated after it."""
        if self.cycle_mean is not None and in_csr(self.schedule, epoch):
            self.cycle_mean.update(student)
        if not is_teacher_update(self.schedule, epoch):
            return False
        self._update(student)
        log.info("epoch %d: teacher updated from %d snapshot(s)", epoch + 1, self.cycles_done)
        return True

    def _update(self, student: nn.Module) -> None:
        from model.ensemble import reestimate_bn

        snapshot = student
        if self.cycle_mean is not None and self.cycle_mean.num_snapshots > 0:
            snapshot = self.cycle_mean.teacher
            self.cycle_mean.reset()  # the next cycle starts a new mean
        self.ensemble.update(snapshot)
        self.model = self.ensemble.teacher
        if self.dist.is_master:
            reestimate_bn(self.model, self.bn_batches(), self.device,
                          max_batches=self.schedule.bn_batches)
        D.broadcast_module(self.model, self.dist)
        self.model.eval()

    def state_dict(self) -> dict[str, Any]:
        """Checkpoint entries: "teacher" (state dict or None), "ensemble", "cycle_mean"."""
        return {"teacher": None if self.model is None else self.model.state_dict(),
                "ensemble": {"num_snapshots": self.cycles_done},
                "cycle_mean": None if self.cycle_mean is None else self.cycle_mean.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("teacher") is not None:
            self.ensemble.load_state_dict({"num_snapshots": state["ensemble"]["num_snapshots"],
                                           "teacher": state["teacher"]})
            self.model = self.ensemble.teacher
        if self.cycle_mean is not None and state.get("cycle_mean") is not None:
            self.cycle_mean.load_state_dict(state["cycle_mean"])
