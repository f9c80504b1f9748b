#!/usr/bin/env python
"""The scan's own work (everything but the teacher forward), split by part.

    python benchmarks/bench_scan_own.py --run RUN [--reps 3]

One real scan of the run's training split (the forward timed, its probabilities kept in
memory), then `--reps` scans that replay those probabilities instead of the network, each into
a fresh SQLite store beside nothing else, so that only the scan's own work is left. Per image:
the own time (`ScanResult.own_seconds`), and inside it the candidates and their features, the
calibrated model, the rest of the scoring, and the writer (maps and the store's batch). The
parts are timed by wrapping the functions named below; the wrappers cost about a microsecond a
call. The scans keep their maps in their temporary stores. Run it with nothing else on the
machine: its numbers vary with the host's speed.
"""
from __future__ import annotations

import argparse
import functools
import tempfile
import time
from collections import defaultdict
from pathlib import Path

PARTS = defaultdict(float)  # part -> seconds in the current replay
COLUMNS = ("candidates", "model", "scoring (all)", "writer")


def _time(owner, name: str, key: str) -> None:
    """Replace owner.name with a wrapper adding its wall time to PARTS[key]."""
    f = getattr(owner, name)

    @functools.wraps(f)
    def timed(*a, **k):
        t0 = time.perf_counter()
        try:
            return f(*a, **k)
        finally:
            PARTS[key] += time.perf_counter() - t0
    setattr(owner, name, timed)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()

    import labelaudit.scan.calibrated as calibrated
    import labelaudit.scan.run as scan
    from labelaudit.scan.calibrator import Calibrator
    from labelaudit.scan.forward import teacher_predictor

    _time(calibrated, "find_candidates", "candidates")
    _time(Calibrator, "predict", "model")
    _time(scan, "score_batch", "scoring (all)")
    _time(scan.ScanWriter, "write", "writer")

    def options() -> scan.ScanOptions:
        return scan.ScanOptions(run_dir=a.run, db_url=f"sqlite:///{tempfile.mkdtemp()}/scan.db",
                                progress=False, purpose="bench")

    opts = options()
    teachers = opts.teachers()
    network = teacher_predictor(teachers, opts.source(teachers).classes)
    cache: dict[str, object] = {}

    def recording(k, batch):
        out = network(k, batch)
        cache.update(zip(batch["key"], out))
        return out

    first = scan.run_scan(opts, predict=recording)
    n = first.n_scored_now
    print(f"{n} images; forward {first.forward_seconds:.2f} s ({1e3 * first.forward_seconds / n:.1f} "
          f"ms/img), own {first.own_seconds:.2f} s: {100 * first.overhead:.0f} % of the forward")
    print("| replay | own ms/img | " + " | ".join(COLUMNS) + " |")
    print("|---|---|---|---|---|---|")
    for i in range(a.reps):
        PARTS.clear()
        r = scan.run_scan(options(), predict=lambda k, batch: [cache[key] for key in batch["key"]])
        per = {k: 1e3 * v / r.n_scored_now for k, v in PARTS.items()}
        print(f"| {i} | {1e3 * r.own_seconds / r.n_scored_now:.2f} | " + " | ".join(
            f"{per.get(k, 0.0):.2f}" for k in COLUMNS) + " |")


if __name__ == "__main__":
    main()
