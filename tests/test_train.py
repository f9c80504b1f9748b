"""Training: schedule, resume after a crash reproduces the uninterrupted run, clear errors,
K folds, and two-process DDP through torchrun."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from labelaudit.data.synthetic import generate
from labelaudit.tracking import recorded_training
from labelaudit.train import load_config, train
from labelaudit.train.checkpoint import CheckpointError
from labelaudit.train.config import preset, rescale_epochs
from labelaudit.train.engine import Trainer
from labelaudit.train.schedule import in_csr, is_cycle_end, is_teacher_update, learning_rate


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("train") / "data"
    generate(root, n=20, size=48, noise_rate=0.2, seed=4, progress=False)
    return root


def _cfg(root, **kw):
    over = {"data.root": str(root), "schedule.epochs": 3, "schedule.batch_size": 8,
            "schedule.bn_batches": 1}
    over.update(kw)
    return load_config("cpu-tiny", None, over)


def test_paper_schedule_shape():
    s = preset("paper").schedule
    lrs = [learning_rate(s, e, 0, 10) for e in range(s.epochs)]
    dml = lrs[:s.csr_start]
    assert all(a > b for a, b in zip(dml, dml[1:]))  # poly decay
    assert lrs[0] == pytest.approx(s.lr)
    ends = [e for e in range(s.epochs) if is_cycle_end(s, e)]
    assert len(ends) == s.cycles and ends[0] == s.csr_start + s.cycle_epochs - 1
    csr = [learning_rate(s, e, 0, 10) for e in range(s.csr_start, s.epochs)]
    assert max(csr) <= s.cycle_lr_max + 1e-12 and min(csr) >= s.cycle_lr_min - 1e-12
    for k in range(s.cycles):  # every cycle runs from its maximum down to its minimum
        cycle = csr[k * s.cycle_epochs:(k + 1) * s.cycle_epochs]
        assert cycle[0] == pytest.approx(s.cycle_lr_max) and cycle[-1] == pytest.approx(s.cycle_lr_min)
        assert all(a > b for a, b in zip(cycle, cycle[1:]))
    assert not in_csr(s, s.csr_start - 1) and in_csr(s, s.csr_start)


@pytest.mark.parametrize("seed", [True, False])
def test_the_teacher_is_seeded_with_the_last_dml_model_only_when_asked(seed):
    s = preset("paper").schedule
    s.seed_teacher = seed
    updates = [e for e in range(s.epochs) if is_teacher_update(s, e)]
    cycle_ends = [s.csr_start - 1 + s.cycle_epochs * (k + 1) for k in range(s.cycles)]
    assert updates == ([s.csr_start - 1] if seed else []) + cycle_ends
    s.csr_start = 0  # no DML phase: nothing to seed with
    assert not is_teacher_update(s, -1) and is_teacher_update(s, s.cycle_epochs - 1)


@pytest.mark.parametrize("average", ["cycle_end", "epochs"])
def test_teacher_is_eq6_of_the_students_it_saw(tiny, tmp_path, average):
    """cycle_end: the teacher is the mean of the cycle-end students; epochs (eq. 6 as written):
    teacher_k = k/(k+1) teacher_{k-1} + 1/(k+1) mean(students at the cycle's epoch ends)."""
    cfg = _cfg(tiny, **{"schedule.epochs": 5})
    s = cfg.schedule
    s.csr_start, s.cycles, s.cycle_epochs, s.teacher_average = 1, 2, 2, average
    trainer = Trainer(cfg, tmp_path / average, progress=False)
    seen: list[dict[str, torch.Tensor]] = []
    trainer.on_epoch = lambda record: seen.append(
        {k: v.detach().clone() for k, v in trainer.student.named_parameters()})
    trainer.fit()
    csr = seen[1:]  # epochs 2-5: cycle 1 = epochs 2, 3; cycle 2 = epochs 4, 5
    for name, got in trainer.teacher.model.named_parameters():
        if average == "epochs":
            first = (csr[0][name] + csr[1][name]) / 2
            expected = first / 2 + (csr[2][name] + csr[3][name]) / 4
        else:
            expected = (csr[1][name] + csr[3][name]) / 2
        assert torch.allclose(got, expected, atol=1e-6), name


def test_rescaled_schedule_keeps_both_phases():
    cfg = preset("cpu")
    rescale_epochs(cfg, 3)
    s = cfg.schedule
    assert s.epochs == 3 and 1 <= s.csr_start < 3 and s.cycles * s.cycle_epochs == 3 - s.csr_start
    with pytest.raises(ValueError):
        rescale_epochs(cfg, 1)


def _state(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def test_resume_after_sigkill_reproduces_the_uninterrupted_run(tiny, tmp_path):
    cfg = _cfg(tiny, **{"schedule.epochs": 4})
    train(cfg, tmp_path / "a", progress=False)
    # the same run in a child process, killed with SIGKILL once its first epoch is saved
    cmd = [sys.executable, "-m", "labelaudit", "train", "--root", str(tiny), "--preset", "cpu-tiny",
           "--epochs", "4", "--batch-size", "8", "--out", str(tmp_path / "b")]
    toml = tmp_path / "bn.toml"
    toml.write_text("[schedule]\nbn_batches = 1\n")
    child = subprocess.Popen(cmd + ["--config", str(toml)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "2"})
    ck = tmp_path / "b" / "checkpoint.pt"
    deadline = time.time() + 300
    while not ck.exists() and child.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait()
    killed_at = _state(ck)["epoch"]
    assert 1 <= killed_at < 4, "the child finished before it could be killed"
    train(cfg, tmp_path / "b", resume=True, progress=False)
    a, b = _state(tmp_path / "a" / "checkpoint.pt"), _state(ck)
    assert a["epoch"] == b["epoch"] == 4
    for key in ("student", "teacher"):
        for name, t in a[key].items():
            assert torch.equal(t, b[key][name]), f"{key}.{name} differs after resume"
    lines = (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(x) for x in lines]
    assert [r["epoch"] for r in records] == [1, 2, 3, 4]
    # unseeded (cpu presets): the first cycle trains alone, its end makes the first teacher
    assert "val/teacher/mean_f1" not in records[1] and records[2]["distill"] == 0
    assert "val/teacher/mean_f1" in records[2] and records[3]["distill"] > 0
    assert (tmp_path / "b" / "dml_student.pt").exists() and (tmp_path / "b" / "report.json").exists()


def test_interrupt_in_process_then_resume(tiny, tmp_path):
    cfg = _cfg(tiny, **{"schedule.seed_teacher": True})
    crashed = Trainer(cfg, tmp_path / "c", progress=False)  # 2 iterations per epoch
    step, steps = crashed.optimizer.step, []

    def ctrl_c_at_the_fourth_step(*args, **kwargs):
        if len(steps) == 3:
            raise KeyboardInterrupt
        steps.append(1)
        return step(*args, **kwargs)

    crashed.optimizer.step = ctrl_c_at_the_fourth_step
    with pytest.raises(KeyboardInterrupt):
        crashed.fit()
    assert _state(tmp_path / "c" / "checkpoint.pt")["epoch"] == 1
    res = train(cfg, tmp_path / "c", resume=True, progress=False)
    assert res.epochs == 3 and _state(tmp_path / "c" / "checkpoint.pt")["teacher"] is not None
    # seeded: the last DML epoch makes the first teacher, the first CSR epoch distils from it
    records = [json.loads(x) for x in (tmp_path / "c" / "metrics.jsonl").read_text().splitlines()]
    first_csr = cfg.schedule.csr_start  # 0-based epoch = index in the records
    assert "val/teacher/mean_f1" in records[first_csr - 1] and records[first_csr - 1]["distill"] == 0
    assert records[first_csr]["phase"] == "csr" and records[first_csr]["distill"] > 0
    # recorded_training keeps the run and its resolved config in the store beside the run
    with recorded_training(cfg, tmp_path / "c"):
        train(cfg, tmp_path / "c", resume=True, progress=False)  # nothing left to train
    con = sqlite3.connect(tmp_path / "c" / "labelaudit.db")
    rows = con.execute("select kind, status, config from runs").fetchall()
    assert rows[-1][:2] == ("train", "done")
    assert json.loads(rows[-1][2])["schedule"]["epochs"] == 3


@pytest.mark.parametrize(("error", "status"), [(KeyboardInterrupt, "interrupted"), (RuntimeError, "failed")])
def test_recorded_training_keeps_how_a_run_ended(tiny, tmp_path, error, status):
    with pytest.raises(error):
        with recorded_training(_cfg(tiny), tmp_path / "r"):
            raise error()
    con = sqlite3.connect(tmp_path / "r" / "labelaudit.db")
    assert con.execute("select kind, status from runs").fetchall() == [("train", status)]


def test_existing_run_and_corrupt_checkpoint_give_clear_errors(tiny, tmp_path):
    cfg = _cfg(tiny, **{"schedule.epochs": 2})
    train(cfg, tmp_path / "r", progress=False)
    with pytest.raises(FileExistsError, match="--resume"):
        train(cfg, tmp_path / "r", progress=False)
    ck = tmp_path / "r" / "checkpoint.pt"
    ck.write_bytes(ck.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match=str(ck)):
        train(cfg, tmp_path / "r", resume=True, progress=False)


@pytest.mark.slow
def test_folds_train_out_of_sample_teachers(tiny, tmp_path):
    from labelaudit.data import open_source
    from labelaudit.teachers import load_teachers

    cfg = _cfg(tiny, **{"schedule.epochs": 2, "folds": 2})
    train(cfg, tmp_path / "f", progress=False)
    meta = json.loads((tmp_path / "f" / "folds.json").read_text())
    ids = [r.id for r in open_source("synthetic", tiny).records("train")]
    assert meta["ids"] == ids and sorted(set(meta["fold_of_index"])) == [0, 1]
    ts = load_teachers(tmp_path / "f", "auto")
    assert ts.name == "folds" and len(ts.teachers) == 2
    assert all(ts.for_record(i) == f for i, f in zip(ids, meta["fold_of_index"]))
    assert not list((tmp_path / "f").rglob("planted.json"))  # out-of-fold teachers never plant


def test_a_training_plants_known_errors_and_trains_on_them(tiny, tmp_path):
    from labelaudit.data.warp import warp_label

    trainer = Trainer(_cfg(tiny, **{"data.plant": 0.125}), tmp_path / "p", progress=False)
    ds = trainer.data.train_set
    assert ds.planted is not None and len(ds.planted) == 2  # 12.5 % of 16 training images
    i = next(k for k, r in enumerate(ds.records) if r.id in ds.planted)
    planted = ds.planted.label(ds.records[i].id)
    given = ds.source.load_label(ds.records[i])
    assert (planted != given).sum() >= 2
    want = warp_label(planted, ds.warp_params(i, planted.shape), ds.source.classes)
    assert torch.equal(ds[i]["label"], torch.from_numpy(want.astype(np.int64)))
    off = Trainer(_cfg(tiny, **{"data.plant": 0.0}), tmp_path / "q", progress=False)
    assert off.data.train_set.planted is None and not (tmp_path / "q" / "planted.json").exists()


@pytest.mark.slow
def test_two_process_ddp_with_torchrun(tiny, tmp_path):
    out = tmp_path / "ddp"
    from scanhelp import torchrun

    proc = torchrun("train", "--root", str(tiny), "--preset", "cpu-tiny", "--epochs", "2",
                    "--batch-size", "4", "--run-dir", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    rep = json.loads((out / "report.json").read_text())
    assert rep["epochs"] == 2
    st = _state(out / "checkpoint.pt")
    # rank 0 alone wrote; the student has plain (not synchronised) BN keys and loads back
    from model import build_model

    m = st["config"]["model"]
    net = build_model(11, depth=m["depth"], width=m["width"], abn=m["abn"])
    net.load_state_dict(st["student"])
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2  # one writer


@pytest.mark.slow
def test_snapshots_are_kept_and_their_teacher_is_their_mean(tiny, tmp_path, monkeypatch):
    from labelaudit.data import open_source
    from labelaudit.scan.forward import ScanDataset, scan_collate
    from labelaudit.teachers import load_teachers

    cfg = _cfg(tiny, **{"schedule.epochs": 2, "schedule.snapshots": 2})
    train(cfg, tmp_path / "s", progress=False)
    files = sorted((tmp_path / "s" / "snapshots").glob("*.pt"))
    assert [f.name for f in files] == ["epoch-0001.pt", "epoch-0002.pt"]
    ts = load_teachers(tmp_path / "s", "snapshots")
    ens = ts.teachers[0]
    src = open_source("synthetic", tiny)
    batch = scan_collate([ScanDataset(src, "train", size=ts.size, augment=False)[0]])
    each = [m.predict(batch, src.classes)[0] for m in ens.members]
    assert not np.allclose(each[0], each[1])
    assert np.allclose(ens.predict(batch, src.classes)[0], (each[0] + each[1]) / 2, atol=1e-6)
    # "auto": the snapshots from SNAPSHOTS_FROM training images on, else the CSR teacher
    import labelaudit.teachers.runs as runs

    monkeypatch.setattr(runs, "SNAPSHOTS_FROM", len(src.records("train")))
    assert load_teachers(tmp_path / "s", "auto").name == "snapshots"
    monkeypatch.setattr(runs, "SNAPSHOTS_FROM", len(src.records("train")) + 1)
    assert load_teachers(tmp_path / "s", "auto").name == "csr"
    # the dataset moved: "auto" counts its images where it is now (scan --root)
    monkeypatch.setattr(runs, "SNAPSHOTS_FROM", len(src.records("train")))
    config = tmp_path / "s" / "config.toml"
    assert str(tiny) in config.read_text()
    config.write_text(config.read_text().replace(str(tiny), str(tmp_path / "gone")))
    with pytest.raises((ValueError, FileNotFoundError), match="gone"):
        load_teachers(tmp_path / "s", "auto")
    assert load_teachers(tmp_path / "s", "auto", root=tiny).name == "snapshots"


def test_a_bad_image_stops_training_before_the_first_epoch(tmp_path):
    from labelaudit.data.errors import BadInputError

    root = tmp_path / "d"
    generate(root, n=12, size=48, noise_rate=0.0, seed=1, progress=False)
    victim = sorted((root / "val" / "images").iterdir())[0]
    victim.write_bytes(b"not a jpeg at all")
    with pytest.raises(BadInputError, match=victim.name):  # raised while the Trainer is built
        Trainer(_cfg(root), tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_a_killed_training_is_marked_interrupted_by_the_next_one(tiny, tmp_path):
    """SIGKILL leaves no chance to record the end: the next recorded training notices."""
    with recorded_training(_cfg(tiny), tmp_path / "r"):
        pass
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    con = sqlite3.connect(tmp_path / "r" / "labelaudit.db")
    config = json.loads(con.execute("select config from runs").fetchone()[0])
    for pid in (dead.pid, alive.pid):  # one training killed, one still running elsewhere here
        config["owner"]["pid"] = pid
        con.execute("insert into runs (kind, config, status, versions, started_at) "
                    "select kind, ?, 'running', versions, started_at from runs where id = 1",
                    (json.dumps(config),))
    con.commit()
    try:
        with recorded_training(_cfg(tiny), tmp_path / "r"):
            pass
    finally:
        alive.kill()
    rows = con.execute("select id, status from runs order by id").fetchall()
    assert rows == [(1, "done"), (2, "interrupted"), (3, "running"), (4, "done")]
