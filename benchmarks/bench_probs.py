#!/usr/bin/env python
"""`scan --probs` next to the network scan: throughput and peak memory at growing N.

    python benchmarks/bench_probs.py --work W --runs 400=R400,1600=R1600,3200=R3200

Each R is a `labelaudit train` run (e.g. the `early` runs of bench_teachers.py, whose N is its
number of training images). For each: `labelaudit predict --run R` writes its probability folder
(cached in W), then two fresh processes scan the training split, one with `--probs W/nN`, one
with the run's network, each into its own new store; a process reports its wall time, the
calibration's share and its peak resident memory (ru_maxrss). Writes W/probs.json and W/probs.md.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from common import child_json, labelaudit

SCAN = r"""
import json, resource, sys
from pathlib import Path
from labelaudit.scan import ScanOptions, run_scan
run, db, probs, data = sys.argv[1:5]
extra = {"probs": (Path(probs),), "dataset": "synthetic", "root": Path(data)} if probs != "-" else {}
r = run_scan(ScanOptions(run_dir=Path(run), db_url=db, progress=False, **extra))
print(json.dumps({"n": r.n_scored_now, "seconds": r.seconds, "calibration_s": r.calibration_seconds,
                  "forward_s": r.forward_seconds, "own_s": r.own_seconds,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def measure(work: Path, n: int, run: Path) -> list[dict]:
    maps = work / f"n{n}"
    if not (maps / "classes.json").exists():
        labelaudit("predict", "--run", str(run), "--out", str(maps))
    data = _root(run)
    rows = []
    for teacher, probs, where in (("probs", str(maps), work / f"audit-probs-{n}"),
                                  ("network", "-", run)):
        db = work / f"{teacher}-{n}.db"
        db.unlink(missing_ok=True)
        r = child_json(SCAN, str(where), f"sqlite:///{db}", probs, data)
        rows.append({"n": n, "teacher": teacher, **r,
                     "images_per_s": r["n"] / max(r["seconds"] - r["calibration_s"], 1e-9)})
    return rows


def _root(run: Path) -> str:
    import tomllib

    return tomllib.loads((run / "config.toml").read_text())["data"]["root"]


def markdown(rows: list[dict]) -> str:
    lines = ["| N | teacher | images | scan s (calibration s) | images/s without calibration | peak RSS MB |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['n']} | {r['teacher']} | {r['n']} | {r['seconds']:.1f} ({r['calibration_s']:.1f}) | "
              f"{r['images_per_s']:.1f} | {r['peak_rss_mb']:.0f} |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--runs", required=True, help="N=RUN,N=RUN,...")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    rows = []
    for item in args.runs.split(","):
        n, run = item.split("=")
        rows += measure(args.work, int(n), Path(run))
    (args.work / "probs.json").write_text(json.dumps(rows, indent=2))
    (args.work / "probs.md").write_text(markdown(rows) + "\n")
    print(markdown(rows))


if __name__ == "__main__":
    main()
