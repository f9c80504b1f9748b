"""Winograd 3x3 convolutions on CPU through NNPACK, which ships inside torch.

The large 3x3 stride-1 convolutions (most of the paper model's 253 GMAC) run about 2x faster this
way than with the default oneDNN kernels on this project's machines, forward and input gradient.
:class:`Conv2d` is ``nn.Conv2d`` (same arguments, same state-dict keys) that uses them where they
pay; :func:`set_winograd` turns them off.
"""

from __future__ import annotations

import logging
import os

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

log = logging.getLogger(__name__)

_winograd: bool | None = None  # None: decide on first use (NNPACK present and working)


def set_winograd(enabled: bool) -> None:
    """Use (True) or never use (False) NNPACK Winograd for CPU 3x3 convolutions.

    Results differ from oneDNN's by ~1e-5 relative (Winograd rounding); the environment
    variable ``DMLCSR_WINOGRAD=0`` also turns it off.
    """
    global _winograd
    _winograd = bool(enabled) and _nnpack_works()


def _nnpack_works() -> bool:
    # is_available() also initialises NNPACK: without it every call fails
    return os.environ.get("DMLCSR_WINOGRAD", "1") != "0" and torch.backends.nnpack.is_available()


def _nnpack_conv(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """3x3, stride 1, padding 1 through NNPACK, one image at a time: its batch-1 path is the
    Winograd one (its batched path is slower than oneDNN)."""
    outs = [torch._nnpack_spatial_convolution(x[i : i + 1], weight, bias, [1, 1], [1, 1]) for i in range(x.shape[0])]
    return outs[0] if len(outs) == 1 else torch.cat(outs)


class _WinogradConv3x3(torch.autograd.Function):
    """conv2d(x, w, b, padding=1) with the forward and the input gradient on NNPACK.

    The input gradient of a stride-1 'same' 3x3 convolution is itself one: dy convolved with the
    flipped, transposed kernel. The weight gradient stays on oneDNN.
    """

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:  # type: ignore[override]
        ctx.has_bias = bias is not None
        ctx.save_for_backward(x, weight)
        return _nnpack_conv(x, weight, bias if bias is not None else weight.new_zeros(weight.shape[0]))

    @staticmethod
    @once_differentiable
    def backward(ctx, dy: Tensor):  # type: ignore[override]
        x, weight = ctx.saved_tensors
        dy = dy.contiguous()
        dx = dw = db = None
        if ctx.needs_input_grad[0]:
            flipped = weight.transpose(0, 1).flip(2, 3).contiguous()
            dx = _nnpack_conv(dy, flipped, weight.new_zeros(weight.shape[1]))
        need_w, need_b = ctx.needs_input_grad[1], ctx.has_bias and ctx.needs_input_grad[2]
        if need_w or need_b:
            _, dw, db = torch.ops.aten.convolution_backward(
                dy, x, weight, [weight.shape[0]] if ctx.has_bias else None,
                [1, 1], [1, 1], [1, 1], False, [0, 0], 1, [False, need_w, need_b],
            )
        return dx, dw, db


# Measured on 2-core Zen 3 (torch 2.13): NNPACK's per-image Winograd beats oneDNN by 1.5-3x on
# large maps with enough channels (the paper model at 473: 64->128 at 237^2, 256..2560->512 at
# 60^2) and loses up to 3x on small maps (the CPU presets' 16^2-33^2), whatever the batch.
_WINOGRAD_MIN_PIXELS = 48 * 48
_WINOGRAD_MIN_WORK = 100_000_000  # in_channels * out_channels * pixels, per image


def _winograd_pays(cin: int, cout: int, pixels: int) -> bool:
    return pixels >= _WINOGRAD_MIN_PIXELS and cin * cout * pixels >= _WINOGRAD_MIN_WORK


class Conv2d(nn.Conv2d):
    """``nn.Conv2d`` (same arguments and state-dict keys) that runs 3x3 stride-1 convolutions
    as Winograd on CPU (see :func:`set_winograd`); everything else goes to ``nn.Conv2d``."""

    def _winograd_applies(self, x: Tensor) -> bool:
        d = self.dilation[0]
        return (
            self.kernel_size == (3, 3) and self.stride == (1, 1) and self.dilation == (d, d)
            and self.padding == (d, d) and d in (1, 2) and self.groups == 1 and self.padding_mode == "zeros"
            and x.device.type == "cpu" and x.dtype == torch.float32 and self.weight.dtype == torch.float32
            and x.dim() == 4 and x.is_contiguous() and (d == 1 or x.shape[-2] % 2 == x.shape[-1] % 2 == 0)
            and _winograd_pays(self.in_channels, self.out_channels, x.shape[-2] * x.shape[-1])
            and not torch.is_autocast_enabled("cpu") and not torch.compiler.is_compiling()
        )

    def _conv_forward(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        global _winograd
        if _winograd is None:
            _winograd = _nnpack_works()
        if _winograd and self._winograd_applies(x):
            try:
                if self.dilation == (1, 1):
                    return _WinogradConv3x3.apply(x, weight, bias)
                return _dilated_as_polyphase(x, weight, bias)
            except RuntimeError as exc:  # an NNPACK build that cannot run here: never try again
                log.warning("NNPACK Winograd convolution failed (%s); using oneDNN from now on", exc)
                _winograd = False
        return super()._conv_forward(x, weight, bias)


def _dilated_as_polyphase(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """A dilation-2 'same' 3x3 convolution (layer4) as one undilated convolution.

    Output pixel (h, w) only reads input pixels of the same parity, so each of the four 2x2
    phase grids (H/2 x W/2) is an independent padding-1 convolution. The phases are laid out
    as a 2x2 mosaic with one zero row and column between them (the padding they share), so one
    Winograd call with one kernel transform covers them: (N, C, H, W) -> (N, C, H+1, W+1) ->
    conv -> drop the separator -> interleave back. Needs even H, W.
    """
    n, c, h, w = x.shape
    h2, w2 = h // 2, w // 2
    phases = x.view(n, c, h2, 2, w2, 2)
    mosaic = x.new_zeros(n, c, h + 1, w + 1)
    for i in range(2):
        for j in range(2):
            mosaic[:, :, i * (h2 + 1) : i * (h2 + 1) + h2, j * (w2 + 1) : j * (w2 + 1) + w2] = phases[:, :, :, i, :, j]
    y = _WinogradConv3x3.apply(mosaic, weight, bias)
    rows = [
        torch.stack([y[:, :, r : r + h2, :w2], y[:, :, r : r + h2, w2 + 1 :]], dim=-1)  # (N, Cout, h2, w2, 2)
        for r in (0, h2 + 1)
    ]
    return torch.stack(rows, dim=3).view(n, -1, h, w)  # (N, Cout, h2, 2, w2, 2) -> (N, Cout, H, W)
