"""Make tests/data/reference_golden.npz from the released DML-CSR code (run by hand, not in CI).

    python tests/data/make_reference_golden.py --reference /scratch/insightface/parsing/dml_csr

``--reference`` is a checkout of deepinsight/insightface's ``parsing/dml_csr`` folder; it is never
committed or copied into this project. The script builds the reference's 11-class training model
with ``inplace_abn.InPlaceABN`` (its single-process ABN) on CPU, fills its weights from
``tests/refweights.py`` (seeded per tensor name), calibrates every BN running statistic on one
seeded batch (momentum 1: the statistics of that batch, like a trained network's rather than the
default 0/1), and stores, all float32:

- ``stat/<name>``: the calibrated running_mean / running_var, by reference name;
- ``eval/{parsing,binary_edge,category_edge}``: eval-mode outputs for ``seeded_input("eval")``;
- ``train/...``: train-mode outputs (batch statistics) for ``seeded_input("train")``;
- ``grad/input`` and ``grad/<name>`` for a few weights: gradients of
  sum_i <output_i, seeded_input("dy_i")> in train mode;
- ``meta/seed``, ``meta/input_shape``, ``meta/torch``, ``meta/inplace_abn`` (versions as strings).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from refweights import GOLDEN, INPUT_SHAPE, SEED, seeded_input, seeded_tensor  # noqa: E402

# small tensors spread over the network: stem, a block, an ABN weight deep in layer3, both GCN
# gains, the classifier and the shared edge conv
GRAD_WEIGHTS = ("conv1.weight", "layer1.0.conv1.weight", "layer3.22.bn3.weight",
                "context.dualgcn.gcn_local_attention.gamma", "context.dualgcn.gamma1",
                "layer6.conv4.weight", "edge_layer.conv4.weight")
OUTPUTS = ("parsing", "binary_edge", "category_edge")


def _bn_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    return [m for m in model.modules() if isinstance(getattr(m, "running_mean", None), torch.Tensor)]


def build_reference(reference: Path) -> torch.nn.Module:
    from inplace_abn import InPlaceABN

    sys.path.insert(0, str(reference))
    from networks.dml_csr import DML_CSR  # the reference code, from the scratch checkout

    model = DML_CSR(11, abn=InPlaceABN, trained=True)
    state = model.state_dict()
    for name, value in state.items():
        drawn = seeded_tensor(name, tuple(value.shape))
        if drawn is not None:
            state[name] = drawn
    model.load_state_dict(state)
    return model


@torch.no_grad()
def calibrate(model: torch.nn.Module) -> None:
    layers = _bn_layers(model)
    for m in layers:
        m.momentum = 1.0
    model.train()
    model(seeded_input("calibrate", (4, *INPUT_SHAPE[1:])))
    for m in layers:
        m.momentum = 0.1
    model.eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reference", type=Path, required=True, help="the reference's parsing/dml_csr folder")
    ap.add_argument("--out", type=Path, default=GOLDEN)
    args = ap.parse_args()
    import inplace_abn

    torch.manual_seed(0)
    model = build_reference(args.reference)
    calibrate(model)
    out: dict[str, np.ndarray] = {f"stat/{k}": v.numpy().copy() for k, v in model.state_dict().items()
                                  if k.endswith(("running_mean", "running_var"))}
    with torch.no_grad():
        for name, t in zip(OUTPUTS, model(seeded_input("eval"))):
            out[f"eval/{name}"] = t.numpy().copy()

    model.train()
    x = seeded_input("train").requires_grad_(True)
    outputs = model(x * 1.0)  # InPlaceABN refuses to overwrite a leaf; conv1 sees a copy anyway
    loss = sum((o * seeded_input(f"dy_{i}", tuple(o.shape))).sum() for i, o in enumerate(outputs))
    loss.backward()
    for name, t in zip(OUTPUTS, outputs):
        out[f"train/{name}"] = t.detach().numpy().copy()
    params = dict(model.named_parameters())
    out["grad/input"] = x.grad.numpy().copy()
    for name in GRAD_WEIGHTS:
        out[f"grad/{name}"] = params[name].grad.numpy().copy()
    out["meta/seed"] = np.array(SEED)
    out["meta/input_shape"] = np.array(INPUT_SHAPE)
    out["meta/torch"] = np.array(torch.__version__)
    out["meta/inplace_abn"] = np.array(getattr(inplace_abn, "__version__", "?"))
    np.savez_compressed(args.out, **out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB, {len(out)} arrays)")


if __name__ == "__main__":
    main()
