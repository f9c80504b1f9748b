"""Test helpers for the scan / review / export tests: a tiny dataset and a run directory.

The run directory holds a real DML-CSR checkpoint (cpu-tiny size, untrained weights) so that
every loading path is exercised; the tests that assert what the scan FINDS judge the labels with
an oracle teacher (`oracle_predictor`): softened clean labels, blurred at boundaries like a
real network's. What is under test there is the scan's logic, not the network's skill.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import torch

from labelaudit.data import open_source, read_label, write_label
from labelaudit.data.synthetic import generate
from labelaudit.train import load_config


def make_dataset(root: Path, n: int = 20, size: int = 128, seed: int = 5) -> Path:
    """A clean synthetic LaPa-layout set (noise_rate 0: labels == clean labels)."""
    generate(root, n=n, size=size, noise_rate=0.0, seed=seed, progress=False)
    return root


def make_run(run_dir: Path, data_root: Path, calibration: bool = False) -> Path:
    """A `train --out` directory with an untrained cpu-tiny checkpoint (and DML student)."""
    from model import build_model

    cfg = load_config("cpu-tiny", None, {"data.root": str(data_root)})
    torch.manual_seed(0)
    m = cfg.model
    names = list(open_source("synthetic", data_root).classes.names)
    net = build_model(len(names), depth=m.depth, edges=True, conva_kernel=m.conva_kernel,
                      width=m.width, abn=m.abn)
    run_dir.mkdir(parents=True)
    sd = net.state_dict()
    calib = None
    if calibration:
        calib = {"class_confidence_sum": [0.9] * len(names), "class_pixel_count": [1] * len(names)}
    torch.save({"student": sd, "teacher": sd, "config": cfg.to_dict(), "classes": names,
                "calibration": calib, "epoch": 1}, run_dir / "checkpoint.pt")
    torch.save({"student": sd, "config": cfg.to_dict(), "classes": names},
               run_dir / "dml_student.pt")
    return run_dir


def oracle_predictor(data_root: Path, sharpness: float = 0.9):
    """Predict fn: each image's CLEAN label as probabilities, soft along class boundaries."""
    src = open_source("synthetic", data_root)
    clean = {}
    for split in ("train", "val", "test"):
        for rec in src.records(split):
            clean[rec.id] = src.load_clean_label(rec)
    c = src.classes.num_classes

    def probs_of(label: np.ndarray) -> np.ndarray:
        onehot = np.eye(c, dtype=np.float32)[label].transpose(2, 0, 1)
        soft = np.stack([cv2.GaussianBlur(ch, (5, 5), 1.0) for ch in onehot])
        p = sharpness * soft + (1 - sharpness) / c
        return p / p.sum(0, keepdims=True)

    def predict(k: int, batch) -> list[np.ndarray]:
        return [probs_of(clean[i]) for i in batch["id"]]
    return predict


def label_path(root: Path, split: str, stem: str) -> Path:
    return root / split / "labels" / f"{stem}.png"


def plant_flip(root: Path, stem: str, src_cls: int, dst_cls: int, split: str = "train") -> int:
    """Relabel every `src_cls` pixel of one image as `dst_cls`; returns the pixel count."""
    p = label_path(root, split, stem)
    lab = read_label(p)
    m = lab == src_cls
    lab[m] = dst_cls
    write_label(p, lab)
    return int(m.sum())


def plant_shift(root: Path, stem: str, cls: int, pixels: int = 2, split: str = "train") -> None:
    """Grow one class by `pixels` px (a boundary shift)."""
    p = label_path(root, split, stem)
    lab = read_label(p)
    grown = cv2.dilate((lab == cls).astype(np.uint8), np.ones((3, 3), np.uint8), iterations=pixels)
    lab[grown.astype(bool)] = cls
    write_label(p, lab)


def one_flip_scene() -> tuple[list, np.ndarray, np.ndarray]:
    """A 12 px image's true regions (one flip, top left), a finding on it, and a stray pixel
    finding elsewhere: for the bench's matching and ranking by hand."""
    from labelaudit.bench.scoring import true_regions

    types = np.zeros((12, 12), np.uint8)
    types[0:3, 0:3] = 1
    hit = np.zeros((12, 12), bool)
    hit[0:3, 0:3] = True
    stray = np.zeros((12, 12), bool)
    stray[9, 9] = True
    return true_regions(types), hit, stray


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def scan_snapshot(url: str, run_id: int) -> tuple[list, list]:
    """A scan's findings (image, classes, kind, score to 6 digits, area, bbox, mask) and image
    scores, sorted: what two stores or two ways of scanning must agree on."""
    from labelaudit.store import Finding, ImageScore, open_db

    store = open_db(url)
    with store.session() as s:
        found = sorted((f.image.image_relpath, f.given_class, f.suggested_class, f.kind,
                        round(f.score, 6), f.area, f.bbox, f.mask_rle)
                       for f in s.query(Finding).filter(Finding.run_id == run_id))
        images = sorted((sc.image.image_relpath, round(sc.label_quality, 6), sc.n_findings)
                        for sc in s.query(ImageScore).filter(ImageScore.run_id == run_id))
    store.close()
    return found, images


def torchrun(*args: str, nproc: int = 2, timeout: int = 600):
    """`python -m torch.distributed.run --nproc_per_node N -m labelaudit ARGS` on a free local
    port, one thread per process; the CompletedProcess."""
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
           "--master_addr", "127.0.0.1", "--master_port", str(port), "-m", "labelaudit", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
