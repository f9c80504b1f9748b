"""CSR self-ensemble (docs/design.md §2, eq. 6): the running mean of cycle snapshots is the teacher.

``SelfEnsemble.update`` folds a snapshot into the average; ``reestimate_bn`` then recomputes the
running statistics of every BN-like layer with one pass over the training data, because averaged
weights do not match any snapshot's statistics.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import nn

__all__ = ["SelfEnsemble", "reestimate_bn", "bn_like_layers"]

logger = logging.getLogger(__name__)


def _unwrap(model: nn.Module) -> nn.Module:
    """The wrapped module of DataParallel / DistributedDataParallel, else ``model`` itself."""
    if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
        return model.module
    return model


class SelfEnsemble:
    """Holds the averaged teacher theta_bar and the number m of snapshots averaged so far.

    Args:
        model: a module with the student's architecture; it is deep-copied (not averaged: the
            first ``update`` overwrites the copy), frozen and put in eval mode.
    """

    def __init__(self, model: nn.Module) -> None:
        self.teacher: nn.Module = copy.deepcopy(_unwrap(model))
        self.teacher.requires_grad_(False)
        self.teacher.eval()
        self.num_snapshots: int = 0

    @torch.no_grad()
    def update(self, student: nn.Module) -> None:
        """Fold a snapshot in: theta_bar <- (1 - 1/(m+1)) theta_bar + theta / (m+1), then m += 1.

        Float parameters and float buffers are averaged (BN running statistics are re-estimated
        afterwards anyway, see ``reestimate_bn``); non-float buffers (e.g. num_batches_tracked)
        are copied from the student. The first update copies everything.
        """
        student = _unwrap(student)
        weight = 1.0 / (self.num_snapshots + 1)
        for kind, mine, theirs in (
            ("parameter", self.teacher.named_parameters(), student.named_parameters()),
            ("buffer", self.teacher.named_buffers(), student.named_buffers()),
        ):
            mine, theirs = dict(mine), dict(theirs)
            if mine.keys() != theirs.keys():
                missing = sorted(mine.keys() ^ theirs.keys())[:5]
                raise ValueError(f"student and teacher {kind}s differ, e.g. {missing}")
            for name, avg in mine.items():
                value = theirs[name].detach().to(avg.device)
                if avg.is_floating_point() and self.num_snapshots > 0:
                    avg.lerp_(value.to(avg.dtype), weight)
                else:
                    avg.copy_(value)
        self.num_snapshots += 1
        logger.info("self-ensemble now averages %d snapshots", self.num_snapshots)

    def reset(self) -> None:
        """Forget the average: the next ``update`` copies its snapshot (a new cycle's mean)."""
        self.num_snapshots = 0

    def state_dict(self) -> dict[str, Any]:
        """Plain dict for checkpoints: {"num_snapshots": int, "teacher": teacher state dict}."""
        return {"num_snapshots": self.num_snapshots, "teacher": self.teacher.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""
        self.teacher.load_state_dict(state["teacher"])
        self.num_snapshots = int(state["num_snapshots"])


def bn_like_layers(model: nn.Module) -> list[nn.Module]:
    """Modules with running_mean / running_var buffers and a momentum attribute.

    Covers nn.BatchNorm*, SyncBatchNorm, their subclasses, inplace_abn's (In)PlaceABN and
    pure-PyTorch ABN layers, which ``torch.optim.swa_utils.update_bn`` would miss.
    """
    return [
        m
        for m in model.modules()
        if isinstance(getattr(m, "running_mean", None), torch.Tensor)
        and isinstance(getattr(m, "running_var", None), torch.Tensor)
        and hasattr(m, "momentum")
    ]


def _to_device(batch: Any, device: torch.device | str) -> Any:
    """Move the tensors of a (nested) batch to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch


def _default_forward(model: nn.Module, batch: Any) -> Any:
    """Feed the images of a batch: the batch itself, its first element, or batch["image"]."""
    if isinstance(batch, Mapping):
        return model(batch["image"])
    if isinstance(batch, (list, tuple)):
        return model(batch[0])
    return model(batch)


@torch.no_grad()
def reestimate_bn(
    model: nn.Module,
    loader: Iterable[Any],
    device: torch.device | str,
    forward_fn: Callable[[nn.Module, Any], Any] | None = None,
    max_batches: int | None = None,
) -> int:
    """Recompute BN-like running statistics as a cumulative average over one pass of ``loader``.

    Running stats are reset, then the k-th batch is fed with momentum 1/k, so after K batches
    running_mean / running_var are the plain average of the K per-batch means / unbiased
    variances (what momentum=None does in nn.BatchNorm; an explicit float also suits layers
    whose kernels need one, like InPlaceABN). Only BN-like layers run in train mode (dropout
    etc. stay in eval); every module's training flag and every momentum is restored afterwards.

    Args:
        model: the network; its parameters are not changed.
        loader: yields batches (a tensor, a tuple/list whose first item is the images, or a dict
            with "image"); tensors are moved to ``device``.
        device: where the model lives.
        forward_fn: ``forward_fn(model, batch)`` to run instead of the default image forward.
        max_batches: stop after this many batches (None = the whole loader).

    Returns:
        The number of batches used.
    """
    layers = bn_like_layers(model)
    if not layers:
        return 0
    forward_fn = forward_fn or _default_forward
    modes = {m: m.training for m in model.modules()}
    momenta = {m: m.momentum for m in layers}
    for m in layers:
        m.running_mean.zero_()
        m.running_var.fill_(1.0)
        if isinstance(getattr(m, "num_batches_tracked", None), torch.Tensor):
            m.num_batches_tracked.zero_()
    model.eval()
    for m in layers:
        m.train()
    used = 0
    try:
        for batch in loader:
            if max_batches is not None and used >= max_batches:
                break
            used += 1
            for m in layers:
                m.momentum = 1.0 / used
            forward_fn(model, _to_device(batch, device))
    finally:
        for m, momentum in momenta.items():
            m.momentum = momentum
        for m, training in modes.items():
            m.training = training
    if used == 0:
        logger.warning("reestimate_bn: the loader gave no batch; running stats are reset values")
    logger.info("re-estimated %d BN-like layers on %d batches", len(layers), used)
    return used
