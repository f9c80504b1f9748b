"""Label trees of a synthetic set against its known truth: how many training pixels are wrong
before and after a corrected tree, and the clean labels as a tree to train on (the ceiling)."""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from labelaudit.data import SPLITS


@dataclass
class LabelNoise:
    """Wrong training pixels (vs the clean labels) in the given labels and in a corrected tree,
    and the pixels that tree fixed and made wrong."""

    before: int
    after: int
    fixed: int
    broken: int


def label_noise(root: Path, labels_dir: Path) -> LabelNoise:
    """One pass over the training split of the synthetic set at `root`."""
    from labelaudit.data import open_source

    src = open_source("synthetic", root)
    out = LabelNoise(0, 0, 0, 0)
    for rec in src.records("train"):
        clean = src.load_clean_label(rec)
        was, now = src.load_label(rec) != clean, src.load_label(rec, labels_dir) != clean
        out.before += int(was.sum())
        out.after += int(now.sum())
        out.fixed += int((was & ~now).sum())
        out.broken += int((~was & now).sum())
    return out


def clean_label_tree(root: Path, tree: Path) -> Path:
    """The generator's clean labels (LaPa layout: `<split>/labels_clean/`) copied into `tree` in
    the layout `train --labels` reads."""
    for split in SPLITS:
        (tree / split / "labels").mkdir(parents=True, exist_ok=True)
        for f in (Path(root) / split / "labels_clean").glob("*.png"):
            shutil.copy2(f, tree / split / "labels" / f.name)
    return tree
