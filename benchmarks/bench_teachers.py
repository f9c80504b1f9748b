#!/usr/bin/env python
"""Which teacher stays a good auditor as the data grows and training runs to convergence?

    python benchmarks/bench_teachers.py --work /tmp/teachers [--sizes 400,1600,3200]
        [--strategies early,snapshots-early,converged,snapshots,plain,folds2,replace,folds4]
        [--passes 20000]

For each N (training images; synthetic faces at 64 px, 15 % of them with a wrong label of every
noise type, seed 21, val and test an eighth of N each) the same data is audited by:

  early      the in-sample CSR teacher of the demo network's schedule stopped early
             (3/8 of the converged epochs: today's default);
  converged  the in-sample CSR teacher trained to convergence: `--passes` image passes in all
             (20000: 50 epochs at N=400, 12 at 1600, at least 8), the schedule of
             benchmarks/converged.toml rescaled;
  snapshots  the same converged run's students kept along the way (every eighth of the run,
             `schedule.snapshots = 8`), their probabilities averaged: no extra training;
  snapshots-early  the early run's students the same way (every epoch when it has fewer than 8):
             the default teacher from 1000 training images on, stopped early;
  folds2/4   K-fold cross-fitting, each fold trained with the converged schedule;
  replace    the converged schedule with the reference's CSR loss composition (the soft target in
             the hard target's place, `schedule.csr_loss = "replace"`);
  plain      what a user would do instead: a plain network (no edge terms, no CSR) trained for the
             converged epochs, audited by cleanlab (and by our calibrated scorer, for reference).

Every audit is `labelaudit bench --scorers calibrated` against the generator's known noise.
Trainings and benches are cached in --work (an interrupted benchmark continues where it
stopped). Writes <work>/teachers.json and <work>/teachers.md and prints the table.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from common import benched, labelaudit, table, trained, type_recalls

SEED = 21
STRATEGIES = ("early", "snapshots-early", "converged", "snapshots", "plain", "folds2", "replace",
              "folds4")
TOML = {  # the settings each training adds to the demo preset at 64 px
    "early": "",
    "converged": 'csr_start = {csr}\ncycles = 5\ncycle_epochs = {cycle}\nbn_batches = 1000\n'
                 'snapshots = 8\n',
    "replace": 'csr_start = {csr}\ncycles = 5\ncycle_epochs = {cycle}\nbn_batches = 1000\n'
               'csr_loss = "replace"\n',
    "plain": 'cycles = 0\nedge_loss = false\n',
}
# strategy -> (training it reads, teacher, method of bench.json it reports)
AUDIT = {"early": ("early", "csr", "calibrated"),
         "snapshots-early": ("early", "snapshots", "calibrated"), "converged": ("converged", "csr", "calibrated"),
         "snapshots": ("converged", "snapshots", "calibrated"), "replace": ("replace", "csr", "calibrated"),
         "folds2": ("folds2", "folds", "calibrated"), "folds4": ("folds4", "folds", "calibrated"),
         "plain": ("plain", "final", "cleanlab"), "plain+ours": ("plain", "final", "calibrated")}


def epochs_for(n: int, passes: int) -> tuple[int, int]:
    """(early, converged) epochs for N training images."""
    converged = max(8, round(passes / n))
    return max(4, round(converged * 3 / 8)), converged


def dataset(work: Path, n: int) -> Path:
    data = work / f"n{n}" / "synth"
    if not (data / "train").exists():
        labelaudit("synth", "--out", str(data), "--n", str(n + n // 4), "--size", "64",
                   "--seed", str(SEED))
    return data


def train_strategy(work: Path, n: int, name: str, passes: int) -> Path:
    """The training behind a strategy (cached)."""
    early, converged = epochs_for(n, passes)
    data, run = dataset(work, n), work / f"n{n}" / name
    base = "converged" if name.startswith("folds") else name
    schedule = TOML[base].format(csr=converged - 5 * max(1, converged // 16),
                                 cycle=max(1, converged // 16))
    toml = work / f"n{n}" / f"{name}.toml"
    # the early run rescales the demo schedule (--epochs); the others set theirs in the TOML
    epochs = [] if name == "early" else [f"epochs = {converged}\n"]
    toml.write_text(f"[data]\nsize = 64\n[schedule]\n{''.join(epochs)}{schedule}")
    trained(run, "--root", str(data), "--preset", "demo", "--config", str(toml), "--seed", str(SEED),
            *(["--epochs", str(early)] if name == "early" else []),
            folds=int(name[5:]) if name.startswith("folds") else 0)
    return run


def train_seconds(run: Path) -> tuple[float, float, float]:
    """(wall seconds, DML-student val F1 three quarters through DML and at its end) of a run."""
    reports = sorted(run.glob("fold-*/report.json")) or [run / "report.json"]
    seconds = sum(json.loads(p.read_text())["seconds"] for p in reports)
    records = [json.loads(line) for line in (reports[0].parent / "metrics.jsonl").read_text().splitlines()]
    dml = [r for r in records if r["phase"] == "dml"] or records
    f1 = [r.get("val/student/mean_f1", float("nan")) for r in dml]
    return seconds, f1[max(0, 3 * len(f1) // 4 - 1)], f1[-1]


def row(work: Path, n: int, strategy: str, passes: int) -> dict:
    training, teacher, method = AUDIT[strategy]
    run = train_strategy(work, n, training, passes)
    t0 = time.perf_counter()
    bench = benched(run, teacher)
    seconds, f1_mid, f1_end = train_seconds(run)
    m = bench["methods"][method]
    return {"n": n, "strategy": strategy, "teacher": teacher, "method": method,
            "epochs": epochs_for(n, passes)[0 if training == "early" else 1], "train_s": seconds,
            "val_f1_dml_3/4": f1_mid, "val_f1_dml_end": f1_end, "audit_s": time.perf_counter() - t0,
            **{k: v for k, v in m.items() if not isinstance(v, (dict, list))},
            "by_type": {k: v["region_recall"] for k, v in m["by_type"].items()}}


def markdown(rows: list[dict]) -> str:
    return table(
        ["N", "strategy", "epochs", "DML val F1 at 3/4 / end", "image AP", "region P", "region R",
         "flip+drop R @ P>=0.8", "region R flip / drop / boundary / blob", "pixel F1", "train s"],
        [[str(r["n"]), r["strategy"], str(r["epochs"]),
          f"{r['val_f1_dml_3/4']:.1f} / {r['val_f1_dml_end']:.1f}", f"{r['image_ap']:.3f}",
          f"{r['region_precision']:.3f}", f"{r['region_recall']:.3f}", f"{r['part_recall_at_p80']:.3f}",
          type_recalls(r["by_type"]), f"{r['pixel_f1']:.3f}", f"{r['train_s']:.0f}"] for r in rows])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--sizes", default="400,1600,3200")
    ap.add_argument("--strategies", default=",".join(STRATEGIES))
    ap.add_argument("--passes", type=int, default=20000)
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    sizes = [int(s) for s in args.sizes.split(",")]
    wanted = [s for s in args.strategies.split(",") if s]
    unknown = set(wanted) - set(AUDIT)
    if unknown:
        raise SystemExit(f"unknown strategies {sorted(unknown)}; choose from {', '.join(AUDIT)}")
    rows = []
    for strategy in wanted:  # strategy-major: the cheap core comparisons reach every N first
        for n in sizes:
            rows.append(row(args.work, n, strategy, args.passes))
            rows.sort(key=lambda r: (r["n"], list(AUDIT).index(r["strategy"])))
            (args.work / "teachers.json").write_text(json.dumps(rows, indent=2))
            (args.work / "teachers.md").write_text(markdown(rows) + "\n")
    print(markdown(rows))


if __name__ == "__main__":
    main()
