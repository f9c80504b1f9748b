#!/usr/bin/env python
"""The CSR recipe's two open choices, measured side by side on the same data and seed.

    python benchmarks/bench_csr_variants.py --work /tmp/csr [--preset demo] [--n 400]

- teacher average (eq. 6): ``cycle_end`` (one snapshot per cycle end, the released code) vs
  ``epochs`` (the paper's eq. 6: the mean of the cycle's N per-epoch instances);
- CSR loss: ``add`` (distillation KL on top of the hard-label losses) vs ``replace`` (the released
  code: the soft target in the hard target's place).

For each of the four combinations: ``labelaudit train`` (same synthetic set, same seed), then
``labelaudit bench --teachers csr`` against the generator's known noise. Every step is skipped when
its output exists, so an interrupted benchmark continues. Writes ``<work>/csr_variants.md`` and
``<work>/csr_variants.json`` and prints the table.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = [(avg, loss) for loss in ("add", "replace") for avg in ("cycle_end", "epochs")]


def sh(*args: str) -> float:
    print("+", " ".join(args), flush=True)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "labelaudit", *args], check=True, cwd=ROOT)
    return time.perf_counter() - t0


def run_variant(work: Path, data: Path, preset: str, avg: str, loss: str) -> dict:
    name = f"{avg}-{loss}"
    run = work / name
    toml = work / f"{name}.toml"
    toml.write_text(f'[schedule]\nteacher_average = "{avg}"\ncsr_loss = "{loss}"\n')
    if not (run / "report.json").exists():
        sh("train", "--root", str(data), "--preset", preset, "--config", str(toml), "--run", str(run),
           *(["--resume"] if (run / "checkpoint.pt").exists() else []))
    bench = run / "bench"
    if not (bench / "bench.json").exists():
        sh("bench", "--run", str(run), "--teachers", "csr", "--out", str(bench))
    report = json.loads((run / "report.json").read_text())
    scores = json.loads((bench / "bench.json").read_text())["teachers"][0]["methods"]["ours"]
    return {"variant": name, "teacher_average": avg, "csr_loss": loss,
            "student_f1": report["student_val"].get("mean_f1"), "teacher_f1": report["teacher_val"].get("mean_f1"),
            "train_s": report["seconds"], **{k: v for k, v in scores.items() if not isinstance(v, dict)},
            "by_type": {k: v["region_recall"] for k, v in scores["by_type"].items()}}


def markdown(rows: list[dict]) -> str:
    lines = ["| teacher average | CSR loss | student val F1 | teacher val F1 | image AP | region P | region R | "
             "flip+drop R @ P>=0.8 | region R flip / drop / boundary / blob | pixel F1 | train s |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        types = " / ".join(f"{r['by_type'].get(k, float('nan')):.2f}" for k in ("flip", "drop", "boundary", "blob"))
        lines.append(
            f"| {r['teacher_average']} | {r['csr_loss']} | {r['student_f1']:.2f} | {r['teacher_f1']:.2f} | "
            f"{r['image_ap']:.3f} | {r['region_precision']:.3f} | {r['region_recall']:.3f} | "
            f"{r['part_recall_at_p80']:.3f} | {types} | "
            f"{r['pixel_f1']:.3f} | {r['train_s']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--preset", default="demo")
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    data = args.work / "synth"
    if not (data / "train").exists():
        sh("synth", "--out", str(data), "--n", str(args.n), "--seed", str(args.seed))
    rows = [run_variant(args.work, data, args.preset, avg, loss) for avg, loss in VARIANTS]
    table = markdown(rows)
    (args.work / "csr_variants.md").write_text(table + "\n")
    (args.work / "csr_variants.json").write_text(json.dumps(rows, indent=2))
    print(table)


if __name__ == "__main__":
    main()
