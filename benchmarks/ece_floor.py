#!/usr/bin/env python
"""How small an ECE can a bench show? The sampling floor of past benches' calibrated scores.

    python benchmarks/ece_floor.py benchmarks/results/stop28/*.json

`labelaudit bench` reports it since stop 29 ("ECE if calibrated": outcomes drawn as
Bernoulli(p) from the scores themselves, `scan.calibrator.sampling_ece`). For a bench.json
written before that, the raw scores are gone; this script puts each candidate at its
reliability bin's mean probability (the bins are 0.1 wide, so the floor moves by well under
0.005) and prints the measured ECE beside the floor's mean and 95th percentile. `--pool`
adds one row for all the given benches' candidates together (ECE needs only each bin's sums,
so the pooled measured ECE is exact).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from labelaudit.scan.calibrator import sampling_ece


def scores_from_bins(reliability: dict[str, list]) -> np.ndarray:
    """Every candidate at its bin's mean probability."""
    return np.concatenate([np.full(int(n), p) for n, p in
                           zip(reliability["count"], reliability["mean_p"]) if n] or [np.zeros(0)])


def pooled(reliabilities: list[dict[str, list]]) -> tuple[np.ndarray, float]:
    """All candidates' bin scores together and their exact pooled ECE."""
    n = np.sum([np.asarray(r["count"], np.float64) for r in reliabilities], axis=0)
    sums = [np.sum([np.nan_to_num(np.asarray(r[k])) * np.asarray(r["count"]) for r in reliabilities],
                   axis=0) for k in ("mean_p", "rate")]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p, rate = sums[0] / n, sums[1] / n
    ece = float(np.nansum(n * np.abs(mean_p - rate)) / n.sum())
    return scores_from_bins({"count": n.tolist(), "mean_p": mean_p.tolist()}), ece


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bench_json", nargs="+", type=Path)
    ap.add_argument("--method", default="calibrated")
    ap.add_argument("--pool", action="store_true", help="add a row for all benches together")
    a = ap.parse_args()
    seen: list[dict[str, list]] = []
    print("| bench | teacher | candidates scored | measured ECE | ECE if calibrated: mean | 95 % |")
    print("|---|---|---|---|---|---|")
    for path in a.bench_json:
        for t in json.loads(path.read_text())["teachers"]:
            m = t["methods"].get(a.method)
            if not m or not m.get("reliability"):
                continue
            seen.append(m["reliability"])
            row(str(path), t["teacher"], scores_from_bins(m["reliability"]), m["ece"])
    if a.pool and len(seen) > 1:
        row("all of them, pooled", "", *pooled(seen))


def row(name: str, teacher: str, p: np.ndarray, ece: float) -> None:
    mean, q95 = sampling_ece(p)
    print(f"| {name} | {teacher} | {p.size} | {ece:.3f} | {mean:.3f} | {q95:.3f} |")


if __name__ == "__main__":
    main()
