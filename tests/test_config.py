"""The training config is checked by type and range before any work, naming the setting."""
from __future__ import annotations

from pathlib import Path

import pytest

from labelaudit.train import load_config


def _toml(tmp_path, text: str):
    p = tmp_path / "c.toml"
    p.write_text(text)
    return p


@pytest.mark.parametrize("text, named", [
    ('[schedule]\nbatch_size = "eight"\n', "batch_size"),
    ('[schedule]\nlr = "fast"\n', "lr"),
    ('[model]\nwidth = "wide"\n', "width"),
    ('[data]\nflip = "no"\n', "flip"),
    ('[data]\nsize = -64\n', "data.size"),
    ('[data]\nsize = 16\n', "data.size"),
    ('[schedule]\nbatch_size = 0\n', "schedule.batch_size"),
    ('[schedule]\nweight_decay = -1.0\n', "schedule.weight_decay"),
    ('[model]\nabn = "fast"\n', "model.abn"),
    ('[data]\ndataset = "coco"\n', "data.dataset"),
    ('[data]\nscale_min = 1.5\nscale_max = 1.0\n', "scale_max"),
    ('[schedule]\nepochs = 1.5\n', "epochs"),
])
def test_bad_settings_are_named(tmp_path, text, named):
    with pytest.raises(ValueError, match=named):
        load_config("cpu-tiny", _toml(tmp_path, text))


def test_good_settings_pass_and_ints_become_floats(tmp_path):
    cfg = load_config("cpu-tiny", _toml(tmp_path, '[schedule]\nlr = 1\n[data]\nflip = false\n'))
    assert cfg.schedule.lr == 1.0 and isinstance(cfg.schedule.lr, float) and cfg.data.flip is False
    assert load_config("cpu").data.size == 192  # every preset passes its own checks
    older = Path(__file__).parents[1] / "benchmarks" / "size128.toml"
    assert load_config("cpu", older).data.size == 128  # the input before stop 31
    for name in ("paper", "demo", "cpu-tiny"):
        load_config(name)


def test_cycles_zero_is_a_plain_run_without_csr(tmp_path):
    from labelaudit.train.schedule import in_csr, learning_rate

    cfg = load_config("cpu-tiny", _toml(tmp_path, '[schedule]\ncycles = 0\nedge_loss = false\n'),
                      {"schedule.epochs": 6})
    s = cfg.schedule
    assert (s.epochs, s.csr_start, s.edge_loss) == (6, 6, False)
    assert not any(in_csr(s, e) for e in range(6))
    assert learning_rate(s, 5, 9, 10) < learning_rate(s, 3, 0, 10) < s.lr  # poly decay to the end
    with pytest.raises(ValueError, match="snapshots"):
        load_config("cpu-tiny", _toml(tmp_path, '[schedule]\nsnapshots = -1\n'))


def test_snapshots_are_the_ends_of_equal_stretches():
    from labelaudit.train.config import ScheduleConfig
    from labelaudit.train.schedule import is_snapshot_epoch

    kept = lambda epochs, n: [e + 1 for e in range(epochs)  # noqa: E731
                              if is_snapshot_epoch(ScheduleConfig(epochs=epochs, snapshots=n), e)]
    assert kept(40, 8) == [5, 10, 15, 20, 25, 30, 35, 40]
    assert kept(30, 4) == [8, 15, 22, 30]  # round(7.5) = 8, round(22.5) = 22
    assert kept(3, 8) == [1, 2, 3] and kept(10, 0) == []
