#!/usr/bin/env python
"""A teacher-free error detector: does the image beside its label show errors the teacher misses?

    python benchmarks/error_detector.py --root SYNTHETIC_SET --fold K --out DIR [--steps 3000]
    python benchmarks/error_detector.py --root SYNTHETIC_SET --combine DIR --db BENCH_OR_SCAN.db

A small U-Net sees an image and a label map (one-hot) at the label's own resolution, where the
teacher's outputs are 4 px cells, and marks each pixel it takes for a label error. It learns the
way the calibration does (docs/design.md §4): copies of labels corrupted by `data.corrupt`
(never the annotator family the set's noise comes from), here the val split's labels and one
half of the training split's (their own errors count as clean), with mirrored and re-lit
copies. It then scores the other half (`--fold K`: the training images K, K+2, ...), so every
training image is scored once, over two runs, by a detector that never trained on its label.
An image's score is the mean of its 4 highest pixel probabilities.

`--combine` reads both folds and the teacher's image scores (1 - label_quality of the newest
finished scan in the store) and prints image AP, overall and per kind of error against the
clean images (the bench's definition), for the teacher, the detector and the mean of their
ranks (the rule fixed before the reading: `benchmarks/results/stop35/rule_detector.md`).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from scipy.stats import rankdata

from labelaudit.bench.scoring import NOISE_TYPES, average_precision

TOP = 4  # an image's score: the mean of its TOP highest pixel probabilities


def _load(root: Path) -> tuple:
    """(source, val [(record, image, label)], train [...])."""
    from labelaudit.data import open_source

    src = open_source("synthetic", root)
    split = lambda s: [(r, *src.load_pair(r)) for r in src.records(s)]  # noqa: E731
    return src, split("val"), split("train")


def _unet(cin: int, w: int):
    """Four levels, two 3x3 convolutions each, bilinear upsampling, one logit per pixel."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    def block(i: int, o: int) -> nn.Sequential:
        conv = lambda a, b: [nn.Conv2d(a, b, 3, padding=1, bias=False), nn.BatchNorm2d(b),  # noqa: E731
                             nn.ReLU(True)]
        return nn.Sequential(*conv(i, o), *conv(o, o))

    class UNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.enc = nn.ModuleList([block(cin, w), block(w, 2 * w), block(2 * w, 4 * w),
                                      block(4 * w, 8 * w)])
            self.dec = nn.ModuleList([block(12 * w, 4 * w), block(6 * w, 2 * w), block(3 * w, w)])
            self.out = nn.Conv2d(w, 1, 1)

        def forward(self, x):
            skips = []
            for i, enc in enumerate(self.enc):
                x = enc(x if i == 0 else F.max_pool2d(x, 2))
                skips.append(x)
            for dec, skip in zip(self.dec, reversed(skips[:-1])):
                up = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
                x = dec(torch.cat([up, skip], 1))
            return self.out(x)[:, 0]

    return UNet()


def _inputs(image: np.ndarray, label: np.ndarray, num_classes: int):
    """(3 + C, H, W) float tensor: the image in [-1, 1] and the label one-hot (255: all zero)."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(image).permute(2, 0, 1).float() / 127.5 - 1
    lab = torch.from_numpy(label.astype(np.int64))
    onehot = F.one_hot(lab.clamp(max=num_classes - 1), num_classes).permute(2, 0, 1).float()
    return torch.cat([x, onehot * (lab != 255)], 0)


def _batch(pool: list, rng: np.random.Generator, n: int, classes) -> tuple:
    """n corrupted copies (15 % left intact): inputs, changed pixels, valid pixels."""
    import torch

    from labelaudit.data import flip_label
    from labelaudit.data.corrupt import corrupt

    num_classes = classes.num_classes
    xs, ys, ms = [], [], []
    for _ in range(n):
        _, image, label = pool[int(rng.integers(len(pool)))]
        if rng.random() < 0.5:
            image, label = image[:, ::-1], flip_label(label, classes)
        lit = image.astype(np.float32) * rng.uniform(0.8, 1.2) + rng.uniform(-20, 20)
        image = np.ascontiguousarray(np.clip(lit, 0, 255).astype(np.uint8))
        label = np.ascontiguousarray(label)
        bad, _ = corrupt(label, rng, num_classes, classes.flip_pairs,
                         events=None if rng.random() > 0.15 else 0)
        xs.append(_inputs(image, bad, num_classes))
        ys.append(torch.from_numpy(bad != label).float())
        ms.append(torch.from_numpy(label != 255))
    return torch.stack(xs), torch.stack(ys), torch.stack(ms)


def train_detector(pool: list, classes, steps: int, width: int, batch: int = 12):
    """The U-Net fitted on corrupted copies of `pool`'s labels (AdamW, one-cycle, BCE)."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    net = _unet(3 + classes.num_classes, width)
    opt = torch.optim.AdamW(net.parameters(), 2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 2e-3, total_steps=steps, pct_start=0.1)
    t0 = time.time()
    for step in range(steps):
        x, y, m = _batch(pool, rng, batch, classes)
        loss = F.binary_cross_entropy_with_logits(net(x), y, reduction="none",
                                                  pos_weight=torch.tensor(3.0))
        loss = (loss * m).sum() / m.sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 500 == 0 or step == steps - 1:
            print(f"step {step} loss {loss.item():.4f} {time.time() - t0:.0f} s", flush=True)
    return net.eval()


def score_fold(root: Path, fold: int, steps: int, width: int, out: Path) -> None:
    """Train on val + the other half, score half `fold`; write DIR/fold<K>.npz."""
    import torch

    torch.set_num_threads(2)
    src, val, train = _load(root)
    scored, rest = train[fold::2], train[1 - fold::2]
    t0 = time.time()
    net = train_detector(val + rest, src.classes, steps, width)
    seconds = time.time() - t0
    with torch.no_grad():
        maps = [torch.sigmoid(net(_inputs(im, lab, src.classes.num_classes)[None]))[0].numpy()
                for _, im, lab in scored]
    scores = np.array([np.sort(p.ravel())[-TOP:].mean() for p in maps])
    out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out / f"fold{fold}.npz", scores=scores, train_seconds=seconds,
                        relpaths=np.array([str(src.image_relpath(r)) for r, _, _ in scored]))
    print(f"fold {fold}: {len(scored)} images scored, training {seconds:.0f} s")


def _truth(root: Path) -> dict[str, set[str]]:
    """Training image relpath -> the kinds of error in its label (empty: clean), read the way
    the bench reads them (`bench.run._Truth`: the generator's types where the label is wrong)."""
    from labelaudit.bench.run import _Truth
    from labelaudit.data import open_source

    src, truth = open_source("synthetic", root), _Truth()
    out = {}
    for r in src.records("train"):
        codes = np.unique(truth.type_map(r, src.load_label(r)))
        out[str(src.image_relpath(r))] = {NOISE_TYPES.get(int(c), "unknown") for c in codes if c}
    return out


def _teacher_scores(db: Path) -> dict[str, float]:
    """Image relpath -> 1 - label_quality of the store's newest finished scan."""
    from labelaudit.store import open_db
    from labelaudit.store.repo import images_by_id, latest_run, scan_scores

    with open_db(db, must_exist=True) as store, store.session() as session:
        run = latest_run(session, "scan", status="done")
        if run is None:
            raise SystemExit(f"{db}: no finished scan")
        _, quality = scan_scores(session, run)
        paths = {im.id: im.image_relpath for im in images_by_id(session, list(quality))}
    return {paths[i]: 1.0 - q for i, q in quality.items()}


def _rank(x: np.ndarray) -> np.ndarray:
    """Each score's rank in [0, 1], ties in order of appearance."""
    return (rankdata(x, method="ordinal") - 1) / max(len(x) - 1, 1)


def combine(root: Path, folds: Path, db: Path) -> None:
    """Print the image AP table: teacher, detector, the mean of their ranks."""
    det = {}
    for k in (0, 1):
        z = np.load(folds / f"fold{k}.npz")
        det.update(zip(z["relpaths"].tolist(), z["scores"].tolist()))
    truth, teacher = _truth(root), _teacher_scores(db)
    paths = sorted(truth)
    kinds = [truth[p] for p in paths]
    noisy = np.array([bool(k) for k in kinds])
    t = np.array([teacher[p] for p in paths])
    d = np.array([det[p] for p in paths])
    columns = {"teacher": t, "detector": d, "rank mean": (_rank(t) + _rank(d)) / 2}
    names = sorted(set().union(*kinds))
    print("| score | image AP | " + " | ".join(f"{n} ({sum(n in k for k in kinds)})" for n in names)
          + " |")
    print("|---" * (len(names) + 2) + "|")
    for label, s in columns.items():
        by_kind = []
        for n in names:
            keep = np.array([n in k for k in kinds]) | ~noisy
            by_kind.append(f"{average_precision(s[keep], noisy[keep]):.3f}")
        print(f"| {label} | {average_precision(s, noisy):.3f} | " + " | ".join(by_kind) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", type=Path, required=True)
    ap.add_argument("--fold", type=int, choices=(0, 1))
    ap.add_argument("--out", type=Path)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--combine", type=Path, help="the folder of fold0.npz and fold1.npz")
    ap.add_argument("--db", type=Path, help="the SQLite store of a scan of the teacher")
    a = ap.parse_args()
    if a.combine:
        combine(a.root, a.combine, a.db)
    else:
        score_fold(a.root, a.fold, a.steps, a.width, a.out)


if __name__ == "__main__":
    main()
