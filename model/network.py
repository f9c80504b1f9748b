"""The DML-CSR network: deep-stem ResNet -> DDGCN -> parsing decoder (+ edge branches in training)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from torch import Tensor, nn

from .abn import ABNBackend
from .backbone import ResNetBackbone
from .ddgcn import DDGCN
from .decoder import ParsingDecoder
from .edge import EdgeBranches

EDGE_PREFIX = "edge."


class DMLCSROutput(NamedTuple):
    """Logits of the training model, all at stride 4 (119x119 for a 473x473 input).

    parsing (N, C, H4, W4), binary_edge (N, 2, H4, W4), category_edge (N, C, H4, W4).
    """

    parsing: Tensor
    binary_edge: Tensor
    category_edge: Tensor


class DMLCSR(nn.Module):
    """DML-CSR face parser.

    Args:
        num_classes: C, including background.
        depth: backbone ResNet depth (18, 34, 50, 101).
        edges: build the edge branches (training model). The inference model (False) has no
            edge parameters at all and returns the parsing logits only.
        conva_kernel: 3 (released code) or 1 (paper) for the context module's first conv.
        width: channel multiplier (1.0 = paper sizes).
        abn: "auto" | "torch" | "inplace", see :func:`model.abn.make_abn`.

    ``forward(x (N, 3, H, W))`` returns :class:`DMLCSROutput` when ``edges`` else the parsing
    logits (N, C, H4, W4), H4 = ceil(ceil(H / 2) / 2) (stride-2 stem conv, floor-mode max pool).
    """

    def __init__(
        self, num_classes: int, depth: int = 101, edges: bool = True, conva_kernel: int = 3,
        width: float = 1.0, abn: ABNBackend = "auto",
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.backbone = ResNetBackbone(depth, width, abn)
        c2, c3, c4, c5 = self.backbone.channels
        self.context = DDGCN(c5, conva_kernel, width, abn)
        self.decoder = ParsingDecoder(self.context.out_channels, c2, num_classes, width, abn)
        self.edge = EdgeBranches((c2, c3, c4), num_classes, width, abn) if edges else None
        if self.edge is None:
            # decoupled: a training checkpoint loads (strictly) into the inference model
            self.register_load_state_dict_pre_hook(_drop_edge_keys)

    @property
    def has_edges(self) -> bool:
        return self.edge is not None

    def forward_features(self, x: Tensor) -> list[Tensor]:
        """Backbone features [C2, C3, C4, C5] (strides 4, 8, 8, 8)."""
        return self.backbone(x)

    def forward_parsing(self, features: list[Tensor]) -> Tensor:
        """Parsing logits (N, C, H4, W4) from the backbone features."""
        return self.decoder(self.context(features[3]), features[0])

    def forward(self, x: Tensor) -> DMLCSROutput | Tensor:
        features = self.forward_features(x)
        parsing = self.forward_parsing(features)
        if self.edge is None:
            return parsing
        binary, category = self.edge(*features[:3])
        return DMLCSROutput(parsing, binary, category)


def _drop_edge_keys(module: nn.Module, state_dict: dict, prefix: str, *_args) -> None:
    for key in [k for k in state_dict if k.startswith(prefix + EDGE_PREFIX)]:
        del state_dict[key]


def inference_state_dict(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """A training-model state dict without the edge branches, for the inference model."""
    return {k: v for k, v in state_dict.items() if not k.removeprefix("module.").startswith(EDGE_PREFIX)}


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Weights + biases + BN affine parameters (no buffers)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
