#!/usr/bin/env python
"""Where the loop's exported labels go right and wrong, by kind and size of the finding applied.

    python benchmarks/loop_by_kind.py DATA DB FIXED_LABELS

DATA: a synthetic set (it keeps the clean labels); DB: the store of the scan the export applied
(`bench_loop.py` keeps it as `<work>/loop/seed-K/noisy/loop.db`); FIXED_LABELS: that export.
Every finding left in the store's scan is one the export applied (the calibrated scan drops the
unlisted ones, `bench_loop.py` exports with `--policy threshold:0`). For each, the pixels of its
mask that the export changed are counted as fixed (now the clean label) or made wrong (the
given label was the clean one). Prints a markdown table.
"""
from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np
from sqlalchemy import select

from labelaudit.data import open_source
from labelaudit.store import open_db
from labelaudit.store.models import Finding, Image

SMALL = 50  # px: the "small" regions


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path)
    ap.add_argument("db", help="SQLAlchemy URL of the scan's store")
    ap.add_argument("fixed", type=Path, help="the exported label tree")
    a = ap.parse_args()
    src = open_source("synthetic", a.data)
    records = {str(src.image_relpath(r)): r for r in src.records("train")}
    tally: dict[tuple[str, str], np.ndarray] = defaultdict(lambda: np.zeros(4, np.int64))
    labels: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    store = open_db(a.db, must_exist=True)
    try:
        with store.session() as s:
            rows = s.execute(select(Finding, Image.image_relpath)
                             .join(Image, Finding.image_id == Image.id)).all()
            for f, path in rows:
                if path not in records:
                    continue
                if path not in labels:
                    rec = records[path]
                    labels[path] = (src.load_label(rec), src.load_label(rec, a.fixed), src.load_clean_label(rec))
                given, fixed, clean = labels[path]
                changed = f.mask(given.shape) & (given != fixed)
                size = f"< {SMALL}" if f.area < SMALL else f">= {SMALL}"
                tally[(f.kind, size)] += [1, changed.sum(), (changed & (fixed == clean)).sum(),
                                          (changed & (given == clean)).sum()]
    finally:
        store.close()
    print("| kind | size (px) | findings | pixels changed | fixed | made wrong |")
    print("|---|---|---|---|---|---|")
    for (kind, size), v in sorted(tally.items()):
        print(f"| {kind} | {size} | " + " | ".join(str(int(x)) for x in v) + " |")
    total = sum(tally.values(), np.zeros(4, np.int64))
    print("| all | | " + " | ".join(str(int(x)) for x in total) + " |")


if __name__ == "__main__":
    main()
