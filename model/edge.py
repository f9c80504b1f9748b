"""Edge branches (docs/design.md §2, training only): binary and category edge logits from C2, C3, C4.

The "decoupled" part of DML-CSR: they never see the context module, and the inference model
does not have them at all.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .abn import ABNBackend
from .backbone import Conv2d, ConvABN, scaled


class EdgeBranches(nn.Module):
    """E_i = ConvABN(C_i -> 256); one shared 3x3 conv 256 -> C (bias) on every level; levels 2, 3
    upsampled to C2's size; concat (3C) -> binary edge (1x1 -> 2) and category edge (1x1 -> C).

    Shapes: C2 (N, c2, H4, W4), C3 (N, c3, h, w), C4 (N, c4, h, w) ->
    (binary (N, 2, H4, W4), category (N, C, H4, W4)).
    """

    def __init__(self, in_channels: tuple[int, int, int], num_classes: int, width: float = 1.0, abn: ABNBackend = "auto") -> None:
        super().__init__()
        mid = scaled(256, width)
        self.lateral = nn.ModuleList(ConvABN(c, mid, 1, abn=abn) for c in in_channels)
        self.edge_conv = Conv2d(mid, num_classes, 3, padding=1)  # shared across levels
        self.binary_classifier = nn.Conv2d(3 * num_classes, 2, 1)
        self.category_classifier = nn.Conv2d(3 * num_classes, num_classes, 1)

    def forward(self, c2: Tensor, c3: Tensor, c4: Tensor) -> tuple[Tensor, Tensor]:
        size = c2.shape[-2:]
        levels = []
        for lateral, c in zip(self.lateral, (c2, c3, c4)):
            e = self.edge_conv(lateral(c))
            if e.shape[-2:] != size:
                e = F.interpolate(e, size=size, mode="bilinear", align_corners=True)
            levels.append(e)
        e = torch.cat(levels, dim=1)
        return self.binary_classifier(e), self.category_classifier(e)
