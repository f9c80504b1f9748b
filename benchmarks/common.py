"""Helpers shared by the benchmark scripts: run the CLI, train a run once (resumable)."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "labelaudit"]


def labelaudit(*args: str) -> float:
    """Run `labelaudit ARGS` from the project root (echoed first); its wall time in seconds."""
    print("+ labelaudit", " ".join(args), flush=True)
    t0 = time.perf_counter()
    subprocess.run([*CLI, *args], check=True, cwd=ROOT)
    return time.perf_counter() - t0


def trained(run: Path, *args: str, folds: int = 0) -> bool:
    """`labelaudit train --run RUN ARGS` unless the run finished; an interrupted one is resumed.

    True when it trained now (False: the cached run was reused)."""
    done = (run / f"fold-{folds - 1}" if folds else run) / "report.json"
    if done.exists():
        return False
    started = (run / "checkpoint.pt").exists() or (run / "folds.json").exists()
    labelaudit("train", "--run", str(run), *args, *(["--folds", str(folds)] if folds else []),
               *(["--resume"] if started else []))
    return True


def child_json(code: str, *argv: str) -> dict:
    """Run python `code` in a fresh process (project root as cwd); it prints one JSON line last;
    returned with the wall time added (peak memory: the code reports its own ru_maxrss)."""
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code, *argv], check=True, capture_output=True,
                         text=True, cwd=ROOT).stdout.strip().splitlines()[-1]
    res = json.loads(out)
    res["wall_s"] = time.perf_counter() - t0
    return res


def benched(run: Path, teacher: str, scorers: str = "calibrated") -> dict:
    """`labelaudit bench` of one teacher of `run` (cached in RUN/bench-<teacher>): its entry of
    bench.json (methods -> scores)."""
    out = run / f"bench-{teacher}"
    if not (out / "bench.json").exists():
        labelaudit("bench", "--run", str(run), "--teachers", teacher, "--scorers", scorers,
                   "--out", str(out))
    return json.loads((out / "bench.json").read_text())["teachers"][0]


def type_recalls(by_type: dict[str, float]) -> str:
    """Region recall per noise type, "flip / drop / boundary / blob"."""
    return " / ".join(f"{by_type.get(k, float('nan')):.2f}" for k in ("flip", "drop", "boundary", "blob"))


def table(header: list[str], rows: list[list[str]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])
