"""Test-time views: every scale reaches the network, the probabilities are the views' mean, and
a teacher with other views neither reuses the plain pass's saved thresholds nor its stored
calibration."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scanhelp import make_dataset, make_run, oracle_predictor, plant_flip

from labelaudit.data import open_source
from labelaudit.predict import Views, predict_batch_probs
from labelaudit.scan import ScanOptions, run_scan
from labelaudit.scan.calibrate import calibration_path
from labelaudit.scan.forward import ScanDataset, scan_collate
from labelaudit.teachers import load_teachers, open_teachers


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = make_dataset(tmp_path_factory.mktemp("views") / "d", n=24, size=64)
    plant_flip(root, "synth_00003", 2, 4)
    return root


class _Stride4(torch.nn.Module):
    """A stand-in network: a 1x1 convolution of the image to class logits, averaged over 4 x 4
    cells (the real network's output stride); it records the size of every input it sees."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, num_classes, 1)
        self.sizes: list[tuple[int, int]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.sizes.append(tuple(x.shape[-2:]))
        return F.avg_pool2d(self.conv(x) * 4, 4)


def test_every_scale_reaches_the_network_and_the_views_are_averaged(data):
    src = open_source("synthetic", data)
    batch = scan_collate([ScanDataset(src, "train", size=64, augment=False)[i] for i in (0, 1)])
    net = _Stride4(src.classes.num_classes)

    def probs(views: Views) -> tuple[list[np.ndarray], list[tuple[int, int]]]:
        net.sizes.clear()
        out = predict_batch_probs(net, batch, torch.device("cpu"), src.classes, views=views)
        return out, list(net.sizes)

    both, sizes = probs(Views(scales=(1.0, 1.5)))
    assert sizes == [(64, 64), (96, 96)]
    (one, _), (big, _) = probs(Views()), probs(Views(scales=(1.5,)))
    for b, o, g in zip(both, one, big):
        assert b.shape == o.shape == (src.classes.num_classes, 64, 64)
        assert np.abs(o - g).max() > 1e-3  # the larger view tells the network something else
        np.testing.assert_allclose(b, (o + g) / 2, atol=1e-6)
    _, sizes = probs(Views(flip=True, scales=(1.0, 1.25)))
    assert sizes == [(64, 64), (64, 64), (80, 80), (80, 80)]  # each scale, plain and mirrored


@pytest.mark.parametrize("scales", [(), (0.0,), (5.0,)])
def test_views_refuse_scales_out_of_range(scales):
    with pytest.raises(ValueError, match="scales"):
        Views(scales=scales)


def test_scales_are_parsed_from_a_comma_list():
    assert Views.parse_scales("1, 1.25,1.5") == (1.0, 1.25, 1.5)
    with pytest.raises(ValueError, match="'1,x'"):
        Views.parse_scales("1,x")


def test_other_views_measure_their_own_thresholds_and_calibration(data, tmp_path):
    run = make_run(tmp_path / "run", data, calibration=True)
    views = Views(scales=(1.0, 1.25))
    plain, multi = (load_teachers(run, "csr", views=v).teachers[0] for v in (Views(), views))
    # the val thresholds saved by the training hold for the plain pass only
    assert plain.calibration is not None and multi.calibration is None
    assert "views" not in plain.describe()
    assert multi.describe()["views"] == {"flip": False, "scales": [1.0, 1.25]}
    oracle, path = oracle_predictor(data), calibration_path(run, "csr")

    def scan(scales: tuple[float, ...], db: str) -> int:
        run_scan(ScanOptions(run_dir=run, scales=scales, db_url=str(run / db), progress=False),
                 predict=oracle)
        return path.stat().st_mtime_ns

    first = scan((1.0,), "a.db")
    assert scan((1.0,), "b.db") == first  # the same teacher: the stored calibration is reused
    assert scan((1.0, 1.25), "c.db") != first  # other views: fitted again


def test_views_on_probability_maps_are_an_error_naming_the_folder(tmp_path):
    with pytest.raises(ValueError, match=r"maps.*labelaudit predict"):
        open_teachers(tmp_path, probs=(tmp_path / "maps",), views=Views(scales=(1.0, 1.25)))


def test_the_audit_sees_three_scales_unless_told_and_maps_as_written(tmp_path):
    """The scan's default for a network teacher is 1, 1.25 and 1.5 times the input side, not
    mirrored (stops 29 and 30); maps alone are taken as written; explicit options win."""
    three = (1.0, 1.25, 1.5)
    assert ScanOptions(run_dir=tmp_path).views() == Views(False, three)
    assert ScanOptions(run_dir=tmp_path, tta=True).views() == Views(True, three)
    assert ScanOptions(run_dir=tmp_path, scales=(1.0,)).views().plain
    maps = (tmp_path / "maps",)
    assert ScanOptions(run_dir=tmp_path, probs=maps).views().plain
    with_net = ScanOptions(run_dir=tmp_path, probs=maps, checkpoints=(tmp_path / "c.pth",))
    assert with_net.views() == Views(False, three)  # the network's views; maps as written
    for bad in ({"scales": (1.0, 1.5)}, {"tta": True}):
        with pytest.raises(ValueError, match=r"maps.*labelaudit predict"):
            ScanOptions(run_dir=tmp_path, probs=maps, **bad).teachers()
