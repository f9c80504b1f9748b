#!/usr/bin/env python
"""Where the loop's exported labels go right and wrong, by kind and size of the finding applied.

    python benchmarks/loop_by_kind.py DATA DB FIXED_LABELS

DATA: a synthetic set (it keeps the clean labels); DB: the store of the scan the export applied
(`bench_loop.py` keeps it as `<work>/loop/seed-K/noisy/loop.db`); FIXED_LABELS: that export.
Every finding left in the scan (the latest, or `--scan-run`) is one the export applied (the calibrated scan drops the
unlisted ones, `bench_loop.py` exports with `--policy threshold:0`). For each, the pixels of its
mask that the export changed are counted as fixed (now the clean label) or made wrong (the
given label was the clean one). Prints a markdown table.
"""
from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np

from labelaudit.data import open_source
from labelaudit.scan.summary import resolve_scan_run
from labelaudit.store import Run, open_db, repo

SMALL = 50  # px: the "small" regions


def tally_by_kind(src, findings_by_path: dict, fixed_dir: Path) -> dict[tuple[str, str], np.ndarray]:
    """{(kind, size class): [findings, pixels changed, fixed, made wrong]}, each image's three
    label maps read once."""
    records = {str(src.image_relpath(r)): r for r in src.records("train")}
    tally: dict[tuple[str, str], np.ndarray] = defaultdict(lambda: np.zeros(4, np.int64))
    for path, findings in findings_by_path.items():
        rec = records[path]
        given, fixed, clean = src.load_label(rec), src.load_label(rec, fixed_dir), src.load_clean_label(rec)
        for f in findings:
            changed = f.mask(given.shape) & (given != fixed)
            size = f"< {SMALL}" if f.area < SMALL else f">= {SMALL}"
            tally[(f.kind, size)] += [1, changed.sum(), (changed & (fixed == clean)).sum(),
                                      (changed & (given == clean)).sum()]
    return tally


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path)
    ap.add_argument("db", help="SQLAlchemy URL of the scan's store")
    ap.add_argument("fixed", type=Path, help="the exported label tree")
    ap.add_argument("--scan-run", type=int, help="the scan the export applied [default: the latest]")
    a = ap.parse_args()
    store = open_db(a.db, must_exist=True)
    try:
        run_id = resolve_scan_run(store, a.scan_run)
        with store.session() as s:
            findings = list(repo.iter_findings(s, s.get(Run, run_id)))
            paths = {im.id: im.image_relpath for im in repo.images_by_id(s, [f.image_id for f in findings])}
            by_path: dict[str, list] = defaultdict(list)
            for f in findings:
                by_path[paths[f.image_id]].append(f)
            tally = tally_by_kind(open_source("synthetic", a.data), by_path, a.fixed)
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
