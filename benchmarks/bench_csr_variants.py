#!/usr/bin/env python
"""The CSR recipe's two open choices, measured side by side on the same data and seed.

    python benchmarks/bench_csr_variants.py --work /tmp/csr [--preset demo] [--n 400]

- teacher average (eq. 6): ``cycle_end`` (one snapshot per cycle end, the released code) vs
  ``epochs`` (the paper's eq. 6: the mean of the cycle's N per-epoch instances);
- CSR loss: ``add`` (distillation KL on top of the hard-label losses) vs ``replace`` (the released
  code: the soft target in the hard target's place).

For each of the four combinations: ``labelaudit train`` (same synthetic set, same seed), then
``labelaudit bench --teachers csr --scorers calibrated`` against the generator's known noise. Every step is skipped when
its output exists, so an interrupted benchmark continues. Writes ``<work>/csr_variants.md`` and
``<work>/csr_variants.json`` and prints the table.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from common import benched, labelaudit, table, trained, type_recalls

VARIANTS = [(avg, loss) for loss in ("add", "replace") for avg in ("cycle_end", "epochs")]


def run_variant(work: Path, data: Path, preset: str, avg: str, loss: str) -> dict:
    name = f"{avg}-{loss}"
    run = work / name
    toml = work / f"{name}.toml"
    toml.write_text(f'[schedule]\nteacher_average = "{avg}"\ncsr_loss = "{loss}"\n')
    trained(run, "--root", str(data), "--preset", preset, "--config", str(toml))
    report = json.loads((run / "report.json").read_text())
    scores = benched(run, "csr")["methods"]["calibrated"]
    return {"variant": name, "teacher_average": avg, "csr_loss": loss,
            "student_f1": report["student_val"].get("mean_f1"), "teacher_f1": report["teacher_val"].get("mean_f1"),
            "train_s": report["seconds"], **{k: v for k, v in scores.items() if not isinstance(v, dict)},
            "by_type": {k: v["region_recall"] for k, v in scores["by_type"].items()}}


def markdown(rows: list[dict]) -> str:
    return table(
        ["teacher average", "CSR loss", "student val F1", "teacher val F1", "image AP", "region P",
         "region R", "flip+drop R @ P>=0.8", "region R flip / drop / boundary / blob", "pixel F1",
         "train s"],
        [[r["teacher_average"], r["csr_loss"], f"{r['student_f1']:.2f}", f"{r['teacher_f1']:.2f}",
          f"{r['image_ap']:.3f}", f"{r['region_precision']:.3f}", f"{r['region_recall']:.3f}",
          f"{r['part_recall_at_p80']:.3f}", type_recalls(r["by_type"]), f"{r['pixel_f1']:.3f}",
          f"{r['train_s']:.0f}"] for r in rows])


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
        labelaudit("synth", "--out", str(data), "--n", str(args.n), "--seed", str(args.seed))
    rows = [run_variant(args.work, data, args.preset, avg, loss) for avg, loss in VARIANTS]
    table = markdown(rows)
    (args.work / "csr_variants.md").write_text(table + "\n")
    (args.work / "csr_variants.json").write_text(json.dumps(rows, indent=2))
    print(table)


if __name__ == "__main__":
    main()
