"""DML-CSR face-parsing network (CVPR 2022), usable on its own; never imports ``labelaudit``.

    from model import build_model
    net = build_model(num_classes=11)            # training model: (parsing, binary_edge, category_edge)
    teacher = build_model(11, edges=False)       # inference model: parsing logits only

Submodules are imported lazily so that ``import model`` does not load torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

# public name -> submodule that defines it
_EXPORTS = {
    "DMLCSR": "network",
    "DMLCSROutput": "network",
    "inference_state_dict": "network",
    "count_parameters": "network",
    "ABN": "abn",
    "SyncABN": "abn",
    "make_abn": "abn",
    "convert_sync_abn": "abn",
    "inplace_abn_available": "abn",
    "is_abn": "abn",
    "ResNetBackbone": "backbone",
    "ConvABN": "backbone",
    "set_winograd": "winograd",
    "load_pretrained_backbone": "backbone",
    "DDGCN": "ddgcn",
    "load_reference_checkpoint": "reference",
}

__all__ = ["build_model", *_EXPORTS]


def build_model(
    num_classes: int,
    depth: int = 101,
    edges: bool = True,
    conva_kernel: int = 3,
    width: float = 1.0,
    abn: str = "auto",
) -> nn.Module:
    """Build DML-CSR.

    Args:
        num_classes: C including background (LaPa/Helen 11, CelebAMask-HQ 19).
        depth: backbone ResNet depth, 18/34/50/101 (101 = paper).
        edges: True = training model returning (parsing, binary_edge, category_edge) logits;
            False = inference model (no edge branches) returning parsing logits only.
        conva_kernel: 3 (released code, 68.06M params for C=11) or 1 (paper, 59.67M).
        width: channel multiplier for CPU-sized presets (1.0 = paper).
        abn: "auto" (inplace_abn if importable), "torch" (pure PyTorch) or "inplace".

    All logits are at stride 4: (N, *, 119, 119) for a (N, 3, 473, 473) input.
    """
    from .network import DMLCSR

    return DMLCSR(num_classes, depth=depth, edges=edges, conva_kernel=conva_kernel, width=width, abn=abn)  # type: ignore[arg-type]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
