"""The DML-CSR network: exact sizes, shapes at 473 and on CPU sizes, training/inference models."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from model import DMLCSR, build_model, count_parameters, inference_state_dict, load_pretrained_backbone
from model.network import DMLCSROutput


def _stride_sizes(size: int) -> tuple[int, int]:
    """(stride-4, stride-8) sizes: conv s2, then maxpool 3x3 s2 p1 in floor mode, as the reference
    (473 -> 237 -> 119 -> 60; 64 -> 32 -> 16 -> 8, where ceil mode would give 17)."""
    s2 = (size - 1) // 2 + 1
    s4 = (s2 + 2 - 3) // 2 + 1
    return s4, -(-s4 // 2)


def _meta_model(**kw) -> DMLCSR:
    """Built on the meta device: exact parameter shapes without allocating 68M floats."""
    with torch.device("meta"):
        return build_model(abn="torch", **kw)


@pytest.mark.parametrize(
    ("num_classes", "edges", "conva_kernel", "expected"),
    [
        (11, False, 3, 68_058_157),
        (11, True, 3, 68_544_242),
        (19, False, 3, 68_060_213),
        (19, True, 3, 68_565_514),
        (11, False, 1, 59_669_549),  # the paper's 59.67M
    ],
)
def test_exact_parameter_counts(num_classes, edges, conva_kernel, expected):
    model = _meta_model(num_classes=num_classes, edges=edges, conva_kernel=conva_kernel)
    assert count_parameters(model) == expected


def test_parameter_count_is_the_same_with_the_inplace_backend():
    import inplace_abn  # noqa: F401  # installed by scripts/setup.sh: fails, never skips

    with torch.device("meta"):
        model = build_model(11, edges=True, abn="inplace")
    assert count_parameters(model) == 68_544_242


def test_inference_model_has_no_edge_parameters():
    model = _meta_model(num_classes=11, edges=False)
    assert model.edge is None
    assert not [k for k in model.state_dict() if "edge" in k]
    assert [k for k in _meta_model(num_classes=11, edges=True).state_dict() if k.startswith("edge.")]


def _context_size(model: DMLCSR, x: torch.Tensor):
    seen = {}
    def hook(module, inputs, output) -> None:  # returning a value would replace the output
        seen["ctx"] = output.shape

    handle = model.context.register_forward_hook(hook)
    with torch.inference_mode():
        out = model(x)
    handle.remove()
    return seen["ctx"], out


@pytest.mark.slow
def test_paper_model_at_473_has_60x60_context_and_119x119_logits():
    torch.manual_seed(0)
    model = build_model(11, depth=101, edges=False).eval()
    ctx, out = _context_size(model, torch.randn(1, 3, 473, 473))
    assert tuple(ctx) == (1, 512, 60, 60)
    assert tuple(out.shape) == (1, 11, 119, 119)
    assert torch.isfinite(out).all()


def test_small_model_at_473_has_the_same_strides():
    torch.manual_seed(0)
    model = build_model(11, depth=18, width=0.25, edges=True).eval()
    ctx, out = _context_size(model, torch.randn(1, 3, 473, 473))
    assert tuple(ctx[-2:]) == (60, 60)
    assert isinstance(out, DMLCSROutput)
    assert [tuple(t.shape) for t in out] == [(1, 11, 119, 119), (1, 2, 119, 119), (1, 11, 119, 119)]


@pytest.mark.parametrize(("depth", "size"), [(18, 64), (18, 128), (50, 64), (34, 96), (101, 64)])
def test_feature_strides_on_cpu_sizes(depth, size):
    torch.manual_seed(0)
    model = build_model(5, depth=depth, width=0.25, edges=True).train()
    feats = model.forward_features(torch.randn(2, 3, size, size))
    s4, s8 = _stride_sizes(size)
    assert [tuple(f.shape[-2:]) for f in feats] == [(s4, s4), (s8, s8), (s8, s8), (s8, s8)]
    assert [f.shape[1] for f in feats] == list(model.backbone.channels)
    out = model(torch.randn(2, 3, size, size))
    assert out.parsing.shape == (2, 5, s4, s4) and out.binary_edge.shape == (2, 2, s4, s4)


def test_non_square_input():
    model = build_model(3, depth=18, width=0.25, edges=False).eval()
    with torch.inference_mode():
        out = model(torch.randn(1, 3, 97, 130))
    assert tuple(out.shape) == (1, 3, _stride_sizes(97)[0], _stride_sizes(130)[0])


def test_width_one_sizes_match_design():
    model = _meta_model(num_classes=11, depth=101)
    assert model.backbone.channels == (256, 512, 1024, 2048)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes["context.conva.conv.weight"] == (512, 2048, 3, 3)
    assert shapes["context.bottleneck.conv.weight"] == (512, 2560, 3, 3)
    assert shapes["context.feature_gcn.node_conv.weight"] == (128, 128, 1)
    assert shapes["context.spatial_gcn.downsample.2.conv.weight"] == (512, 1, 3, 3)
    assert shapes["decoder.fuse.0.conv.weight"] == (256, 304, 1, 1)
    assert shapes["edge.edge_conv.weight"] == (11, 256, 3, 3)
    assert shapes["edge.binary_classifier.weight"] == (2, 33, 1, 1)


@pytest.mark.parametrize("abn", ["torch", "inplace"])
def test_training_forward_backward_on_cpu(abn):
    torch.manual_seed(0)
    model = build_model(4, depth=18, width=0.25, edges=True, abn=abn).train()
    x = torch.randn(2, 3, 64, 64)
    out_size = (_stride_sizes(64)[0],) * 2
    target = torch.randint(0, 4, (2, *out_size))
    out = model(x)
    loss = (
        torch.nn.functional.cross_entropy(out.parsing, target)
        + torch.nn.functional.cross_entropy(out.binary_edge, (target > 1).long())
        + torch.nn.functional.cross_entropy(out.category_edge, target)
    )
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    # the zero-initialised gates learn
    assert model.context.spatial_gcn.gamma.grad.abs().item() > 0
    assert model.context.feature_gcn.gamma.grad.abs().item() > 0


def test_training_checkpoint_loads_into_inference_model_with_identical_parsing():
    torch.manual_seed(0)
    train_model = build_model(6, depth=18, width=0.25, edges=True, abn="torch").train()
    for _ in range(2):  # move running stats and make gammas non-zero
        train_model(torch.randn(2, 3, 64, 64))
    with torch.no_grad():
        train_model.context.spatial_gcn.gamma.fill_(0.5)
        train_model.context.feature_gcn.gamma.fill_(-0.3)
    state = train_model.state_dict()

    infer = build_model(6, depth=18, width=0.25, edges=False, abn="torch").eval()
    infer.load_state_dict(state)  # strict: the inference model drops edge.* itself
    infer2 = build_model(6, depth=18, width=0.25, edges=False, abn="torch").eval()
    infer2.load_state_dict(inference_state_dict(state))
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        expected = train_model.eval()(x).parsing
        torch.testing.assert_close(infer(x), expected, rtol=0, atol=0)
        torch.testing.assert_close(infer2(x), expected, rtol=0, atol=0)
    with pytest.raises(RuntimeError):  # an inference checkpoint lacks what the training model needs
        build_model(6, depth=18, width=0.25, edges=True, abn="torch").load_state_dict(infer.state_dict())


def test_backends_agree_in_eval():
    import inplace_abn  # noqa: F401  # installed by scripts/setup.sh: fails, never skips

    torch.manual_seed(0)
    ours = build_model(3, depth=18, width=0.25, edges=False, abn="torch")
    with torch.no_grad():
        for m in ours.modules():
            if hasattr(m, "running_var") and m.weight is not None:
                m.weight.uniform_(-1.5, 1.5)  # negative scales on purpose
                m.running_var.uniform_(0.5, 2.0)
    ext = build_model(3, depth=18, width=0.25, edges=False, abn="inplace")
    ext.load_state_dict(ours.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        torch.testing.assert_close(ours.eval()(x), ext.eval()(x), rtol=1e-4, atol=1e-4)


def test_channels_last_gives_the_same_logits():
    torch.manual_seed(0)
    model = build_model(3, depth=18, width=0.25, edges=False, abn="torch").eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        expected = model(x)
        got = model.to(memory_format=torch.channels_last)(x.to(memory_format=torch.channels_last))
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_swa_update_bn_recomputes_abn_statistics():
    from torch.optim.swa_utils import update_bn

    torch.manual_seed(0)
    model = build_model(3, depth=18, width=0.25, edges=False, abn="torch")
    bn1 = model.backbone.bn1
    bn1.running_mean.fill_(100.0)
    update_bn([torch.randn(2, 3, 32, 32) for _ in range(2)], model)
    assert bn1.running_mean.abs().max() < 10


def test_invalid_arguments():
    with pytest.raises(ValueError, match="depth"):
        build_model(3, depth=17)
    with pytest.raises(ValueError, match="conva_kernel"):
        build_model(3, depth=18, width=0.25, conva_kernel=5)
    with pytest.raises(ValueError, match="abn"):
        build_model(3, depth=18, width=0.25, abn="cudnn")


def test_pretrained_backbone_from_a_local_file(tmp_path, caplog):
    torch.manual_seed(0)
    src = build_model(3, depth=18, width=0.25, abn="torch").backbone
    state = {f"module.{k}": v for k, v in src.state_dict().items() if "num_batches" not in k}
    state["module.fc.weight"] = torch.zeros(10, 4)
    state["module.extra.weight"] = torch.zeros(1)
    path = tmp_path / "resnet.pth"
    torch.save({"state_dict": state}, path)

    dst = build_model(3, depth=18, width=0.25, abn="torch").backbone
    missing, unexpected = load_pretrained_backbone(dst, path)
    assert missing == [] and unexpected == ["extra.weight"]
    torch.testing.assert_close(dst.layer4[1].conv2.weight, src.layer4[1].conv2.weight)
    assert "extra.weight" in caplog.text
    with pytest.raises(RuntimeError, match="missing"):
        load_pretrained_backbone(dst, path, strict=True)

    bad = tmp_path / "broken.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(RuntimeError, match="broken.pth"):
        load_pretrained_backbone(dst, bad)
    wrong = build_model(3, depth=18, width=0.5, abn="torch").backbone
    with pytest.raises(RuntimeError, match="shape mismatch"):
        load_pretrained_backbone(wrong, path)


def test_model_package_is_light_and_independent():
    code = (
        "import sys, model\n"
        "assert 'torch' not in sys.modules, 'import model loaded torch'\n"
        "model.build_model(3, depth=18, width=0.25)\n"
        "from model import reference, network, abn, backbone, ddgcn, decoder, edge\n"
        "bad = [m for m in sys.modules if m.split('.')[0] == 'labelaudit']\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(__import__("pathlib").Path(__file__).parents[1]))


# ---- the CPU Winograd convolutions (NNPACK) must be the same function as nn.Conv2d ----


@pytest.mark.parametrize(("dilation", "size"), [(1, 13), (1, 60), (2, 12), (2, 9)])
def test_winograd_conv_matches_conv2d(dilation, size, monkeypatch):
    import model.winograd as backbone

    calls = []
    real = backbone._nnpack_conv
    monkeypatch.setattr(backbone, "_nnpack_conv", lambda *a: calls.append(1) or real(*a))
    monkeypatch.setattr(backbone, "_WINOGRAD_MIN_PIXELS", 0)  # small sizes keep the test fast
    monkeypatch.setattr(backbone, "_WINOGRAD_MIN_WORK", 0)
    backbone.set_winograd(True)
    torch.manual_seed(0)
    ours = backbone.Conv2d(6, 5, 3, padding=dilation, dilation=dilation, bias=True)
    ref = torch.nn.Conv2d(6, 5, 3, padding=dilation, dilation=dilation, bias=True)
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(3, 6, size, size + 2)
    dy = torch.randn(3, 5, size, size + 2)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    y1, y2 = ours(x1), ref(x2)
    (y1 * dy).sum().backward()
    (y2 * dy).sum().backward()
    torch.testing.assert_close(y1, y2, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(ours.weight.grad, ref.weight.grad, rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(ours.bias.grad, ref.bias.grad, rtol=1e-4, atol=1e-3)
    odd_dilated = dilation == 2 and size % 2
    # NNPACK ran, except where it does not apply or this torch has no NNPACK (then: Conv2d)
    assert bool(calls) == (torch.backends.nnpack.is_available() and not odd_dilated)


def test_winograd_is_used_only_where_it_pays():
    import model.winograd as backbone

    assert backbone._winograd_pays(64, 128, 237 * 237)  # paper stem at 473
    assert backbone._winograd_pays(2560, 512, 60 * 60)  # context bottleneck
    assert not backbone._winograd_pays(64, 64, 33 * 33)  # CPU preset at 128: oneDNN is faster
    assert not backbone._winograd_pays(16, 16, 119 * 119)


def test_winograd_off_is_exactly_conv2d():
    import model.winograd as backbone

    torch.manual_seed(0)
    ours = backbone.Conv2d(4, 4, 3, padding=1)
    ref = torch.nn.Conv2d(4, 4, 3, padding=1)
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(2, 4, 16, 16)
    try:
        backbone.set_winograd(False)
        torch.testing.assert_close(ours(x), ref(x), rtol=0, atol=0)
    finally:
        backbone.set_winograd(True)
