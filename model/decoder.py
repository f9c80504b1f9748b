"""Parsing decoder (docs/design.md §2): context features + low-level C2 features -> parsing logits at stride 4."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .abn import ABNBackend
from .backbone import ConvABN, scaled


class ParsingDecoder(nn.Module):
    """T = up(ConvABN(Xc -> 256)) to C2's size; L = ConvABN(C2 -> 48);
    logits = Conv1x1(ConvABN(ConvABN([T, L] -> 256) -> 256) -> C, bias).

    Shapes: Xc (N, context_channels, h, w), C2 (N, low_channels, H4, W4) -> (N, C, H4, W4).
    """

    def __init__(self, context_channels: int, low_channels: int, num_classes: int, width: float = 1.0, abn: ABNBackend = "auto") -> None:
        super().__init__()
        mid, low = scaled(256, width), scaled(48, width)
        self.context_reduce = ConvABN(context_channels, mid, 1, abn=abn)
        self.low_reduce = ConvABN(low_channels, low, 1, abn=abn)
        self.fuse = nn.Sequential(ConvABN(mid + low, mid, 1, abn=abn), ConvABN(mid, mid, 1, abn=abn))
        self.classifier = nn.Conv2d(mid, num_classes, 1)

    def forward(self, context: Tensor, c2: Tensor) -> Tensor:
        t = F.interpolate(self.context_reduce(context), size=c2.shape[-2:], mode="bilinear", align_corners=True)
        return self.classifier(self.fuse(torch.cat([t, self.low_reduce(c2)], dim=1)))
