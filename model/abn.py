"""Activated batch normalisation (ABN): BatchNorm then LeakyReLU(0.01) as one module.

Computed the way ``inplace_abn.InPlaceABN`` does it (docs/design.md §2)::

    y = leaky_relu((x - mean) / sqrt(var + eps) * (|weight| + eps) + bias, 0.01)

The absolute value matters: weights trained with InPlaceABN (the released DML-CSR ones) only
behave right under the |w| + eps rule, and the weight gradient is sign(w) * sum(x_hat * dy).

Two interchangeable implementations with the same state-dict keys as ``nn.BatchNorm2d``
(weight, bias, running_mean, running_var, num_batches_tracked):

- :class:`ABN`, pure PyTorch. In training it keeps only its *output* for backward and recovers
  the normalised input from it (as InPlaceABN does), so the convolution output that feeds it can
  be freed: about a third less activation memory than BatchNorm2d + LeakyReLU, at the cost of one
  extra elementwise pass in backward.
- ``inplace_abn.InPlaceABN`` (the compiled extension), used when importable and asked for.

:func:`make_abn` picks one; :func:`convert_sync_abn` swaps in the synchronised variants for DDP.
"""

from __future__ import annotations

import logging
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

log = logging.getLogger(__name__)

ABNBackend = Literal["auto", "torch", "inplace"]
SLOPE = 0.01  # LeakyReLU negative slope, fixed by the reference weights


def inplace_abn_available() -> bool:
    """True when the compiled ``inplace_abn`` extension imports."""
    try:
        import inplace_abn  # noqa: F401
    except Exception:  # ImportError, or an extension built against another torch
        return False
    return True


class _ABNTrainFn(torch.autograd.Function):
    """Training-mode ABN that saves only its output y (N, C, *) for backward.

    Backward recovers z = leaky_relu^-1(y) and x_hat = (z - bias) / (|w| + eps), then runs the
    native batch-norm backward with (mean, invstd) := (bias, 1 / (|w| + eps)) so that its x_hat is
    ours, and a weight chosen so that its dx scale is (|w| + eps) * invstd.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx,
        x: Tensor,
        weight: Tensor,
        bias: Tensor,
        running_mean: Tensor | None,
        running_var: Tensor | None,
        momentum: float,
        eps: float,
    ) -> Tensor:
        scale = weight.abs() + eps  # autograd is off inside forward
        y, _, invstd = torch.native_batch_norm(x, scale, bias, running_mean, running_var, True, momentum, eps)
        F.leaky_relu_(y, SLOPE)
        ctx.eps = eps
        ctx.save_for_backward(y, weight, bias, invstd)
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, dy: Tensor):  # type: ignore[override]
        y, weight, bias, invstd = ctx.saved_tensors
        scale = weight.abs() + ctx.eps
        dz = torch.ops.aten.leaky_relu_backward(dy, y, SLOPE, True)
        z = F.leaky_relu(y, 1.0 / SLOPE)  # undo the activation (slope 100 on the negative side)
        dx, dscale, dbias = torch.ops.aten.native_batch_norm_backward(
            dz,
            z,
            scale * scale * invstd,
            None,
            None,
            bias.to(invstd.dtype),
            scale.reciprocal().to(invstd.dtype),
            True,
            ctx.eps,
            [ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.needs_input_grad[2]],
        )
        # d|w|/dw as the extension takes it: -1 where w < 0, else +1 (a zero weight still learns)
        dweight = torch.where(weight < 0, -dscale, dscale) if dscale is not None else None
        return dx, dweight, dbias, None, None, None, None


class ABN(nn.BatchNorm2d):
    """BatchNorm2d + LeakyReLU(0.01) with the InPlaceABN |weight| + eps rule, pure PyTorch.

    Input and output: (N, C, H, W). Also accepts (N, C, L). Running statistics follow BatchNorm
    (momentum 0.1, unbiased variance, ``momentum=None`` = cumulative average).
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1) -> None:
        super().__init__(num_features, eps=eps, momentum=momentum, affine=True, track_running_stats=True)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs):
        # Checkpoints from older inplace_abn lack num_batches_tracked even when their metadata
        # claims a current BatchNorm version; keep our counter instead of failing a strict load.
        key = prefix + "num_batches_tracked"
        if key not in state_dict and prefix + "running_mean" in state_dict:
            state_dict[key] = self.num_batches_tracked.clone()
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs)

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() not in (3, 4):
            raise ValueError(f"ABN expects (N, C, L) or (N, C, H, W) input, got {input.dim()}D")

    def _momentum(self) -> float:
        """The exponential-average factor for this step, as ``_BatchNorm.forward`` computes it."""
        self.num_batches_tracked.add_(1)
        if self.momentum is None:  # cumulative moving average (swa_utils.update_bn uses this)
            return 1.0 / float(self.num_batches_tracked)
        return self.momentum

    def _check_batch(self, x: Tensor) -> None:
        if x.numel() // x.shape[1] <= 1:
            raise ValueError(f"ABN: expected more than 1 value per channel when training, got {tuple(x.shape)}")

    def forward(self, x: Tensor) -> Tensor:
        self._check_input_dim(x)
        if self.training:
            self._check_batch(x)
            momentum = self._momentum()
            if torch.is_grad_enabled():
                return _ABNTrainFn.apply(x, self.weight, self.bias, self.running_mean, self.running_var, momentum, self.eps)
            y = F.batch_norm(x, self.running_mean, self.running_var, self.weight.abs() + self.eps, self.bias, True, momentum, self.eps)
        else:
            # eval: autograd through abs() gives the sign(w) weight gradient for free
            y = F.batch_norm(x, self.running_mean, self.running_var, self.weight.abs() + self.eps, self.bias, False, 0.0, self.eps)
        return F.leaky_relu_(y, SLOPE)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, activation=leaky_relu({SLOPE})"


class _SyncABNTrainFn(torch.autograd.Function):
    """Training-mode ABN with batch statistics reduced over a process group (any device).

    Forward all-reduces (count, sum, sum of squares) per channel, in float64 to avoid
    cancellation; backward all-reduces (sum dz, sum dz * x_hat). Like :class:`_ABNTrainFn` it
    saves only its output. Weight and bias gradients are local sums: DDP reduces them.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx, x: Tensor, weight: Tensor, bias: Tensor, running_mean: Tensor, running_var: Tensor,
        momentum: float, eps: float, group,
    ) -> Tensor:
        import torch.distributed as dist

        dims = [0, *range(2, x.dim())]
        count = x.numel() // x.shape[1]
        var, mean = torch.var_mean(x, dims, correction=0)
        mean64 = mean.double()
        stats = torch.cat([mean64 * count, (var.double() + mean64 * mean64) * count, mean64.new_full((1,), count)])
        dist.all_reduce(stats, group=group)
        c = x.shape[1]
        n = stats[-1]
        if n.item() <= 1:
            raise ValueError(f"SyncABN: expected more than 1 value per channel when training, got {int(n.item())}")
        mean64 = stats[:c] / n
        var64 = (stats[c:2 * c] / n - mean64 * mean64).clamp_(min=0)
        with torch.no_grad():
            running_mean.lerp_(mean64.to(running_mean.dtype), momentum)
            running_var.lerp_((var64 * n / (n - 1)).to(running_var.dtype), momentum)
        stat_dtype = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
        mean, var = mean64.to(stat_dtype), var64.to(stat_dtype)
        scale = weight.abs() + eps
        # eval-mode batch_norm with the global statistics = one fused normalise + affine pass
        y = F.batch_norm(x, mean, var, scale, bias, False, 0.0, eps)
        F.leaky_relu_(y, SLOPE)
        ctx.eps, ctx.group, ctx.count = eps, group, n.item()
        ctx.save_for_backward(y, weight, bias, torch.rsqrt(var + eps))
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, dy: Tensor):  # type: ignore[override]
        import torch.distributed as dist

        y, weight, bias, invstd = ctx.saved_tensors
        scale = weight.abs() + ctx.eps
        dz = torch.ops.aten.leaky_relu_backward(dy, y, SLOPE, True)
        z = F.leaky_relu(y, 1.0 / SLOPE)
        # local sum(dz * x_hat) and sum(dz), via the native kernel as in _ABNTrainFn
        _, sum_dz_xhat, sum_dz = torch.ops.aten.native_batch_norm_backward(
            dz, z, scale, None, None, bias.to(invstd.dtype), scale.reciprocal().to(invstd.dtype),
            True, ctx.eps, [False, True, True],
        )
        sums = torch.cat([sum_dz, sum_dz_xhat])
        dist.all_reduce(sums, group=ctx.group)
        c = scale.numel()
        mean_dz, mean_dz_xhat = sums[:c] / ctx.count, sums[c:] / ctx.count
        # dx = scale*invstd*(dz - mean_dz - x_hat*mean_dz_xhat), x_hat = (z - bias)/scale
        shape = (1, c) + (1,) * (dz.dim() - 2)
        a = scale * invstd
        b = -invstd * mean_dz_xhat
        k = -a * mean_dz + invstd * mean_dz_xhat * bias
        dx = dz.mul(a.view(shape).to(dz.dtype))
        dx.addcmul_(z, b.view(shape).to(dz.dtype)).add_(k.view(shape).to(dz.dtype))
        dweight = torch.where(weight < 0, -sum_dz_xhat, sum_dz_xhat)
        return dx, dweight, sum_dz, None, None, None, None, None


class SyncABN(ABN):
    """ABN whose training statistics are reduced over a process group (DDP, CPU or GPU).

    Same maths, keys and eval behaviour as :class:`ABN`; when ``torch.distributed`` is not
    initialised or the group has one process, it is exactly :class:`ABN`.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, process_group=None) -> None:
        super().__init__(num_features, eps=eps, momentum=momentum)
        self.process_group = process_group

    def _group(self):
        """The process group to reduce over, or None when there is nothing to synchronise."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return None
        group = self.process_group if self.process_group is not None else dist.group.WORLD
        return group if dist.get_world_size(group) > 1 else None

    def forward(self, x: Tensor) -> Tensor:
        group = self._group() if self.training else None
        if group is None:
            return super().forward(x)
        self._check_input_dim(x)
        momentum = self._momentum()
        return _SyncABNTrainFn.apply(x, self.weight, self.bias, self.running_mean, self.running_var, momentum, self.eps, group)


def make_abn(channels: int, backend: ABNBackend = "auto") -> nn.Module:
    """One ABN layer over ``channels``: ``"torch"`` (pure PyTorch), ``"inplace"`` (extension),
    ``"auto"`` (the extension when importable, else pure PyTorch)."""
    backend = resolve_abn_backend(backend)
    if backend == "inplace":
        from inplace_abn import InPlaceABN

        return InPlaceABN(channels, activation="leaky_relu", activation_param=SLOPE)
    return ABN(channels)


def resolve_abn_backend(backend: str) -> Literal["torch", "inplace"]:
    """Map ``auto`` to a concrete backend; fail clearly when ``inplace`` cannot be imported."""
    if backend not in ("auto", "torch", "inplace"):
        raise ValueError(f"abn backend must be 'auto', 'torch' or 'inplace', got {backend!r}")
    if backend == "torch":
        return "torch"
    if inplace_abn_available():
        return "inplace"
    if backend == "inplace":
        raise ImportError("abn='inplace' needs the inplace_abn extension (scripts/setup.sh builds it)")
    log.debug("inplace_abn not importable: using the pure-PyTorch ABN")
    return "torch"


def is_abn(module: nn.Module) -> bool:
    """True for every ABN flavour (pure, sync, InPlaceABN, InPlaceABNSync)."""
    if isinstance(module, ABN):
        return True
    if inplace_abn_available():
        from inplace_abn import ABN as _ExtABN

        return isinstance(module, _ExtABN)
    return False


def convert_sync_abn(module: nn.Module, process_group=None) -> nn.Module:
    """Replace every ABN by its synchronised twin, in place; returns ``module`` (or the new root).

    :class:`ABN` -> :class:`SyncABN`, ``InPlaceABN`` -> ``InPlaceABNSync``; values, training
    flag and device are kept. Plain BatchNorm layers are left alone (use
    ``nn.SyncBatchNorm.convert_sync_batchnorm`` for those). Call it after
    ``torch.distributed.init_process_group``.
    """
    new = _sync_twin(module, process_group)
    if new is not None:
        return new
    for name, child in module.named_children():
        converted = convert_sync_abn(child, process_group)
        if converted is not child:
            setattr(module, name, converted)
    return module


def _sync_twin(module: nn.Module, process_group) -> nn.Module | None:
    if isinstance(module, SyncABN):
        return None
    if isinstance(module, ABN):
        twin: nn.Module = SyncABN(module.num_features, module.eps, module.momentum, process_group)
    elif inplace_abn_available():
        from inplace_abn import InPlaceABN, InPlaceABNSync

        if type(module) is not InPlaceABN:
            return None
        import torch.distributed as dist

        # InPlaceABNSync's default group is bound when inplace_abn is imported (often None, i.e.
        # no sync at all): resolve WORLD now, after init_process_group.
        group = process_group if process_group is not None else dist.group.WORLD
        twin = InPlaceABNSync(
            module.num_features, eps=module.eps, momentum=module.momentum,
            activation=module.activation, activation_param=module.activation_param, group=group,
        )
    else:
        return None
    twin.load_state_dict(module.state_dict())
    p = next(module.parameters())
    twin.to(device=p.device, dtype=p.dtype).train(module.training)
    for name, param in module.named_parameters(recurse=False):
        getattr(twin, name).requires_grad_(param.requires_grad)
    return twin

