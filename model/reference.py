"""Load checkpoints of the released DML-CSR code into :class:`model.network.DMLCSR`.

The reference names its modules differently (``layer6`` for the decoder, ``dualgcn.local`` for the
spatial downsampling, ...). :data:`REFERENCE_TO_OURS` is the whole mapping, as name prefixes:
a reference tensor ``<ref prefix><rest>`` is our tensor ``<our prefix><rest>``; entries without a
trailing dot are whole tensor names. Loading is strict: every reference tensor lands in exactly one
of our tensors with the same shape, and every one of our tensors is covered (num_batches_tracked
may be absent from old checkpoints).

The reference feeds BGR images normalised with RGB-ordered ImageNet statistics; to reproduce its
numbers with its weights, the data pipeline must do the same (docs/design.md §2).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

import torch
from torch import Tensor, nn

log = logging.getLogger(__name__)

# reference prefix (or full name) -> ours
REFERENCE_TO_OURS: tuple[tuple[str, str], ...] = (
    # backbone: the reference keeps it at the top level
    *((f"{m}.", f"backbone.{m}.") for m in ("conv1", "bn1", "conv2", "bn2", "conv3", "bn3")),
    *((f"layer{i}.", f"backbone.layer{i}.") for i in range(1, 5)),
    # DDGCN context module
    ("context.conva.0.", "context.conva.conv."),
    ("context.conva.1.", "context.conva.bn."),
    *((f"context.dualgcn.local.{2 * i}.", f"context.spatial_gcn.downsample.{i}.conv.") for i in range(3)),
    *((f"context.dualgcn.local.{2 * i + 1}.", f"context.spatial_gcn.downsample.{i}.bn.") for i in range(3)),
    ("context.dualgcn.gcn_local_attention.node_k.", "context.spatial_gcn.key."),
    ("context.dualgcn.gcn_local_attention.node_q.", "context.spatial_gcn.query."),
    ("context.dualgcn.gcn_local_attention.node_v.", "context.spatial_gcn.value."),
    ("context.dualgcn.gcn_local_attention.conv_wg.", "context.spatial_gcn.graph_conv."),
    ("context.dualgcn.gcn_local_attention.bn_wg.", "context.spatial_gcn.graph_bn."),
    ("context.dualgcn.gcn_local_attention.out.0.", "context.spatial_gcn.out.conv."),
    ("context.dualgcn.gcn_local_attention.out.1.", "context.spatial_gcn.out.bn."),
    ("context.dualgcn.gcn_local_attention.gamma", "context.spatial_gcn.gamma"),
    ("context.dualgcn.phi.", "context.feature_gcn.phi.conv."),
    ("context.dualgcn.bn_phi.", "context.feature_gcn.phi.bn."),
    ("context.dualgcn.theta.", "context.feature_gcn.theta.conv."),
    ("context.dualgcn.bn_theta.", "context.feature_gcn.theta.bn."),
    ("context.dualgcn.conv_adj.", "context.feature_gcn.node_conv."),
    ("context.dualgcn.bn_adj.", "context.feature_gcn.node_bn."),
    ("context.dualgcn.conv_wg.", "context.feature_gcn.channel_conv."),
    ("context.dualgcn.bn_wg.", "context.feature_gcn.channel_bn."),
    ("context.dualgcn.conv3.", "context.feature_gcn.out.conv."),
    ("context.dualgcn.bn3.", "context.feature_gcn.out.bn."),
    ("context.dualgcn.gamma1", "context.feature_gcn.gamma"),
    ("context.dualgcn.final.0.", "context.fuse.conv."),
    ("context.dualgcn.final.1.", "context.fuse.bn."),
    ("context.convb.0.", "context.convb.conv."),
    ("context.convb.1.", "context.convb.bn."),
    ("context.bottleneck.0.", "context.bottleneck.conv."),
    ("context.bottleneck.1.", "context.bottleneck.bn."),
    # parsing decoder
    ("layer6.conv1.0.", "decoder.context_reduce.conv."),
    ("layer6.conv1.1.", "decoder.context_reduce.bn."),
    ("layer6.conv2.0.", "decoder.low_reduce.conv."),
    ("layer6.conv2.1.", "decoder.low_reduce.bn."),
    ("layer6.conv3.0.", "decoder.fuse.0.conv."),
    ("layer6.conv3.1.", "decoder.fuse.0.bn."),
    ("layer6.conv3.2.", "decoder.fuse.1.conv."),
    ("layer6.conv3.3.", "decoder.fuse.1.bn."),
    ("layer6.conv4.", "decoder.classifier."),
    # edge branches (training checkpoints only)
    *((f"edge_layer.conv{i + 1}.0.", f"edge.lateral.{i}.conv.") for i in range(3)),
    *((f"edge_layer.conv{i + 1}.1.", f"edge.lateral.{i}.bn.") for i in range(3)),
    ("edge_layer.conv4.", "edge.edge_conv."),
    ("edge_layer.conv5_b.", "edge.binary_classifier."),
    ("edge_layer.conv5.", "edge.category_classifier."),
)

REFERENCE_EDGE_PREFIX = "edge_layer."
_OPTIONAL = "num_batches_tracked"


def reference_to_ours(name: str) -> str | None:
    """Our tensor name for a reference tensor name (without "module."), or None if unmapped."""
    best: tuple[str, str] | None = None
    for ref, ours in REFERENCE_TO_OURS:
        exact = not ref.endswith(".")
        if (name == ref) if exact else name.startswith(ref):
            if best is None or len(ref) > len(best[0]):
                best = (ref, ours)
    if best is None:
        return None
    return best[1] + name[len(best[0]):]


def _read(path_or_state_dict: str | os.PathLike[str] | Mapping[str, Tensor]) -> tuple[dict[str, Tensor], str]:
    """(state dict without "module." prefixes, a label for error messages)."""
    if isinstance(path_or_state_dict, Mapping):
        state, label = dict(path_or_state_dict), "<state dict>"
    else:
        label = os.fspath(path_or_state_dict)
        try:
            state = torch.load(label, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise RuntimeError(f"cannot read DML-CSR checkpoint {label!r}: {exc}") from exc
        for wrapper in ("state_dict", "model"):
            if isinstance(state, dict) and isinstance(state.get(wrapper), Mapping):
                state = dict(state[wrapper])
        if not isinstance(state, dict):
            raise RuntimeError(f"{label!r} does not hold a state dict (got {type(state).__name__})")
    bad = [k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, Tensor)]
    if bad:
        raise RuntimeError(f"{label}: entries that are not named tensors: {bad[:10]}")
    return {k.removeprefix("module."): v for k, v in state.items()}, label


def _infer_depth(state: Mapping[str, Tensor]) -> int:
    blocks = {int(k.split(".")[1]) for k in state if k.startswith("layer3.")}
    n = max(blocks) + 1 if blocks else 23
    bottleneck = "layer1.0.conv3.weight" in state
    return {2: 18, 6: 50 if bottleneck else 34, 23: 101}.get(n, 101)


def _model_for(state: Mapping[str, Tensor], num_classes: int, edges: bool) -> nn.Module:
    """Our network shaped like the checkpoint: depth from layer3, conva kernel from its shape."""
    from . import build_model

    conva = state.get("context.conva.0.weight")
    return build_model(num_classes, depth=_infer_depth(state), edges=edges,
                       conva_kernel=conva.shape[-1] if conva is not None else 3)


def _mapped_state(state: Mapping[str, Tensor], own: Mapping[str, Tensor], label: str) -> dict[str, Tensor]:
    """The checkpoint under our names; every mismatch is listed in one error naming the file."""
    mapped: dict[str, Tensor] = {}
    unmapped, duplicate, unknown, shape_bad = [], [], [], []
    for ref_name, tensor in state.items():
        ours = reference_to_ours(ref_name)
        if ours is None:
            unmapped.append(ref_name)
        elif ours in mapped:
            duplicate.append(ref_name)
        elif ours not in own:
            unknown.append(f"{ref_name} -> {ours}")
        elif own[ours].shape != tensor.shape:
            shape_bad.append(f"{ref_name} {tuple(tensor.shape)} -> {ours} {tuple(own[ours].shape)}")
        else:
            mapped[ours] = tensor
    missing = [k for k in own if k not in mapped and not k.endswith(_OPTIONAL)]
    problems = [
        (unmapped, "reference tensors with no counterpart"),
        (unknown, "reference tensors mapped to names the model lacks"),
        (duplicate, "reference tensors mapped twice"),
        (shape_bad, "shape mismatches"),
        (missing, "model tensors the checkpoint does not provide"),
    ]
    message = "; ".join(f"{what} ({len(keys)}): {', '.join(keys[:8])}{' ...' if len(keys) > 8 else ''}" for keys, what in problems if keys)
    if message:
        raise RuntimeError(f"cannot load reference checkpoint {label}: {message}")
    return mapped


def load_reference_checkpoint(
    path_or_state_dict: str | os.PathLike[str] | Mapping[str, Tensor],
    model: nn.Module | None = None,
    num_classes: int | None = None,
) -> nn.Module:
    """Load a released-DML-CSR-code checkpoint (path or state dict) strictly; returns the model.

    Args:
        path_or_state_dict: a local ``.pth`` file or an already loaded state dict, with or
            without the "module." prefix of DataParallel.
        model: a :class:`~model.network.DMLCSR` to load into. None builds one: classes from
            the checkpoint, depth from its layer3 blocks (101 for the released one), conva
            kernel from its shape, edge branches iff the checkpoint has ``edge_layer.*``.
        num_classes: expected C; checked against the checkpoint.

    A training checkpoint loads into an inference model (its edge tensors are dropped, logged);
    anything else that does not match is an error naming the checkpoint and the keys.
    """
    if path_or_state_dict is None or isinstance(path_or_state_dict, nn.Module):
        # also accept load_reference_checkpoint(model_or_none, path) (model/__init__ documents it)
        path_or_state_dict, model = model, path_or_state_dict  # type: ignore[assignment]
    state, label = _read(path_or_state_dict)

    classifier = state.get("layer6.conv4.weight")
    if classifier is None:
        raise RuntimeError(f"{label}: not a DML-CSR reference checkpoint (no 'layer6.conv4.weight'); first keys: {list(state)[:5]}")
    ckpt_classes = classifier.shape[0]
    if num_classes is not None and num_classes != ckpt_classes:
        raise RuntimeError(f"{label}: checkpoint has {ckpt_classes} classes, expected {num_classes}")
    has_edges = any(k.startswith(REFERENCE_EDGE_PREFIX) for k in state)

    if model is None:
        model = _model_for(state, ckpt_classes, has_edges)
    model_has_edges = getattr(model, "edge", None) is not None
    if has_edges and not model_has_edges:
        dropped = [k for k in state if k.startswith(REFERENCE_EDGE_PREFIX)]
        log.info("%s: inference model, dropping %d edge-branch tensors", label, len(dropped))
        state = {k: v for k, v in state.items() if not k.startswith(REFERENCE_EDGE_PREFIX)}

    own = model.state_dict()
    mapped = _mapped_state(state, own, label)
    for key in own:
        if key.endswith(_OPTIONAL) and key not in mapped:
            mapped[key] = own[key]  # old inplace_abn checkpoints lack the counter
    model.load_state_dict(mapped, strict=True)
    log.info("loaded reference checkpoint %s (%d tensors)", label, len(state))
    return model
