"""Loading the released DML-CSR code's checkpoints: every tensor lands in exactly one of ours."""

from __future__ import annotations

import pytest
import torch
from refweights import reference_shapes as _reference_shapes

from model import build_model, load_reference_checkpoint
from model.reference import REFERENCE_TO_OURS, reference_to_ours


def _reference_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """Random values with exactly the reference names and shapes; every tensor distinct."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for i, (name, shape) in enumerate(_reference_shapes().items()):
        if name.endswith("num_batches_tracked"):
            state[name] = torch.tensor(1000 + i)
        elif name.endswith("running_var"):
            state[name] = torch.rand(shape, generator=g) + 0.5
        else:
            state[name] = torch.randn(shape, generator=g)
    return state


@pytest.fixture(scope="module")
def training_model():
    return load_reference_checkpoint(_reference_state())


def test_tsv_is_the_11_class_training_model():
    shapes = _reference_shapes()
    assert len(shapes) == 779
    assert shapes["layer6.conv4.weight"] == (11, 256, 1, 1)
    assert shapes["context.dualgcn.gamma1"] == (1,)
    assert shapes["bn1.num_batches_tracked"] == ()


def test_mapping_is_a_bijection_onto_our_training_model():
    ours = _meta_training_state()
    mapped = [reference_to_ours(name) for name in _reference_shapes()]
    assert None not in mapped
    assert len(set(mapped)) == len(mapped)  # injective
    assert set(mapped) == set(ours)  # onto
    for name, shape in _reference_shapes().items():
        assert tuple(ours[reference_to_ours(name)].shape) == shape, name


def _meta_training_state():
    with torch.device("meta"):
        return build_model(11, edges=True, abn="torch").state_dict()


def test_every_table_entry_is_used():
    names = list(_reference_shapes())
    for ref, _ in REFERENCE_TO_OURS:
        assert any(n == ref or (ref.endswith(".") and n.startswith(ref)) for n in names), ref


def test_training_checkpoint_loads_strictly_and_values_arrive(training_model):
    state = _reference_state()
    assert training_model.edge is not None and training_model.num_classes == 11
    ours = training_model.state_dict()
    for name, tensor in state.items():
        assert torch.equal(ours[reference_to_ours(name)], tensor), name
    # spot checks that the names mean the same thing
    assert torch.equal(training_model.backbone.layer3[22].bn3.running_var, state["layer3.22.bn3.running_var"])
    assert torch.equal(training_model.context.spatial_gcn.gamma, state["context.dualgcn.gcn_local_attention.gamma"])
    assert torch.equal(training_model.context.feature_gcn.gamma, state["context.dualgcn.gamma1"])
    assert torch.equal(training_model.context.spatial_gcn.downsample[1].bn.weight, state["context.dualgcn.local.3.weight"])
    assert torch.equal(training_model.edge.binary_classifier.weight, state["edge_layer.conv5_b.weight"])
    assert torch.equal(training_model.decoder.fuse[1].conv.weight, state["layer6.conv3.2.weight"])


def test_released_inference_checkpoint_from_a_file(tmp_path):
    """The released LaPa file: inference model, DataParallel prefix, no num_batches_tracked."""
    state = {
        f"module.{k}": v for k, v in _reference_state(1).items()
        if not k.startswith("edge_layer.") and not k.endswith("num_batches_tracked")
    }
    path = tmp_path / "DML_CSR_LaPa.pth"
    torch.save(state, path)
    model = load_reference_checkpoint(path)
    assert model.edge is None
    ours = model.state_dict()
    for name, tensor in state.items():
        assert torch.equal(ours[reference_to_ours(name.removeprefix("module."))], tensor), name
    assert not any(k.startswith("edge") for k in ours)


def test_training_checkpoint_into_a_given_inference_model(training_model):
    infer = build_model(11, edges=False)
    returned = load_reference_checkpoint(infer, _reference_state())  # (model, checkpoint) order too
    assert returned is infer
    torch.testing.assert_close(infer.context.fuse.conv.weight, training_model.context.fuse.conv.weight, rtol=0, atol=0)


def test_errors_name_the_file_and_the_keys(tmp_path, training_model):
    state = _reference_state()
    del state["layer3.7.conv2.weight"]
    with pytest.raises(RuntimeError, match=r"layer3\.7\.conv2\.weight"):
        load_reference_checkpoint(state, model=training_model)

    state = _reference_state()
    state["context.dualgcn.mystery.weight"] = torch.zeros(3)
    with pytest.raises(RuntimeError, match="mystery"):
        load_reference_checkpoint(state, model=training_model)

    state = _reference_state()
    state["layer6.conv3.0.weight"] = torch.zeros(256, 300, 1, 1)
    with pytest.raises(RuntimeError, match="shape mismatches"):
        load_reference_checkpoint(state, model=training_model)

    with pytest.raises(RuntimeError, match="19 classes|11 classes"):
        load_reference_checkpoint(_reference_state(), num_classes=19)

    bad = tmp_path / "corrupt.pth"
    bad.write_text("garbage")
    with pytest.raises(RuntimeError, match="corrupt.pth"):
        load_reference_checkpoint(bad)
