"""Golden outputs of the released DML-CSR code: our network, given the reference's weights, must
compute the reference's function (parsing and both edge heads, eval and train mode, gradients).

The expected arrays in ``tests/data/reference_golden.npz`` were produced by the reference
implementation itself (deepinsight/insightface ``parsing/dml_csr``, built with
``inplace_abn.InPlaceABN`` on CPU) by ``tests/data/make_reference_golden.py``; nothing in them
comes from this project's network.

Tolerances (measured, ``abn="torch"`` against the reference; the ``inplace`` backend runs the
reference's own kernels and agrees to ~1e-6):
- outputs: max |ours - reference| <= 2e-3 x max |reference| (seen: 3e-4);
- gradient arrays: cosine >= 0.995 (seen: >= 0.999) and max error <= 0.1 x max (seen: 0.04);
  the gradients of this random, calibrated network are ill-conditioned: our own network in float32
  differs from itself in float64 by ~4 % (max error) for either backend;
- the two GCN gains' scalar gradients: within 25 % (seen: 5 % and 11 %; float32 vs float64 of the
  same network: 5-7 %).
With the ReLUs of the stem and blocks missing (the bug this test was written for) the outputs are
off by ~30-100 % and the gradients' cosine is ~0.01-0.04.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model import build_model, load_reference_checkpoint
from model.reference import reference_to_ours
from refweights import GOLDEN, reference_shapes, seeded_input, seeded_tensor

OUTPUTS = ("parsing", "binary_edge", "category_edge")
RTOL = 2e-3


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    with np.load(GOLDEN) as data:
        return {k: data[k] for k in data.files}


def _reference_state(golden: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """The reference's state dict as the maker script built it: seeded weights, calibrated stats,
    no num_batches_tracked (like the older released checkpoints)."""
    state = {}
    for name, shape in reference_shapes().items():
        drawn = seeded_tensor(name, shape)
        if drawn is not None:
            state[name] = drawn
        elif not name.endswith("num_batches_tracked"):
            state[name] = torch.from_numpy(golden[f"stat/{name}"])
    return state


def _close(ours: torch.Tensor, expected: np.ndarray, what: str) -> None:
    got = ours.detach().numpy()
    assert got.shape == expected.shape, what
    scale = float(np.abs(expected).max())
    err = float(np.abs(got - expected).max())
    assert err <= RTOL * scale, f"{what}: max |ours - reference| = {err:.4g}, reference max {scale:.4g}"


def _close_gradient(ours: torch.Tensor, expected: np.ndarray, what: str) -> None:
    got = ours.detach().double().numpy().ravel()
    ref = expected.astype(np.float64).ravel()
    assert got.shape == ref.shape, what
    if ref.size == 1:
        assert abs(got[0] - ref[0]) <= 0.25 * abs(ref[0]), f"{what}: {got[0]:.4g} vs reference {ref[0]:.4g}"
        return
    cosine = float(got @ ref / np.sqrt((got @ got) * (ref @ ref)))
    err = float(np.abs(got - ref).max() / np.abs(ref).max())
    assert cosine >= 0.995 and err <= 0.1, f"{what}: cosine {cosine:.4f}, max error {err:.3f} of the reference max"


def _model(golden, abn: str) -> torch.nn.Module:
    net = build_model(11, depth=101, edges=True, conva_kernel=3, abn=abn)
    return load_reference_checkpoint(_reference_state(golden), model=net)


@pytest.mark.slow
@pytest.mark.parametrize("abn", ["torch", "inplace"])
def test_eval_outputs_match_the_reference(golden, abn):
    net = _model(golden, abn).eval()
    with torch.no_grad():
        outputs = net(seeded_input("eval"))
    for name, out in zip(OUTPUTS, outputs):
        _close(out, golden[f"eval/{name}"], f"eval {name} ({abn})")


@pytest.mark.slow
@pytest.mark.parametrize("abn", ["torch", "inplace"])
def test_train_outputs_and_gradients_match_the_reference(golden, abn):
    net = _model(golden, abn).train()
    x = seeded_input("train").requires_grad_(True)
    outputs = net(x * 1.0)
    for name, out in zip(OUTPUTS, outputs):
        _close(out, golden[f"train/{name}"], f"train {name} ({abn})")
    loss = sum((o * seeded_input(f"dy_{i}", tuple(o.shape))).sum() for i, o in enumerate(outputs))
    loss.backward()
    _close_gradient(x.grad, golden["grad/input"], f"input gradient ({abn})")
    params = dict(net.named_parameters())
    names = [k.removeprefix("grad/") for k in golden if k.startswith("grad/") and k != "grad/input"]
    assert len(names) == 7
    for ref_name in names:
        _close_gradient(params[reference_to_ours(ref_name)].grad, golden[f"grad/{ref_name}"], f"grad {ref_name} ({abn})")


def test_inference_model_gives_the_reference_parsing(golden):
    """The decoupled inference model (no edge branches) loads the same weights, same parsing."""
    net = build_model(11, depth=101, edges=False, conva_kernel=3, abn="torch")
    net = load_reference_checkpoint(_reference_state(golden), model=net).eval()
    with torch.no_grad():
        _close(net(seeded_input("eval")), golden["eval/parsing"], "inference parsing")
