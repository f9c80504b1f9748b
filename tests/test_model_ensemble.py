"""Self-ensemble averaging and BN re-estimation against direct computations."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from model.ensemble import SelfEnsemble, bn_like_layers, reestimate_bn


def _tiny(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))


def _randomise(model: nn.Module, seed: int, tracked: int) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for t in list(model.parameters()) + [model[1].running_mean, model[1].running_var]:
            t.copy_(torch.rand(t.shape, generator=g) * 10)
        model[1].num_batches_tracked.fill_(tracked)
    return model


def test_average_of_three_snapshots_is_the_arithmetic_mean():
    students = [_randomise(_tiny(0), seed, tracked) for seed, tracked in ((1, 5), (2, 7), (3, 9))]
    ensemble = SelfEnsemble(_tiny(0))
    for s in students:
        ensemble.update(s)
    assert ensemble.num_snapshots == 3
    got = ensemble.teacher.state_dict()
    for name, value in got.items():
        snaps = [s.state_dict()[name] for s in students]
        if value.is_floating_point():
            assert torch.allclose(value, (snaps[0] + snaps[1] + snaps[2]) / 3, atol=1e-5), name
        else:
            assert torch.equal(value, snaps[-1]), name  # non-float buffers are copied
    assert not any(p.requires_grad for p in ensemble.teacher.parameters())
    assert not ensemble.teacher.training


def test_state_dict_round_trip_continues_the_same_average():
    students = [_randomise(_tiny(0), seed, 1) for seed in (4, 5, 6)]
    a = SelfEnsemble(_tiny(0))
    a.update(students[0])
    a.update(students[1])
    state = a.state_dict()
    assert state["num_snapshots"] == 2 and isinstance(state["teacher"], dict)
    b = SelfEnsemble(_tiny(1))
    b.load_state_dict(state)
    a.update(students[2])
    b.update(students[2])
    assert b.num_snapshots == 3
    for k, v in a.teacher.state_dict().items():
        assert torch.equal(v, b.teacher.state_dict()[k])


class ToyABN(nn.Module):
    """A BN-like layer that is not a _BatchNorm and needs a float momentum (like InPlaceABN)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))
        self.momentum = 0.1
        self.eps = 1e-5

    def forward(self, x):
        if not isinstance(self.momentum, float):
            raise TypeError("momentum must be a float")
        y = F.batch_norm(
            x, self.running_mean, self.running_var, self.weight.abs() + self.eps, self.bias,
            self.training, self.momentum, self.eps,
        )
        return F.leaky_relu(y, 0.01)


class ModeProbe(nn.Module):
    """Records the training flag it sees during forward (stands in for dropout)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = []

    def forward(self, x):
        self.seen.append(self.training)
        return x


def _conv_model(bn: nn.Module) -> nn.Sequential:
    conv = nn.Conv2d(1, 2, kernel_size=1)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([2.0, -1.0]).view(2, 1, 1, 1))
        conv.bias.copy_(torch.tensor([1.0, 3.0]))
    with torch.no_grad():
        bn.running_mean.fill_(42.0)
        bn.running_var.fill_(7.0)
    return nn.Sequential(conv, ModeProbe(), bn)


def _conv_out(x: torch.Tensor) -> torch.Tensor:
    """What the 1x1 conv above computes, written out: (N, 2, H, W)."""
    return torch.cat([2.0 * x + 1.0, -1.0 * x + 3.0], dim=1)


def _batch_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    y = _conv_out(x).transpose(0, 1).reshape(2, -1)
    return y.mean(1), y.var(1, unbiased=True)


@pytest.mark.parametrize("bn_factory", [lambda: nn.BatchNorm2d(2), lambda: ToyABN(2)])
def test_bn_reestimation_single_batch_gives_exact_data_statistics(bn_factory):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 1, 3, 3, generator=g) * 3 + 1
    bn = bn_factory()
    model = _conv_model(bn)
    model.train()
    used = reestimate_bn(model, [(x, torch.zeros(4))], device="cpu")
    mean, var = _batch_stats(x)
    assert used == 1
    assert torch.allclose(bn.running_mean, mean, atol=1e-5)
    assert torch.allclose(bn.running_var, var, atol=1e-4)
    assert bn.momentum == 0.1
    assert model.training and bn.training  # flags restored
    assert model[1].seen == [False]  # non-BN modules ran in eval mode


@pytest.mark.parametrize("bn_factory", [lambda: nn.BatchNorm2d(2), lambda: ToyABN(2)])
def test_bn_reestimation_is_a_cumulative_average_over_batches(bn_factory):
    g = torch.Generator().manual_seed(1)
    batches = [torch.randn(3, 1, 2, 2, generator=g) * (k + 1) + k for k in range(4)]
    bn = bn_factory()
    model = _conv_model(bn).eval()
    used = reestimate_bn(model, [{"image": b} for b in batches], device="cpu", max_batches=3)
    assert used == 3
    stats = [_batch_stats(b) for b in batches[:3]]
    assert torch.allclose(bn.running_mean, sum(m for m, _ in stats) / 3, atol=1e-5)
    assert torch.allclose(bn.running_var, sum(v for _, v in stats) / 3, atol=1e-4)
    assert not model.training and not bn.training
    for p, expected in zip(model[0].parameters(), ([2.0, -1.0], [1.0, 3.0])):
        assert torch.equal(p.detach().flatten(), torch.tensor(expected))  # weights untouched


def test_bn_like_layers_and_custom_forward():
    model = nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2), ToyABN(2), nn.Dropout(0.5))
    assert bn_like_layers(model) == [model[1], model[2]]
    calls = []

    def forward_fn(m, batch):
        calls.append(batch["pixels"].shape)
        return m(batch["pixels"])

    reestimate_bn(model, [{"pixels": torch.randn(2, 1, 2, 2)}], "cpu", forward_fn=forward_fn)
    assert calls == [torch.Size([2, 1, 2, 2])]
    assert model[1].num_batches_tracked.item() == 1


def test_bn_reestimation_covers_inplace_abn_when_installed():
    import inplace_abn  # installed by scripts/setup.sh: a missing build fails, never skips

    bn = inplace_abn.InPlaceABN(2, activation="identity")
    model = _conv_model(bn).train()
    g = torch.Generator().manual_seed(2)
    batches = [torch.randn(3, 1, 2, 2, generator=g) * (k + 1) + k for k in range(2)]
    reestimate_bn(model, batches, device="cpu")
    stats = [_batch_stats(b) for b in batches]
    assert torch.allclose(bn.running_mean, (stats[0][0] + stats[1][0]) / 2, atol=1e-5)
    assert torch.allclose(bn.running_var, (stats[0][1] + stats[1][1]) / 2, atol=1e-4)
    assert bn.momentum == 0.1 and model.training
