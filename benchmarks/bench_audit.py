#!/usr/bin/env python
"""Detection quality, speed and memory of the audit: synth -> train (cpu) -> scan -> bench.

    python benchmarks/bench_audit.py --work /tmp/bench            # everything
    python benchmarks/bench_audit.py --work /tmp/bench --skip-train  # reuse the trained run

Steps (each skipped when its output exists, so an interrupted benchmark continues):
1. `labelaudit synth` (n images, 15 % of the training images corrupted, all noise types);
2. `labelaudit train --preset cpu`;
3. `labelaudit bench` for the CSR teacher and the DML student (and folds when trained):
   ours vs cleanlab on the same probabilities;
4. peak memory (ru_maxrss of a fresh process) and wall time: our scan on N and 4N images vs
   cleanlab's documented API (`get_label_quality_scores` + `find_label_issues(n_jobs=1)`) given
   the same N / 4N probability arrays in memory, as that API needs them.
Prints markdown tables and writes `<work>/bench_audit.json`.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from common import ROOT, child_json

PY = sys.executable


def sh(*args: str) -> None:
    print("+", " ".join(args), flush=True)
    subprocess.run(args, check=True, cwd=ROOT)


SCAN_CODE = r"""
import json, resource, sys
from pathlib import Path
from labelaudit.scan.run import ScanOptions, run_scan
run, db, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
r = run_scan(ScanOptions(run_dir=Path(run), db_url=db, limit=limit, resume=False, progress=False,
                         teacher="csr"))
print(json.dumps({"n": r.n_scored_now, "seconds": r.seconds, "forward_s": r.forward_seconds,
                  "own_s": r.own_seconds, "load_s": r.load_seconds,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

CLEANLAB_CODE = r"""
import json, resource, sys, time
from pathlib import Path
import numpy as np, torch
from torch.utils.data import DataLoader
from labelaudit.scan.run import ScanDataset, scan_collate, teacher_predictor
from labelaudit.teachers import load_teachers
run, limit = sys.argv[1], int(sys.argv[2])
ts = load_teachers(run, "csr")
src = ts.data.open_source()
ds = ScanDataset(src, "train", size=ts.size, augment=False)
ds.records = ds.records[:limit]
predict = teacher_predictor(ts, src.classes)
probs, labels = [], []
t0 = time.perf_counter()
for b in DataLoader(ds, batch_size=8, collate_fn=scan_collate):
    probs += predict(0, b)
    labels += b["label_orig"]
t_fwd = time.perf_counter() - t0
P, L = np.stack(probs), np.stack(labels).astype(np.int64)
from cleanlab.segmentation.rank import get_label_quality_scores
from cleanlab.segmentation.filter import find_label_issues
t1 = time.perf_counter()
get_label_quality_scores(L, P, method="softmin", verbose=False)
find_label_issues(L, P, n_jobs=1, verbose=False)
print(json.dumps({"n": len(P), "forward_s": t_fwd, "cleanlab_s": time.perf_counter() - t1,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("bench-work"))
    ap.add_argument("--n", type=int, default=400, help="generated images (80 %% train)")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--teachers", default="csr,dml")
    ap.add_argument("--mem-n", type=int, default=60, help="N for the N vs 4N memory rows")
    ap.add_argument("--run", type=Path, help="training run directory [default: WORK/run]")
    ap.add_argument("--skip-train", action="store_true")
    a = ap.parse_args()
    work = a.work.resolve()
    data, run = work / "synth", (a.run or work / "run").resolve()
    work.mkdir(parents=True, exist_ok=True)
    env_cli = [PY, "-m", "labelaudit"]
    if not (data / "synthetic.json").exists():
        sh(*env_cli, "synth", "--out", str(data), "--n", str(a.n), "--size", str(a.size), "--seed", "1")
    if not a.skip_train and not (run / "report.json").exists():
        resume = ["--resume"] if (run / "checkpoint.pt").exists() else []
        sh(*env_cli, "train", "--root", str(data), "--preset", a.preset, "--run", str(run), *resume)
    teachers = a.teachers + (",folds" if (run / "folds.json").exists() else "")
    db = f"sqlite:///{work / 'bench.db'}"
    sh(*env_cli, "bench", "--run", str(run), "--teachers", teachers, "--db", db, "--out", str(work))
    quality = json.loads((work / "bench.json").read_text())

    mem = []
    for n in (a.mem_n, 4 * a.mem_n):
        ours = child_json(SCAN_CODE, str(run), f"sqlite:///{work / f'mem-{n}.db'}", str(n))
        theirs = child_json(CLEANLAB_CODE, str(run), str(n))
        mem.append({"n": n, "ours": ours, "cleanlab": theirs})
        for f in work.glob(f"mem-{n}.db*"):
            os.remove(f)
    rows = ["| images | our scan peak RSS MB | our scan s | scan overhead | cleanlab API peak RSS MB | "
            "cleanlab s (excl. forward) |", "|---|---|---|---|---|---|"]
    for m in mem:
        o, c = m["ours"], m["cleanlab"]
        rows.append(f"| {m['n']} | {o['peak_rss_mb']:.0f} | {o['seconds']:.1f} | "
                    f"{100 * o['own_s'] / max(o['forward_s'], 1e-9):.0f}% | {c['peak_rss_mb']:.0f} | "
                    f"{c['cleanlab_s']:.1f} |")
    g_ours = mem[1]["ours"]["peak_rss_mb"] / mem[0]["ours"]["peak_rss_mb"] - 1
    g_cl = mem[1]["cleanlab"]["peak_rss_mb"] / mem[0]["cleanlab"]["peak_rss_mb"] - 1
    rows.append(f"\npeak memory growth N -> 4N: ours {100 * g_ours:+.1f}%, cleanlab API {100 * g_cl:+.1f}%")
    print((work / "bench.md").read_text())
    print("\n".join(rows))
    (work / "bench_audit.json").write_text(json.dumps({"quality": quality, "memory": mem}, indent=1))
    (work / "bench_memory.md").write_text("\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
