"""What a training run writes beside its checkpoint: the metrics log, the curves, the report."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from labelaudit.files import atomic_file


def append_metrics(run_dir: Path, record: dict[str, Any]) -> None:
    """One JSON line per epoch in `metrics.jsonl`."""
    with open(run_dir / "metrics.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")


def write_report(run_dir: Path, report: dict[str, Any]) -> None:
    with atomic_file(run_dir / "report.json", "w") as f:
        f.write(json.dumps(report, indent=2))


def plot_curves(history: list[dict[str, Any]], path: Path) -> None:
    """Loss and validation mean F1 per epoch, written next to the metrics log."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.2))
    a.plot(epochs, [r.get("total", float("nan")) for r in history], label="train loss")
    a.set_xlabel("epoch"); a.set_yscale("log"); a.legend()
    b.plot(epochs, [r.get("val/student/mean_f1", float("nan")) for r in history], "o-", label="student")
    te = [(r["epoch"], r["val/teacher/mean_f1"]) for r in history if "val/teacher/mean_f1" in r]
    if te:
        b.plot(*zip(*te), "s-", label="CSR teacher")
    b.set_xlabel("epoch"); b.set_ylabel("val mean F1 (%)"); b.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def last_scores(history: list[dict[str, Any]], who: str, phase: str | None = None) -> dict[str, float]:
    """The latest validation scores of `who` ("student"/"teacher"), optionally in one phase."""
    prefix = f"val/{who}/"
    rows = [r for r in history if prefix + "mean_f1" in r and (phase is None or r["phase"] == phase)]
    return {k[len(prefix):]: v for k, v in rows[-1].items() if k.startswith(prefix)} if rows else {}
