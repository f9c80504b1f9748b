"""Deep-stem ResNet with output stride 8 (docs/design.md §2), every BN an ABN, and its conv building blocks.

Module names follow the common deep-stem ImageNet checkpoints (conv1, bn1, conv2, bn2, conv3,
bn3, layer1..layer4, blocks with conv1..3, bn1..3, downsample.0/.1) so they load unchanged.

The activations follow the reference code, not only its maths: ``relu(abn(conv(x)))`` in the stem
and after bn1/bn2 of every block (docs/design.md, "The network").

Shapes for a 473x473 input: stem 237 -> maxpool 119 = C2 (layer1), 60 = C3 (layer2, s2),
C4 (layer3, s1, dilation 1), C5 (layer4, s1, dilation 2).

On CPU, the large 3x3 stride-1 convolutions run as Winograd convolutions (`model.winograd`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

import torch
from torch import Tensor, nn

from .abn import ABNBackend, make_abn
from .winograd import Conv2d, set_winograd

__all__ = ["ResNetBackbone", "ConvABN", "Conv2d", "set_winograd", "load_pretrained_backbone", "scaled"]

log = logging.getLogger(__name__)

# depth -> (block kind, blocks per layer)
RESNET_LAYERS: dict[int, tuple[str, tuple[int, int, int, int]]] = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
}

NormFactory = Callable[[int], nn.Module]

def scaled(channels: int, width: float) -> int:
    """A channel count times the width multiplier (at least 1); exact at width 1.0."""
    return max(1, int(round(channels * width)))


def conv3x3(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    return Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)


def conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, stride=stride, bias=False)


class ConvABN(nn.Sequential):
    """Conv2d ('same' padding, no bias unless asked) then ABN: (N, cin, H, W) -> (N, cout, H/s, W/s)."""

    def __init__(
        self, cin: int, cout: int, kernel_size: int = 1, stride: int = 1, groups: int = 1,
        bias: bool = False, abn: ABNBackend = "auto",
    ) -> None:
        super().__init__()
        self.conv = Conv2d(cin, cout, kernel_size, stride=stride, padding=kernel_size // 2, groups=groups, bias=bias)
        self.bn = make_abn(cout, abn)


class BasicBlock(nn.Module):
    """Two 3x3 convs, each followed by ABN; a ReLU after the first ABN (as the bottleneck's)
    and after the residual addition."""

    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int, dilation: int, downsample: nn.Module | None, norm: NormFactory) -> None:
        super().__init__()
        self.conv1 = conv3x3(cin, planes, stride, dilation)
        self.bn1 = norm(planes)
        self.conv2 = conv3x3(planes, planes, 1, dilation)
        self.bn2 = norm(planes)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        return torch.relu_(out + identity)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride, dilation) -> 1x1 x4, each followed by ABN; ReLU after the addition.

    As in the reference code, a plain ReLU also follows the first two ABNs (``relu(abn(conv))``),
    which makes those activations ReLU rather than LeakyReLU(0.01); bn3 has none before the
    addition. The ReLUs are not in place: an in-place ABN keeps its output for its backward.
    """

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int, dilation: int, downsample: nn.Module | None, norm: NormFactory) -> None:
        super().__init__()
        self.conv1 = conv1x1(cin, planes)
        self.bn1 = norm(planes)
        self.conv2 = conv3x3(planes, planes, stride, dilation)
        self.bn2 = norm(planes)
        self.conv3 = conv1x1(planes, planes * 4)
        self.bn3 = norm(planes * 4)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = torch.relu(self.bn1(self.conv1(x)))
        out = torch.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return torch.relu_(out + identity)


class ResNetBackbone(nn.Module):
    """Deep-stem ResNet-{18,34,50,101}, output stride 8.

    Args:
        depth: 18 or 34 (basic blocks), 50 or 101 (bottlenecks).
        width: channel multiplier (1.0 = the paper's network; 0.25-0.5 for CPU presets).
        abn: ABN backend, see :func:`model.abn.make_abn`.

    ``forward(x (N, 3, H, W))`` returns [C2, C3, C4, C5] at strides 4, 8, 8, 8 with
    :attr:`channels` channels (256, 512, 1024, 2048 for depth 50/101 at width 1).
    """

    def __init__(self, depth: int = 101, width: float = 1.0, abn: ABNBackend = "auto") -> None:
        super().__init__()
        if depth not in RESNET_LAYERS:
            raise ValueError(f"depth must be one of {sorted(RESNET_LAYERS)}, got {depth}")
        kind, blocks = RESNET_LAYERS[depth]
        block = Bottleneck if kind == "bottleneck" else BasicBlock
        norm: NormFactory = lambda c: make_abn(c, abn)  # noqa: E731
        s64, s128 = scaled(64, width), scaled(128, width)

        self.conv1 = conv3x3(3, s64, stride=2)
        self.bn1 = norm(s64)
        self.conv2 = conv3x3(s64, s64)
        self.bn2 = norm(s64)
        self.conv3 = conv3x3(s64, s128)
        self.bn3 = norm(s128)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)  # floor mode, as the reference

        self._cin = s128
        # (planes, stride, dilation) per layer: output stride 8, dilation 2 only in layer4
        specs = ((64, 1, 1), (128, 2, 1), (256, 1, 1), (512, 1, 2))
        self.layer1, self.layer2, self.layer3, self.layer4 = (
            self._make_layer(block, scaled(p, width), n, s, d, norm) for (p, s, d), n in zip(specs, blocks)
        )
        self.channels: tuple[int, int, int, int] = tuple(scaled(p, width) * block.expansion for p, _, _ in specs)  # type: ignore[assignment]
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def _make_layer(self, block: type[nn.Module], planes: int, n: int, stride: int, dilation: int, norm: NormFactory) -> nn.Sequential:
        cout = planes * block.expansion
        downsample = None
        if stride != 1 or self._cin != cout:
            downsample = nn.Sequential(conv1x1(self._cin, cout, stride), norm(cout))
        layers = [block(self._cin, planes, stride, dilation, downsample, norm)]
        layers += [block(cout, planes, 1, dilation, None, norm) for _ in range(n - 1)]
        self._cin = cout
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> list[Tensor]:
        # relu(abn(conv)) as in the reference stem: ReLU, not LeakyReLU, reaches the next conv
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.bn2(self.conv2(x)))
        x = self.maxpool(torch.relu(self.bn3(self.conv3(x))))
        c2 = self.layer1(x)
        c3 = self.layer2(c2)
        c4 = self.layer3(c3)
        c5 = self.layer4(c4)
        return [c2, c3, c4, c5]


def load_pretrained_backbone(backbone: ResNetBackbone, path: str | os.PathLike[str], strict: bool = False) -> tuple[list[str], list[str]]:
    """Load ImageNet weights for the backbone from a LOCAL file (never downloads).

    Accepts a plain state dict or one wrapped as {"state_dict": ...} / {"model": ...}, with or
    without a "module." prefix; the classifier (fc.*) is dropped. Returns (missing, unexpected)
    key lists, which are also logged; with ``strict=True`` either being non-empty is an error.
    Shape mismatches are always an error.
    """
    path = os.fspath(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unreadable, not a torch file, or pickled objects
        raise RuntimeError(f"cannot read pretrained backbone weights from {path!r}: {exc}") from exc
    for wrapper in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict):
        raise RuntimeError(f"{path!r} does not hold a state dict (got {type(state).__name__})")
    state = {k.removeprefix("module."): v for k, v in state.items() if not k.removeprefix("module.").startswith("fc.")}
    own = backbone.state_dict()
    bad = [f"{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}" for k, v in state.items() if k in own and own[k].shape != v.shape]
    if bad:
        raise RuntimeError(f"shape mismatch loading {path!r} into the backbone (wrong depth or width?): " + "; ".join(bad[:10]))
    result = backbone.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    unexpected = list(result.unexpected_keys)
    if missing:
        log.warning("%s: %d backbone tensors not in the file (kept at init): %s", path, len(missing), ", ".join(missing[:20]))
    if unexpected:
        log.warning("%s: %d tensors in the file not used by the backbone: %s", path, len(unexpected), ", ".join(unexpected[:20]))
    if strict and (missing or unexpected):
        raise RuntimeError(f"{path!r} does not match the backbone: missing {missing[:20]}, unexpected {unexpected[:20]}")
    log.info("loaded backbone weights from %s (%d tensors)", path, len(state) - len(unexpected))
    return missing, unexpected
