#!/usr/bin/env python
"""The findings store at scale: N synthetic images with about 3 findings each, on SQLite and on a
throwaway PostgreSQL server (tests/pgserver.py), written the way the scan writes them.

    python benchmarks/bench_store.py --n 100000          # both backends
    python benchmarks/bench_store.py --n 10000 --backends sqlite
    python benchmarks/bench_store.py --n 100000 --files --backends postgres   # one backend a process

Reports the insert rate (images/s through `repo.write_scan_batch`, 64 images per transaction as
a scan batch), the database size per image, and the time of what review / export / report ask:
the 100 worst images, one confusion pair's findings, a run's decisions (after deciding on 1 %
of the findings), the findings above a score streamed (the export's policy), the confusion-pair
table. With `--files` it also writes a LaPa tree of N tiny 512 px images and labels (the same
bytes each) and times what needs files: building the FiftyOne review dataset of the 5,000 worst
images (a throwaway FiftyOne database) and an export in which 5 % of the images change (their
non-boundary findings accepted). No network. Prints a markdown table.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def _rows(rng: np.random.Generator, ids: list[int]):
    from labelaudit.store import FindingRecord, ImageResult

    out = []
    for image_id in ids:
        finds = []
        for _ in range(int(rng.poisson(3))):
            h, w = (int(v) for v in rng.integers(3, 24, 2))
            mask = rng.random((h, w)) < 0.7
            finds.append(FindingRecord(int(rng.integers(11)), int(rng.integers(11)),
                                       ("flip", "missing", "spurious", "boundary")[int(rng.integers(4))],
                                       float(rng.random()), int(mask.sum()),
                                       (int(rng.integers(0, 480)), int(rng.integers(0, 480)), w, h), mask))
        out.append(ImageResult(image_id, float(rng.random()), 100, finds, 0.9))
    return out


def _timed(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


SIDE = 512  # the label frame: every finding's bbox (up to 480 + 24) fits


def write_tree(root: Path, n: int) -> Path:
    """A LaPa layout with N training images (and one val / test image), the same bytes each."""
    import cv2

    if (root / "done").exists():
        return root
    img = cv2.imencode(".jpg", np.full((SIDE, SIDE, 3), 128, np.uint8))[1].tobytes()
    lab = cv2.imencode(".png", np.zeros((SIDE, SIDE), np.uint8))[1].tobytes()
    for split, count in (("train", n), ("val", 1), ("test", 1)):
        (root / split / "images").mkdir(parents=True, exist_ok=True)
        (root / split / "labels").mkdir(parents=True, exist_ok=True)
        for i in range(count):
            (root / split / "images" / f"{i:07d}.jpg").write_bytes(img)
            (root / split / "labels" / f"{i:07d}.png").write_bytes(lab)
    (root / "done").touch()
    return root


def accept_all(store, finding_ids) -> None:
    """Set-up, not timed: an accept on each finding, in one transaction (`repo.record_decision`
    commits one decision at a time, as a reviewer makes them)."""
    from sqlalchemy import select

    from labelaudit.store import Decision, Finding

    ids = list(finding_ids)
    with store.session() as s:
        for chunk in (ids[k:k + 500] for k in range(0, len(ids), 500)):
            s.add_all(Decision(finding_id=fid, verdict="accept", source="cli", fingerprint=fp)
                      for fid, fp in s.execute(select(Finding.id, Finding.fingerprint)
                                               .where(Finding.id.in_(chunk))))
        s.commit()


def time_files(store, run_id: int, work: Path, backend: str) -> dict:
    """Review build of the worst 5,000 and an export changing 5 % of the images."""
    from sqlalchemy import select

    from labelaudit.export import export_labels
    from labelaudit.store import Finding, ImageScore, repo

    with store.session() as s:
        image_ids = s.scalars(select(ImageScore.image_id).where(ImageScore.run_id == run_id)
                              .order_by(ImageScore.image_id)).all()
        chosen = set(image_ids[:: 20])  # 5 %
        fids = s.scalars(select(Finding.id).where(Finding.run_id == run_id, Finding.kind != "boundary",
                                                  Finding.image_id.in_(chosen))).all()
    accept_all(store, fids)
    t0 = time.perf_counter()
    res = export_labels(store, work / f"export-{backend}", run_id=run_id, overwrite=True)
    t_export = time.perf_counter() - t0
    os.environ.update(FIFTYONE_DATABASE_DIR=str(work / "fiftyone"), FIFTYONE_DO_NOT_TRACK="true",
                      FIFTYONE_DATABASE_VALIDATION="false")
    import fiftyone as fo

    from labelaudit.review import build_review_dataset

    fo.config.show_progress_bars = False
    t0 = time.perf_counter()
    ds = build_review_dataset(store, run_id, top=5000, overwrite=True)
    t_review = time.perf_counter() - t0
    n_review = len(ds)
    return {"export_s": t_export, "export_images_changed": res.n_images_changed,
            "review_5000_s": t_review, "review_samples": n_review}


def bench(url: str, n: int, size_of, tree: Path | None = None, work: Path | None = None,
          backend: str = "") -> dict:
    from sqlalchemy import select

    from labelaudit.store import Finding, ImageRow, open_db, repo

    store = open_db(url)
    rng = np.random.default_rng(0)
    with store.session() as s:
        ds = repo.get_or_create_dataset(s, "lapa", str(tree or "/data/LaPa"), [f"c{i}" for i in range(11)])
        t0 = time.perf_counter()
        ids = []
        for k in range(0, n, 5000):
            rows = [ImageRow("train", f"train/images/{i:07d}.jpg", f"train/labels/{i:07d}.png")
                    for i in range(k, min(n, k + 5000))]
            ids += list(repo.upsert_images(s, ds, rows).values())
        t_index = time.perf_counter() - t0
        run = repo.start_run(s, "scan", ds, {"bench": True, "run_dir": str(work or ".")}, seed=0)
        t0 = time.perf_counter()
        for k in range(0, n, 64):
            repo.write_scan_batch(s, run, _rows(rng, ids[k:k + 64]), carry=False,
                                  frames={i: (SIDE, SIDE) for i in ids[k:k + 64]})
        t_write = time.perf_counter() - t0
        repo.finish_run(s, run, "done")
        n_find = s.scalar(select(__import__("sqlalchemy").func.count(Finding.id)).where(Finding.run_id == run.id))
        some = s.scalars(select(Finding.id).where(Finding.run_id == run.id).order_by(Finding.id)
                         .limit(max(1, n_find // 100))).all()
    accept_all(store, some)
    with store.session() as s:
        run = s.get(repo.Run, run.id)
        pair = repo.confusion_pairs(s, run)[0]
        out = {
            "images": n, "findings": int(n_find), "index_images_per_s": n / t_index,
            "write_images_per_s": n / t_write, "bytes_per_image": size_of() / n,
            "top_100_s": _timed(lambda: repo.top_images(s, run, 100)),
            "pair_view_s": _timed(lambda: repo.pair_findings(s, run, pair.given, pair.suggested)),
            "decisions_s": _timed(lambda: repo.decisions_for_run(s, run)),
            "confusion_pairs_s": _timed(lambda: repo.confusion_pairs(s, run)),
            "stream_above_0.9_s": _timed(lambda: sum(1 for _ in repo.iter_findings(s, run, 0.9)), 1),
        }
    if tree is not None:
        out.update(time_files(store, run.id, work, backend))
    store.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--backends", default="sqlite,postgres")
    ap.add_argument("--work", type=Path, default=Path("/tmp/bench-store"))
    ap.add_argument("--files", action="store_true", help="also time the review build and the export")
    a = ap.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    tree = write_tree(a.work / f"lapa-{a.n}", a.n) if a.files else None
    results = {}
    for backend in a.backends.split(","):
        if backend == "sqlite":
            db = a.work / f"store-{a.n}.db"
            for f in a.work.glob(f"store-{a.n}.db*"):
                f.unlink()
            results[backend] = bench(f"sqlite:///{db}", a.n, lambda: sum(
                f.stat().st_size for f in a.work.glob(f"store-{a.n}.db*")), tree, a.work, backend)
        else:
            from pgserver import PgServer

            with PgServer(port=55433) as url:  # beside a test session's server
                def size() -> int:
                    from sqlalchemy import create_engine, text

                    e = create_engine(url)
                    with e.connect() as c:
                        v = c.execute(text("SELECT pg_database_size(current_database())")).scalar()
                    e.dispose()
                    return int(v)
                results[backend] = bench(url, a.n, size, tree, a.work, backend)
        print(json.dumps({backend: results[backend]}), flush=True)
    name = f"bench_store_{a.n}{'_files' if a.files else ''}_{'_'.join(results)}.json"
    (a.work / name).write_text(json.dumps(results, indent=1) + "\n")
    keys = list(next(iter(results.values())))
    print("| measure | " + " | ".join(results) + " |")
    print("|---|" + "---|" * len(results))
    for k in keys:
        print(f"| {k} | " + " | ".join(f"{r[k]:.4g}" for r in results.values()) + " |")


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
