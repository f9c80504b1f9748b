#!/usr/bin/env python
"""Would moving p_error to the split's own share of errors keep the list's stated precision?

    python benchmarks/prior_shift.py --run R --root S [--run R2 --root S2 ...]

Reads a finished `labelaudit bench` run (its store's first calibrated scan, every candidate at
raw p_error >= 0.1; a scan that moved its scores is moved back) and the set's known noise, and
recomputes, without a forward:

- at the split's own share of noisy images and as if 10 % were noisy (each clean image counted
  `bench.run.clean_weight` times, as the bench's rarer reading does),
- the measured share of errors among the stored candidates, the mean p_error, the calibration's
  share, and two estimates of the split's share: EM (Saerens et al. 2002; `scan --prior-shift`
  until stop 32, kept here only to compare) and the mean p_error (`calibrator.split_share`, one
  EM step; `scan`'s default since stop 32),
- ECE and the list cut at 0.8 (listed, expected / measured precision) before and after each shift.
"""
from __future__ import annotations

import argparse
import json
import sqlite3
from pathlib import Path

import numpy as np

from labelaudit.bench.run import RARER_SHARE, _from_store, _Truth, clean_weight
from labelaudit.data import IGNORE_INDEX
from labelaudit.data.formats import open_source
from labelaudit.scan.calibrator import (adjust, bin_centres, expected_calibration_error,
                                        expected_precision_cutoff, histogram, split_share)


def em_share(counts: np.ndarray, prior_from: float, iters: int = 200) -> float:
    """Saerens et al.'s EM over a histogram of raw probabilities (`calibrator.histogram`)."""
    p, prior = bin_centres(), prior_from
    for _ in range(iters):
        new = float(np.clip((counts * adjust(p, prior_from, prior)).sum() / counts.sum(), 1e-6, 1 - 1e-6))
        if abs(new - prior) < 1e-7:
            break
        prior = new
    return prior


def _calibrated_scan(db: Path) -> tuple[int, dict]:
    """The id and the split estimate of the store's first calibrated bench scan."""
    with sqlite3.connect(db) as c:
        rows = c.execute("select id, config, progress from runs where kind = 'scan' order by id")
        for run_id, config, progress in rows:
            if json.loads(config).get("scorer") == "calibrated":
                return int(run_id), json.loads(progress)["estimate"]
    raise SystemExit(f"{db}: no calibrated scan (run `labelaudit bench --scorers calibrated` first)")


def outcomes(run: Path, root: Path) -> dict[str, np.ndarray | float]:
    """Per stored candidate: p_error, whether it matches a true error (IoU >= 0.3), its image's
    index; per image: noisy; and the calibration's share of errors among stored candidates."""
    db = run / "labelaudit.db"
    scan_id, estimate = _calibrated_scan(db)
    kind = json.loads((run / "report.json").read_text()).get("dataset") or _train_format(db)
    source = open_source(kind, root)
    records = source.records_by_relpath()
    with sqlite3.connect(db) as c:
        images = c.execute("select i.id, i.image_relpath from images i join image_scores s "
                           "on s.image_id = i.id and s.run_id = ?", (scan_id,)).fetchall()
    truth, seen = _Truth(), {}
    for image_id, relpath in images:
        rec = records[relpath]
        label = source.load_label(rec)
        seen[image_id] = (truth.type_map(rec, label), label != IGNORE_INDEX,
                          np.zeros(label.shape, np.float32))
    acc = _from_store(f"sqlite:///{db}", scan_id, seen, listed_only=True)
    p, hit = acc.regions.outcomes()
    (prior,), (split,) = estimate["prior_calibration"], estimate["prior_split"]
    return {"p": adjust(np.clip(p, 0, 1), split, prior), "hit": hit.astype(np.float64),
            "noisy": acc.noisy, "image": np.asarray(acc.regions.ranked_image, np.int64), "prior": prior}


def _train_format(db: Path) -> str:
    with sqlite3.connect(db) as c:
        config = c.execute("select config from runs where kind = 'train' order by id").fetchone()
    return json.loads(config[0])["data"]["dataset"]


def list_cell(p: np.ndarray, hit: np.ndarray) -> str:
    """The list cut at a stated 0.8: "listed at expected / measured precision", or "0"."""
    keep = p >= expected_precision_cutoff(p, 0.8)
    if not keep.any():
        return "0"
    return f"{int(keep.sum())} at {p[keep].mean():.3f} / {hit[keep].mean():.3f}"


def readings(o: dict):
    """Yields (reading, times each image is counted, p, hit) at the split's own share of noisy
    images and as if RARER_SHARE were noisy (each clean image counted `clean_weight` times)."""
    for reading, k in (("own share", 1), (f"as if {RARER_SHARE:.0%} noisy", clean_weight(o["noisy"], RARER_SHARE))):
        counts = np.where(o["noisy"], 1, k)
        w = counts[o["image"]]
        yield reading, counts, np.repeat(o["p"], w), np.repeat(o["hit"], w)


def rows(name: str, o: dict) -> list[str]:
    out = []
    for reading, _, p, hit in readings(o):
        em = em_share(histogram(p), o["prior"])
        cells = [name, reading, f"{hit.mean():.3f}", f"{p.mean():.3f}", f"{o['prior']:.3f}"]
        for to in (None, em, split_share(histogram(p), o["prior"])):
            q = p if to is None else adjust(p, o["prior"], to)
            cells += ([] if to is None else [f"{to:.3f}"]) + [f"{expected_calibration_error(q, hit):.3f}", list_cell(q, hit)]
        out.append("| " + " | ".join(cells) + " |")
    return out


def benched_runs(description: str) -> list[tuple[Path, Path]]:
    """(run folder, dataset root) pairs from the command line's --run R --root S ..."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--run", action="append", required=True, type=Path, help="a benched run folder")
    ap.add_argument("--root", action="append", required=True, type=Path, help="its dataset root")
    a = ap.parse_args()
    if len(a.run) != len(a.root):
        raise SystemExit("give one --root per --run")
    return list(zip(a.run, a.root))


def main() -> None:
    runs = benched_runs(__doc__.split("\n\n")[0])
    print("| run | reading | errors among stored | mean p_error | calibration's share | ECE | list at 0.8 "
          "| EM share | ECE | list | mean-p share | ECE | list |")
    print("|" + "---|" * 13)
    for run, root in runs:
        print("\n".join(rows(run.name, outcomes(run, root))), flush=True)


if __name__ == "__main__":
    main()
