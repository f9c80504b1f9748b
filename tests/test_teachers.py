"""Any teacher: the reference's checkpoint files, probability maps written by any program,
ensembles; and the errors a bad map gives."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from refweights import reference_shapes
from scanhelp import make_dataset, make_run, plant_flip, scan_snapshot

from labelaudit.data import open_source
from labelaudit.scan import ScanOptions, run_scan
from labelaudit.teachers import ProbsError, ProbsTeacher, Views, checkpoint_teacher, write_map
from labelaudit.teachers.probs import map_path


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = make_dataset(tmp_path_factory.mktemp("teach") / "d", n=20, size=64)
    plant_flip(root, "synth_00003", 2, 4)
    return root


def _numpy_maps(root: Path, out: Path, order: list[str] | None = None) -> dict[str, np.ndarray]:
    """What another program would write: plain numpy, no labelaudit code. Soft one-hot of the
    CLEAN labels (so the planted flip disagrees), at the label's size; {image key: probs}."""
    src = open_source("synthetic", root)
    names = list(src.classes.names)
    order = order or names
    out.mkdir(parents=True)
    (out / "classes.json").write_text(json.dumps({"classes": order}))
    arrays = {}
    for split in ("train", "val"):
        for rec in src.records(split):
            clean = src.load_clean_label(rec)
            onehot = np.eye(len(names), dtype=np.float32)[clean].transpose(2, 0, 1)
            p = np.stack([cv2.GaussianBlur(ch, (5, 5), 1.0) for ch in onehot]) * 0.9 + 0.1 / len(names)
            p /= p.sum(0, keepdims=True)
            key = str(rec.image_path.relative_to(root))
            arrays[key] = p
            path = out / Path(key).with_suffix(".npz")
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez(path, probs=p[[names.index(n) for n in order]])
    return arrays


def _opts(run_dir: Path, **kw) -> ScanOptions:
    return ScanOptions(run_dir=run_dir, progress=False, scorer="rules", **kw)


def test_numpy_written_maps_give_the_api_findings_and_ensemble_with_itself_is_itself(data, tmp_path):
    # class order shuffled in the file: the reader must reorder it
    names = list(open_source("synthetic", data).classes.names)
    arrays = _numpy_maps(data, tmp_path / "maps", order=names[::-1])
    run = make_run(tmp_path / "run", data)  # the API route: a run with a predict hook
    api = run_scan(_opts(run), predict=lambda k, b: [arrays[key] for key in b["key"]])
    files = run_scan(_opts(tmp_path / "a", probs=(tmp_path / "maps",), dataset="synthetic", root=data))
    twice = run_scan(_opts(tmp_path / "b", probs=(tmp_path / "maps",) * 2, dataset="synthetic", root=data))
    want = scan_snapshot(api.db_url, api.run_id)
    assert want[0], "the planted flip gives findings"
    assert any(f[0] == "train/images/synth_00003.jpg" for f in want[0])
    assert scan_snapshot(files.db_url, files.run_id) == want
    assert scan_snapshot(twice.db_url, twice.run_id) == want
    assert files.teacher == "probs" and twice.teacher == "ensemble"


def test_a_missing_map_is_skipped_reported_and_counted(data, tmp_path):
    _numpy_maps(data, tmp_path / "maps")
    gone = tmp_path / "maps" / "train" / "images" / "synth_00001.npz"
    gone.unlink()
    res = run_scan(_opts(tmp_path / "a", probs=(tmp_path / "maps",), dataset="synthetic", root=data))
    assert len(res.bad) == 1 and str(gone) in res.bad[0][1]
    assert res.n_scored_now == res.n_images - 1


def _teacher_with(tmp_path: Path, names: list[str], arr: np.ndarray) -> ProbsTeacher:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "classes.json").write_text(json.dumps(names))
    np.savez(tmp_path / "x.npz", probs=arr)
    return ProbsTeacher(tmp_path)


@pytest.mark.parametrize("bad, message", [
    (lambda p: p[:-1], r"expected \(3, H, W\)"),
    (lambda p: np.concatenate([p[:1] * np.nan, p[1:]]), "NaN"),
    (lambda p: p + np.array([-0.5, 0.25, 0.25], np.float32)[:, None, None], "negative"),
    (lambda p: p * 0.5, "do not sum to 1"),
    (lambda p: p.astype(np.int32), "int32"),
])
def test_bad_maps_are_errors_naming_the_file(tmp_path, bad, message):
    from labelaudit.data.classes import ClassSet

    classes = ClassSet("t", ("a", "b", "c"))
    p = np.full((3, 4, 5), 1 / 3, np.float32)
    t = _teacher_with(tmp_path, ["a", "b", "c"], bad(p))
    with pytest.raises(ProbsError, match=message) as err:
        t.load("x.jpg", classes, (4, 5))
    assert str(tmp_path / "x.npz") in str(err.value)


def test_class_names_are_reordered_and_must_match(tmp_path):
    from labelaudit.data.classes import ClassSet

    classes = ClassSet("t", ("a", "b", "c"))
    p = np.stack([np.full((2, 2), v, np.float32) for v in (0.5, 0.3, 0.2)])  # file order c, a, b
    t = _teacher_with(tmp_path / "ok", ["c", "a", "b"], p)
    got = t.load("x.jpg", classes, (2, 2))
    assert np.allclose(got[:, 0, 0], [0.3, 0.2, 0.5])  # a, b, c
    t = _teacher_with(tmp_path / "bad", ["a", "b", "z"], p)
    with pytest.raises(ProbsError, match=r"missing \['c'\], unknown \['z'\]"):
        t.load("x.jpg", classes, (2, 2))


def test_another_resolution_is_resized_with_one_warning(tmp_path, caplog):
    from labelaudit.data.classes import ClassSet

    classes = ClassSet("t", ("a", "b"))
    p = np.zeros((2, 4, 4), np.float32)
    p[0, :, :2], p[1, :, 2:] = 1, 1  # left half a, right half b
    t = _teacher_with(tmp_path, ["a", "b"], p)
    with caplog.at_level(logging.WARNING):
        got = t.load("x.jpg", classes, (8, 8))
        t.load("x.jpg", classes, (8, 8))
    assert got.shape == (2, 8, 8) and np.allclose(got.sum(0), 1)
    assert got[0, 3, 0] > 0.9 and got[1, 3, 7] > 0.9
    assert sum("resizing" in r.message for r in caplog.records) == 1


def test_uint8_and_float16_maps_round_trip(tmp_path):
    from labelaudit.data.classes import ClassSet

    classes = ClassSet("t", ("a", "b", "c"))
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(3), size=(6, 7)).transpose(2, 0, 1).astype(np.float32)
    (tmp_path / "classes.json").write_text(json.dumps(["a", "b", "c"]))
    t = ProbsTeacher(tmp_path)
    for dtype, tol in (("float16", 2e-3), ("uint8", 3 / 255)):
        write_map(tmp_path, f"{dtype}.jpg", p, dtype)
        assert np.abs(t.load(f"{dtype}.jpg", classes, (6, 7)) - p).max() < tol


def _reference_file(path: Path) -> Path:
    """The released file's form: inference tensors only, DataParallel prefix, no counters."""
    g = torch.Generator().manual_seed(3)
    state = {}
    for name, shape in reference_shapes().items():
        if name.startswith("edge_layer.") or name.endswith("num_batches_tracked"):
            continue
        t = torch.rand(shape, generator=g) + 0.5 if name.endswith("running_var") else \
            torch.randn(shape, generator=g) * 0.05
        state[f"module.{name}"] = t
    torch.save(state, path)
    return path


@pytest.mark.slow
def test_reference_checkpoint_scans_with_the_reference_preprocessing(data, tmp_path):
    from labelaudit.predict import predict_batch_probs
    from labelaudit.scan.forward import ScanDataset, scan_collate
    from model import load_reference_checkpoint

    path = _reference_file(tmp_path / "dml_csr_lapa.pth")
    teacher = checkpoint_teacher(path)
    assert (teacher.size, teacher.channel_order, teacher.name) == (473, "bgr", "reference")
    src = open_source("synthetic", data)
    ds = ScanDataset(src, "train", size=473, augment=False, channel_order="bgr")
    batch = scan_collate([ds[0], ds[1]])
    want = predict_batch_probs(load_reference_checkpoint(path).eval(), batch, torch.device("cpu"),
                               src.classes)
    got = teacher.predict(batch, src.classes)
    assert all(np.array_equal(a, b) for a, b in zip(got, want))
    res = run_scan(_opts(tmp_path / "audit", checkpoints=(path,), dataset="synthetic", root=data,
                         limit=2))
    assert res.n_scored_now == 2 and res.teacher == "reference"
    from labelaudit.store import Run, open_db

    store = open_db(res.db_url)
    with store.session() as s:
        cfg = s.get(Run, res.run_id).config
    store.close()
    assert cfg["teachers"][0]["kind"] == "reference"
    assert len(cfg["sha256"][str(path)]) == 64


def test_predict_writes_the_network_probabilities(data, tmp_path):
    from labelaudit.scan.maps_out import write_probability_maps
    from labelaudit.teachers import load_teachers
    from labelaudit.scan.forward import ScanDataset, scan_collate

    run = make_run(tmp_path / "run", data)
    opts = _opts(run, limit=3)
    res = write_probability_maps(opts, tmp_path / "p", shard=(1, 2))
    src = open_source("synthetic", data)
    recs = src.records("train")[:3]
    assert res.n_written == 1  # shard 1 of 2 of three images: the second
    assert not map_path(tmp_path / "p", recs[0].image_path.relative_to(data)).exists()
    ts = load_teachers(run, "csr", views=opts.views())  # the default: the audit's views
    assert opts.views() == Views(False, (1.0, 1.25, 1.5))
    ds = ScanDataset(src, "train", size=ts.size, augment=False)
    want = ts.teachers[0].predict(scan_collate([ds[1]]), src.classes)[0]
    with np.load(map_path(tmp_path / "p", recs[1].image_path.relative_to(data))) as z:
        assert z["probs"].dtype == np.float16
        assert np.abs(z["probs"].astype(np.float32) - want).max() < 2e-3
    assert json.loads((tmp_path / "p" / "classes.json").read_text())["classes"] == list(src.classes.names)
