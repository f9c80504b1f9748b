#!/usr/bin/env python
"""The loop's payoff: how much of the F1 lost to label noise does scan -> export -> retrain win back?

    python benchmarks/bench_loop.py --work /tmp/bench --seeds 0,1      # cpu preset, ~2.5 h a seed

The README's loop numbers were measured with the `cpu` preset at 128 px (before stop 31):
`--config benchmarks/size128.toml` trains that one again (~45 min a seed here).

Per training seed, three trainings on the same synthetic set (`labelaudit synth --seed 1`,
15 % of the training images noisy, or `--data`), each scored on the CLEAN test labels (the generator puts
noise in training labels only):
  floor    trained on the noisy labels;
  ceiling  trained on the clean labels (labels_clean/ as a corrected label tree);
  loop     trained on the export of the floor run's calibrated scan: every finding listed at
           `--precision` (default 0.8) accepted, as a reviewer who trusts the list would.
Share won back = (loop - floor) / (ceiling - floor), per seed. Every step is skipped when its
output exists, so an interrupted benchmark continues. Prints a markdown table and writes
`<work>/bench_loop.json`.
"""
from __future__ import annotations

import argparse
import json
import statistics
from dataclasses import asdict
from pathlib import Path

from common import labelaudit, trained

from labelaudit.bench.labels import clean_label_tree, label_noise

def train(data: Path, run: Path, preset: str, seed: int, labels: Path | None = None,
          config: Path | None = None) -> None:
    trained(run, "--root", str(data), "--preset", preset, "--seed", str(seed),
            *(["--labels", str(labels)] if labels else []),
            *(["--config", str(config)] if config else []))


def test_f1(run: Path, data: Path) -> float:
    """Mean F1 of the run's CSR teacher on the test split's (clean) labels of `data`."""
    import torch

    from labelaudit.data import FaceParsingDataset
    from labelaudit.teachers import load_teachers
    from labelaudit.train.evaluate import evaluate

    ts = load_teachers(run, "csr", root=data)  # the run may record a relative or an older root
    test = FaceParsingDataset(ts.data.open_source(), "test", size=ts.size, augment=False,
                              channel_order=ts.channel_order)
    return float(evaluate(ts.teachers[0].model, test, torch.device("cpu")).as_dict()["mean_f1"])


def fixed_labels(run: Path, data: Path, out: Path, precision: float, views: list[str]) -> dict:
    """Scan the floor run (calibrated, --precision, `views`: scan's options for them), export
    every listed finding."""
    db = f"sqlite:///{run / 'loop.db'}"
    if not (out / "manifest.json").exists():
        labelaudit("scan", "--run", str(run), "--root", str(data), "--db", db, "--precision",
                   str(precision), *views, "--top", "0")
        labelaudit("export", "--run", str(run), "--db", db, "--out", str(out), "--policy", "threshold:0",
                   "--overwrite")
    manifest = json.loads((out / "manifest.json").read_text())
    return {k: manifest.get(k) for k in ("n_images_changed", "n_findings_applied", "n_pixels_changed")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("bench-work"))
    ap.add_argument("--seeds", default="0", help="training seeds (comma list)")
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--config", type=Path, help="a TOML file over the preset (train --config)")
    ap.add_argument("--precision", type=float, default=0.8)
    ap.add_argument("--scales", help="the scan's test-time scales (scan --scales; default: scan's)")
    ap.add_argument("--tta", action="store_true", help="the scan with mirror views too (scan --tta)")
    ap.add_argument("--floor-run", type=Path, help="an existing noisy-label run for the first seed")
    ap.add_argument("--data", type=Path, help="an existing synthetic set (default: generate seed 1 in WORK)")
    ap.add_argument("--baselines-only", action="store_true",
                    help="train the floor and ceiling of every seed, then stop (no scan)")
    a = ap.parse_args()
    work = a.work.resolve()
    data = a.data.resolve() if a.data else work / "synth"
    if not (data / "synthetic.json").exists():
        labelaudit("synth", "--out", str(data), "--n", "400", "--size", "128", "--seed", "1")
    clean = clean_label_tree(data, work / "loop" / "clean-labels")  # idempotent, 400 small files
    rows: list[dict] = []
    for i, seed in enumerate(int(s) for s in a.seeds.split(",")):
        base = work / "loop" / f"seed-{seed}"
        floor = a.floor_run.resolve() if (i == 0 and a.floor_run) else base / "noisy"
        train(data, floor, a.preset, seed, config=a.config)
        train(data, base / "clean", a.preset, seed, clean, a.config)
        if a.baselines_only:
            continue
        views = (["--scales", a.scales] if a.scales else []) + (["--tta"] if a.tta else [])
        export = fixed_labels(floor, data, base / "fixed-labels", a.precision, views)
        noise = asdict(label_noise(data, base / "fixed-labels"))
        train(data, base / "loop", a.preset, seed, base / "fixed-labels", a.config)
        f = {k: test_f1(r, data) for k, r in (("floor", floor), ("loop", base / "loop"), ("ceiling", base / "clean"))}
        lost = f["ceiling"] - f["floor"]
        rows.append({"seed": seed, **f, "won_back": (f["loop"] - f["floor"]) / lost if lost > 0 else float("nan"),
                     "export": export, "label_noise": noise})
        print(json.dumps(rows[-1]), flush=True)
    if a.baselines_only:
        return
    (work / "bench_loop.json").write_text(json.dumps(rows, indent=1) + "\n")
    print("| seed | test F1 noisy (floor) | after the loop | clean (ceiling) | share won back | "
          "wrong px before -> after (fixed / broken) | findings applied |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        n = r["label_noise"]
        print(f"| {r['seed']} | {r['floor']:.2f} | {r['loop']:.2f} | {r['ceiling']:.2f} | "
              f"{r['won_back']:.2f} | {n['before']} -> {n['after']} ({n['fixed']} / {n['broken']}) | "
              f"{r['export']['n_findings_applied']} |")
    shares = [r["won_back"] for r in rows]
    if len(shares) > 1:
        print(f"share won back over {len(shares)} seeds: mean {statistics.mean(shares):.3f}, "
              f"sd {statistics.stdev(shares):.3f}, range {min(shares):.3f}-{max(shares):.3f}")


if __name__ == "__main__":
    main()
