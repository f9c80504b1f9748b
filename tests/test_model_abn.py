"""ABN: the |weight| + eps rule, BatchNorm-compatible state, parity with inplace_abn, sync variant."""

from __future__ import annotations

import os

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from model.abn import ABN, SyncABN, convert_sync_abn, is_abn, make_abn
from model.backbone import ConvABN

C = 5
WEIGHT = torch.tensor([1.5, -2.0, 0.3, -0.05, 1.0])  # includes negative weights on purpose
BIAS = torch.tensor([0.1, -0.4, 0.0, 2.0, -1.0])


def _abn(cls=ABN, **kw) -> nn.Module:
    m = cls(C, **kw)
    with torch.no_grad():
        m.weight.copy_(WEIGHT)
        m.bias.copy_(BIAS)
    return m


def _input(seed: int = 0, shape=(4, C, 6, 7)) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g) * 3.0 + 0.5


def _formula(x, mean, var, weight, bias, eps=1e-5):
    shape = (1, -1) + (1,) * (x.dim() - 2)
    xhat = (x - mean.view(shape)) / torch.sqrt(var.view(shape) + eps)
    return F.leaky_relu(xhat * (weight.abs() + eps).view(shape) + bias.view(shape), 0.01)


def test_state_dict_keys_are_batchnorm_keys():
    assert list(ABN(C).state_dict()) == list(nn.BatchNorm2d(C).state_dict())
    assert list(ABN(C).state_dict()) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]


@pytest.mark.parametrize("training", [True, False])
def test_forward_is_the_abs_weight_formula(training):
    m = _abn().train(training)
    with torch.no_grad():
        m.running_mean.copy_(torch.linspace(-1, 1, C))
        m.running_var.copy_(torch.linspace(0.5, 2, C))
    x = _input()
    if training:
        mean, var = x.mean((0, 2, 3)), x.var((0, 2, 3), unbiased=False)
    else:
        mean, var = m.running_mean.clone(), m.running_var.clone()
    torch.testing.assert_close(m(x), _formula(x, mean, var, WEIGHT, BIAS), rtol=1e-5, atol=1e-5)


def test_differs_from_batchnorm_plus_leaky_relu_when_a_weight_is_negative():
    x = _input()
    bn = nn.BatchNorm2d(C)
    bn.load_state_dict(_abn().state_dict())
    plain = F.leaky_relu(bn(x), 0.01)
    ours = _abn()(x)
    negative = WEIGHT < 0
    diff = (plain - ours).abs().amax((0, 2, 3))
    assert diff[negative].min() > 0.2  # wrong sign of the scale: far apart
    assert diff[~negative].max() < 1e-4  # positive weights: only the +eps differs


@pytest.mark.parametrize("training", [True, False])
def test_gradients_match_autograd_of_the_formula(training):
    m = _abn().train(training)
    x = _input().requires_grad_()
    dy = _input(seed=1)
    m(x).backward(dy)

    w = WEIGHT.clone().requires_grad_()
    b = BIAS.clone().requires_grad_()
    x2 = x.detach().clone().requires_grad_()
    rm, rv = torch.zeros(C), torch.ones(C)
    y = F.leaky_relu(F.batch_norm(x2, rm, rv, w.abs() + 1e-5, b, training, 0.1, 1e-5), 0.01)
    y.backward(dy)
    torch.testing.assert_close(x.grad, x2.grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(m.weight.grad, w.grad, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(m.bias.grad, b.grad, rtol=1e-4, atol=1e-4)
    assert (m.weight.grad[WEIGHT < 0] * w.grad[WEIGHT < 0] > 0).all()


def test_training_backward_passes_gradcheck_in_double():
    from model.abn import _ABNTrainFn

    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 3, 4, 4, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.tensor([0.7, -1.3, 2.0], dtype=torch.float64, requires_grad=True)
    b = torch.tensor([0.2, 0.5, -0.3], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w, b: _ABNTrainFn.apply(x, w, b, None, None, 0.1, 1e-5), (x, w, b))


def test_running_statistics_follow_batchnorm():
    ours, bn = _abn(), nn.BatchNorm2d(C)
    for seed in range(3):
        x = _input(seed)
        ours(x)
        bn(x)
    torch.testing.assert_close(ours.running_mean, bn.running_mean)
    torch.testing.assert_close(ours.running_var, bn.running_var)  # unbiased, momentum 0.1
    assert int(ours.num_batches_tracked) == 3
    # momentum=None: cumulative average, as torch.optim.swa_utils.update_bn uses
    ours.momentum, bn.momentum = None, None
    ours.reset_running_stats()
    bn.reset_running_stats()
    for seed in range(3):
        with torch.no_grad():
            ours(_input(seed))
            bn(_input(seed))
    torch.testing.assert_close(ours.running_var, bn.running_var)


def test_old_state_dict_without_num_batches_tracked_loads():
    src = _abn()
    src.num_batches_tracked.fill_(7)
    state = {k: v for k, v in src.state_dict().items() if k != "num_batches_tracked"}
    dst = ABN(C)
    dst.load_state_dict(state)  # strict
    torch.testing.assert_close(dst.weight, WEIGHT)
    # also when the dict carries current-version metadata (saved from a new BatchNorm)
    meta = src.state_dict()
    del meta["num_batches_tracked"]
    ConvABN(3, C, abn="torch").bn.load_state_dict(meta)


def test_one_value_per_channel_is_refused_in_training():
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        ABN(C)(torch.randn(1, C, 1, 1))
    ABN(C).eval()(torch.randn(1, C, 1, 1))


def test_make_abn_backends():
    assert type(make_abn(4, "torch")) is ABN
    with pytest.raises(ValueError):
        make_abn(4, "cudnn")  # type: ignore[arg-type]
    assert is_abn(make_abn(4, "auto"))


def test_convert_sync_abn_keeps_values_and_is_plain_abn_without_distributed():
    net = nn.Sequential(ConvABN(3, C, abn="torch"), nn.BatchNorm2d(C))
    with torch.no_grad():
        net[0].bn.weight.copy_(WEIGHT)
        net[0].bn.bias.copy_(BIAS)
    net.eval()
    x = _input(shape=(2, 3, 5, 5))
    before = net(x)
    converted = convert_sync_abn(net)
    assert type(converted[0].bn) is SyncABN and type(converted[1]) is nn.BatchNorm2d
    assert not converted.training
    torch.testing.assert_close(converted(x), before)
    converted.train()
    y = converted[0](x)
    torch.testing.assert_close(y, _abn()(converted[0].conv(x)))


# ---- parity with the compiled extension (CI installs it; skipped only where it is absent) ----


@pytest.mark.parametrize("training", [True, False])
def test_matches_inplace_abn(training):
    import inplace_abn  # installed by scripts/setup.sh: a missing build fails, never skips

    ours = _abn().train(training)
    ext = inplace_abn.InPlaceABN(C, activation="leaky_relu", activation_param=0.01).train(training)
    assert list(ours.state_dict()) == list(ext.state_dict())
    with torch.no_grad():
        ours.running_mean.copy_(torch.linspace(-1, 1, C))
        ours.running_var.copy_(torch.linspace(0.5, 2, C))
    ext.load_state_dict(ours.state_dict())

    x = _input()
    dy = _input(seed=1)
    x1 = x.clone().requires_grad_()
    y1 = ours(x1)
    y1.backward(dy)
    x2 = x.clone().requires_grad_()
    y2 = ext(x2 * 1.0)  # InPlaceABN overwrites its input: never feed it a leaf
    y2.backward(dy)

    torch.testing.assert_close(y1, y2, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(ours.weight.grad, ext.weight.grad, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(ours.bias.grad, ext.bias.grad, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(ours.running_mean, ext.running_mean)
    torch.testing.assert_close(ours.running_var, ext.running_var)


def test_inplace_backend_and_its_sync_conversion():
    import inplace_abn  # installed by scripts/setup.sh: a missing build fails, never skips

    layer = make_abn(C, "inplace")
    assert type(layer) is inplace_abn.InPlaceABN and is_abn(layer)
    assert (layer.activation, layer.activation_param) == ("leaky_relu", 0.01)
    net = convert_sync_abn(nn.Sequential(layer))
    assert type(net[0]) is inplace_abn.InPlaceABNSync


# ---- real synchronisation: two CPU processes over gloo ----


def _sync_worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        x = _input(shape=(4, C, 3, 3))
        dy = _input(seed=1, shape=(4, C, 3, 3))
        net = convert_sync_abn(nn.Sequential(_abn()))
        rows = slice(2 * rank, 2 * rank + 2)
        xs = x[rows].clone().requires_grad_()
        net(xs).backward(dy[rows])
        grads = torch.cat([net[0].weight.grad, net[0].bias.grad])
        dist.all_reduce(grads)
        torch.save({"dx": xs.grad, "grads": grads, "rm": net[0].running_mean, "rv": net[0].running_var},
                   os.path.join(out_dir, f"{rank}.pt"))
        dist.barrier()  # neither rank tears gloo down while the other still uses it
    finally:
        dist.destroy_process_group()
    # The results are on disk: leave without the interpreter's teardown, where gloo once aborted
    # a rank ("terminate called without an active exception", SIGABRT; one full test run of
    # stop 24, while 11 runs of this test alone passed). An error above still raises.
    os._exit(0)


@pytest.mark.slow
def test_sync_abn_over_two_processes_equals_one_big_batch(tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_sync_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2)
    ref = _abn()
    x = _input(shape=(4, C, 3, 3)).requires_grad_()
    ref(x).backward(_input(seed=1, shape=(4, C, 3, 3)))
    for rank in range(2):
        got = torch.load(tmp_path / f"{rank}.pt")
        torch.testing.assert_close(got["dx"], x.grad[2 * rank: 2 * rank + 2], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(got["grads"], torch.cat([ref.weight.grad, ref.bias.grad]), rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(got["rm"], ref.running_mean)
        torch.testing.assert_close(got["rv"], ref.running_var)
