#!/usr/bin/env python
"""A teacher's accuracy under test-time views: val mean F1 per set of input scales.

    python benchmarks/view_f1.py --run RUN [--root SET] [--views "1;1.25;1.5;1,1.25;1,1.25,1.5"]

Each `;`-separated item is one `scan --scales` value; the run's CSR teacher predicts the val
split with those views (labelaudit.predict.Views) and is scored against the val labels, with
the wall time of its forwards. On a synthetic set the val labels are clean. Stop 28 chose the
scan's `--scales 1,1.25,1.5` on the tuning set's teacher with this script.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from labelaudit.data.classes import IGNORE_INDEX
from labelaudit.metrics import ConfusionAccumulator
from labelaudit.predict import Views, predict_batch_probs
from labelaudit.scan.forward import ScanDataset, scan_collate
from labelaudit.teachers import load_teachers


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--root", type=Path, help="dataset root, if it moved since training")
    ap.add_argument("--views", default="1;1.25;1.5;1,1.25;1,1.25,1.5")
    a = ap.parse_args()
    teachers = load_teachers(a.run, "csr", root=a.root)
    source = teachers.data.open_source()
    val = ScanDataset(source, "val", size=teachers.size, augment=False,
                      channel_order=teachers.channel_order)
    net, names = teachers.teachers[0].model, source.classes.names
    print(f"{a.run}: {len(val)} val images at {teachers.size} px\n")
    print("| --scales | val mean F1 | forward s |\n|---|---|---|")
    for item in a.views.split(";"):
        views = Views(scales=Views.parse_scales(item))
        acc, seconds = ConfusionAccumulator(len(names)), 0.0
        for batch in DataLoader(val, batch_size=8, collate_fn=scan_collate):
            t0 = time.perf_counter()
            probs = predict_batch_probs(net, batch, torch.device("cpu"), source.classes, views=views)
            seconds += time.perf_counter() - t0
            for p, label in zip(probs, batch["label_orig"]):
                valid = label != IGNORE_INDEX
                acc.update(label[valid], p.argmax(0)[valid])
        print(f"| {item} | {acc.scores(names).mean_f1:.2f} | {seconds:.1f} |")


if __name__ == "__main__":
    main()
