"""Seeded weights with the released DML-CSR code's tensor names, for the golden-output test.

Used twice: by ``tests/data/make_reference_golden.py`` (run by hand against the reference code in a
scratch folder) and by ``tests/test_model_golden.py`` (against our network). Every tensor is drawn
from its own generator, seeded by the run seed and the tensor's name, so the values do not depend
on the order in which a model lists its tensors. BN running statistics are not drawn: the maker
script calibrates them on the reference network and stores them beside its outputs.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import torch

KEYS_TSV = Path(__file__).parent / "data" / "reference-dmlcsr-keys.tsv"  # copy of shared/reference-dmlcsr-keys.tsv
GOLDEN = Path(__file__).parent / "data" / "reference_golden.npz"
SEED = 20221201
INPUT_SHAPE = (2, 3, 128, 160)  # small, not square, and a size where a ceil-mode max pool differs


def reference_shapes() -> dict[str, tuple[int, ...]]:
    """Reference tensor name -> shape, from the key list of the released 11-class model."""
    shapes = {}
    for line in KEYS_TSV.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, shape = line.split("\t")
        shapes[name] = () if shape == "scalar" else tuple(int(d) for d in shape.split("x"))
    return shapes


def _generator(name: str, seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(name.encode()))


def seeded_tensor(name: str, shape: tuple[int, ...], seed: int = SEED) -> torch.Tensor | None:
    """The value of one learnable tensor, or None for BN statistics (calibrated, not drawn).

    Convolutions: He-normal on their fan-in. Norm weights: |w| in [0.5, 1.5) with a random sign
    (InPlaceABN scales by |w| + eps, plain BatchNorm1d by w: negative weights tell them apart).
    Biases: N(0, 0.1). The GCN gains (gamma): in [0.5, 1) so that both graph branches matter.
    """
    if name.endswith(("running_mean", "running_var", "num_batches_tracked")):
        return None
    g = _generator(name, seed)
    if name.endswith("gamma") or name.endswith("gamma1"):
        return 0.5 + 0.5 * torch.rand(shape, generator=g)
    if name.endswith(".bias"):
        return 0.1 * torch.randn(shape, generator=g)
    if len(shape) == 1:  # a norm layer's weight
        sign = torch.where(torch.rand(shape, generator=g) < 0.3, -1.0, 1.0)
        return sign * (0.5 + torch.rand(shape, generator=g))
    fan_in = 1
    for d in shape[1:]:
        fan_in *= d
    return torch.randn(shape, generator=g) * (2.0 / fan_in) ** 0.5


def seeded_input(tag: str, shape: tuple[int, ...] = INPUT_SHAPE, seed: int = SEED) -> torch.Tensor:
    """A seeded input-like tensor (images, gradient weights) named by ``tag``."""
    return torch.randn(shape, generator=_generator("input:" + tag, seed))
