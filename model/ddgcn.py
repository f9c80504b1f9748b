"""DDGCN context module (docs/design.md §2): a spatial GCN and a feature GCN over the C5 features.

(N, C5, h, w) -> (N, 512, h, w) at width 1.0; h, w = 60 for a 473 input. No pooling anywhere:
the spatial graph's nodes come from three strided depthwise convolutions (60 -> 30 -> 15 -> 8).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .abn import ABNBackend
from .backbone import ConvABN, scaled


class SpatialGCN(nn.Module):
    """Spatial graph reasoning on a downsampled grid, added back as a multiplicative refinement.

    D = three depthwise 3x3 stride-2 ConvABN of F (nodes = pixels of D).
    K, Q, V = 1x1 convs of D to ``inner`` channels; A = softmax_last(Q V^T) (inner x inner,
    input-dependent adjacency); M = K^T A; S = ConvABN(BN1d(Conv1d(M))); out = gamma S + D;
    L = bilinear upsample of out to F's size; returns P = F * L + F.

    Shapes: F (N, C, H, W) -> P (N, C, H, W).
    """

    def __init__(self, channels: int, inner: int, abn: ABNBackend = "auto") -> None:
        super().__init__()
        self.downsample = nn.Sequential(
            *(ConvABN(channels, channels, 3, stride=2, groups=channels, abn=abn) for _ in range(3))
        )
        self.key = nn.Conv2d(channels, inner, 1)
        self.query = nn.Conv2d(channels, inner, 1)
        self.value = nn.Conv2d(channels, inner, 1)
        self.graph_conv = nn.Conv1d(inner, inner, 1, bias=False)
        self.graph_bn = nn.BatchNorm1d(inner)
        self.out = ConvABN(inner, channels, 1, bias=True, abn=abn)
        self.gamma = nn.Parameter(torch.zeros(1))  # starts as identity: out = D

    def forward(self, f: Tensor) -> Tensor:
        d = self.downsample(f)
        n, _, h, w = d.shape
        k = self.key(d).flatten(2)  # (N, inner, n)
        q = self.query(d).flatten(2)
        v = self.value(d).flatten(2)
        adjacency = torch.softmax(torch.bmm(q, v.transpose(1, 2)), dim=-1)  # (N, inner, inner)
        m = torch.bmm(adjacency.transpose(1, 2), k)  # = (K^T A)^T: (N, inner, n)
        m = self.graph_bn(self.graph_conv(m))
        s = self.out(m.view(n, -1, h, w))
        out = torch.addcmul(d, s, self.gamma.view(1, -1, 1, 1))  # gamma * S + D
        lifted = F.interpolate(out, size=f.shape[-2:], mode="bilinear", align_corners=True)
        return torch.addcmul(f, f, lifted)  # F * L + F


class FeatureGCN(nn.Module):
    """Graph reasoning in feature space: ``nodes`` graph nodes of ``inner`` channels.

    Phi = ABN(1x1 F) (inner x HW), Theta = ABN(1x1 F) (nodes x HW); Z0 = Phi Theta^T (inner x
    nodes); Z1 = Z0 + BN1d(Conv1d over nodes (Z0^T))^T; Z2 = BN1d(Conv1d over channels (Z1));
    Y = ConvABN(Z2 Theta); returns G = gamma Y + F.

    Shapes: F (N, C, H, W) -> G (N, C, H, W).
    """

    def __init__(self, channels: int, inner: int, nodes: int, abn: ABNBackend = "auto") -> None:
        super().__init__()
        self.phi = ConvABN(channels, inner, 1, abn=abn)
        self.theta = ConvABN(channels, nodes, 1, abn=abn)
        self.node_conv = nn.Conv1d(nodes, nodes, 1, bias=False)
        self.node_bn = nn.BatchNorm1d(nodes)
        self.channel_conv = nn.Conv1d(inner, inner, 1, bias=False)
        self.channel_bn = nn.BatchNorm1d(inner)
        self.out = ConvABN(inner, channels, 1, abn=abn)
        self.gamma = nn.Parameter(torch.zeros(1))  # starts as identity: G = F

    def forward(self, f: Tensor) -> Tensor:
        n, _, h, w = f.shape
        phi = self.phi(f).flatten(2)  # (N, inner, HW)
        theta = self.theta(f).flatten(2)  # (N, nodes, HW)
        z = torch.bmm(phi, theta.transpose(1, 2))  # (N, inner, nodes)
        z = z + self.node_bn(self.node_conv(z.transpose(1, 2))).transpose(1, 2)
        z = self.channel_bn(self.channel_conv(z))
        y = self.out(torch.bmm(z, theta).view(n, -1, h, w))
        return torch.addcmul(f, y, self.gamma.view(1, -1, 1, 1))  # gamma * Y + F


class DDGCN(nn.Module):
    """The DML-CSR context module on C5.

    F = ConvABN_k(C5) (k = ``conva_kernel``: 3 in the released code, 1 in the paper);
    P = SpatialGCN(F), G = FeatureGCN(F); H = ConvABN3(ConvABN1([P, G]));
    returns Xc = ConvABN3([C5, H]).

    Args:
        in_channels: C5 channels (2048 for ResNet-50/101 at width 1).
        width: channel multiplier for 512 / 256 / 128 (the paper's sizes at 1.0).

    Shapes: (N, in_channels, h, w) -> (N, out_channels, h, w).
    """

    def __init__(self, in_channels: int, conva_kernel: int = 3, width: float = 1.0, abn: ABNBackend = "auto") -> None:
        super().__init__()
        if conva_kernel not in (1, 3):
            raise ValueError(f"conva_kernel must be 1 or 3, got {conva_kernel}")
        c, inner, nodes = scaled(512, width), scaled(256, width), scaled(128, width)
        self.out_channels = c
        self.conva = ConvABN(in_channels, c, conva_kernel, abn=abn)
        self.spatial_gcn = SpatialGCN(c, inner, abn=abn)
        self.feature_gcn = FeatureGCN(c, inner, nodes, abn=abn)
        self.fuse = ConvABN(2 * c, c, 1, abn=abn)
        self.convb = ConvABN(c, c, 3, abn=abn)
        self.bottleneck = ConvABN(in_channels + c, c, 3, abn=abn)

    def forward(self, c5: Tensor) -> Tensor:
        f = self.conva(c5)
        h = self.fuse(torch.cat([self.spatial_gcn(f), self.feature_gcn(f)], dim=1))
        h = self.convb(h)
        return self.bottleneck(torch.cat([c5, h], dim=1))
