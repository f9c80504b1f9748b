"""`labelaudit demo`: the whole relabel-then-retrain loop on generated faces with known noise.

synth -> train -> scan + bench (calibrated scorer vs rules vs cleanlab) -> accept the findings
the calibrated list holds at expected precision 0.8 (stands in for a reviewer who trusts it) ->
export -> retrain on the corrected labels, and on the clean labels for the ceiling -> report.
Every training is scored on the clean test labels. Sized to finish in under 10 minutes on 2 CPU
cores (the `demo` preset).
"""
from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

log = logging.getLogger(__name__)


@dataclass
class DemoResult:
    out: Path
    injected_images: int
    injected_pixels: int
    noisy_pixels_after: int
    pixels_fixed: int
    pixels_broken: int
    accepted: int
    image_ap: float
    cleanlab_image_ap: float
    region_precision: float
    region_recall: float
    f1_before: float  # test mean F1, trained on the noisy labels (the floor)
    f1_after: float  # after the loop
    f1_clean: float  # trained on the clean labels (the ceiling)
    seconds: float

    @property
    def won_back(self) -> float:
        """Share of the F1 lost to noise that the loop won back."""
        lost = self.f1_clean - self.f1_before
        return (self.f1_after - self.f1_before) / lost if lost > 0 else float("nan")


def run_demo(out: str | Path = "demo-out", *, n: int = 200, size: int = 96, preset: str = "demo",
             epochs: int | None = None, precision: float = 0.8, seed: int = 0,
             echo: Callable[[str], None] = log.info) -> DemoResult:
    """Run the loop into `out` (replaced if it holds an earlier demo)."""
    from labelaudit.bench.run import markdown, run_bench
    from labelaudit.data.synthetic import generate
    from labelaudit.report import make_report
    from labelaudit.store import open_db
    from labelaudit.train import load_config

    t0 = time.perf_counter()
    out = _fresh_folder(Path(out))
    db = str(out / "labelaudit.db")

    echo(f"[1/7] generating {n} synthetic faces ({size}x{size}) with 15% noisy training labels")
    summary = generate(out / "data", n=n, size=size, noise_rate=0.15, seed=seed, progress=False)
    echo(f"      {summary.n_noisy} noisy training images, {summary.noisy_pixels} wrong pixels "
         f"({', '.join(f'{k} {v}' for k, v in summary.noisy_per_type.items())})")

    overrides = {"data.root": str(out / "data"), "seed": seed, "schedule.epochs": epochs,
                 "eval_test": True}
    echo(f"[2/7] training DML-CSR ({preset} preset) on the noisy labels")
    before, f1_before = _train(load_config(preset, None, overrides), out / "run", db)
    echo(f"      val mean F1: student after DML {before.dml_student_val.get('mean_f1', float('nan')):.2f}, "
         f"CSR teacher {before.teacher_val.get('mean_f1', float('nan')):.2f}; test {f1_before:.2f} "
         f"({before.seconds:.0f} s)")

    echo("[3/7] scanning the training set with the CSR teacher, scored against the known noise")
    bench = run_bench(out / "run", ("csr",), db_url=db, progress=False)
    echo(markdown(bench))
    ours, theirs = bench.teachers[0].methods["calibrated"], bench.teachers[0].methods["cleanlab"]
    scan_id = bench.teachers[0].scan_run_id
    store = open_db(db)
    try:
        ids, noise = _accept_and_export(store, scan_id, out, precision, echo)
        echo("[6/7] retraining on the corrected labels, and on the clean labels (the ceiling)")
        f1_after, f1_clean = _retrain(out, preset, overrides, db)
        echo(f"      test mean F1 of the CSR teacher: noisy labels {f1_before:.2f}, after the loop "
             f"{f1_after:.2f}, clean labels {f1_clean:.2f}")
        echo("[7/7] writing the report")
        rep = make_report(store, out / "report", run_id=scan_id, before=out / "run",
                          after=out / "run-fixed")
        echo(f"      {rep.out / 'report.md'}")
    finally:
        store.close()
    result = DemoResult(out, summary.n_noisy, noise.before, noise.after, noise.fixed, noise.broken,
                        len(ids), ours.image_ap, theirs.image_ap, ours.region_precision,
                        ours.region_recall, float(f1_before), float(f1_after), float(f1_clean),
                        time.perf_counter() - t0)
    echo(_summary(result))
    return result


def _accept_and_export(store, scan_id: int, out: Path, precision: float,
                       echo: Callable[[str], None]):
    """Steps 4-5: accept the listed findings, export the corrected tree; (ids, LabelNoise)."""
    from labelaudit.bench.labels import label_noise
    from labelaudit.export import export_labels

    echo(f"[4/7] accepting the findings listed at expected precision {precision} "
         "(stands in for a reviewer)")
    ids = _auto_accept(store, scan_id, precision)
    echo(f"      {len(ids)} findings accepted")
    echo("[5/7] exporting the corrected label tree")
    res = export_labels(store, out / "fixed", run_id=scan_id)
    noise = label_noise(out / "data", out / "fixed")
    echo(f"      {res.n_images_changed} images changed; wrong training pixels {noise.before} -> "
         f"{noise.after} ({noise.fixed} fixed, {noise.broken} newly wrong)")
    return ids, noise


def _retrain(out: Path, preset: str, overrides: dict, db: str) -> tuple[float, float]:
    """Step 6: the test mean F1 of trainings on the corrected and on the clean labels."""
    from labelaudit.bench.labels import clean_label_tree
    from labelaudit.train import load_config

    trees = {"run-fixed": out / "fixed",
             "run-clean": clean_label_tree(out / "data", out / "clean-labels")}
    return tuple(_train(load_config(preset, None, {**overrides, "data.labels": str(tree)}),
                        out / name, db)[1] for name, tree in trees.items())  # type: ignore[return-value]


def _summary(r: DemoResult) -> str:
    found = 100 * r.pixels_fixed / r.injected_pixels if r.injected_pixels else float("nan")
    return (f"\ninjected noise found and fixed: {r.pixels_fixed}/{r.injected_pixels} pixels ({found:.0f}%), "
            f"{r.pixels_broken} pixels made wrong; image AP {r.image_ap:.3f} (cleanlab softmin "
            f"{r.cleanlab_image_ap:.3f}); region P/R {r.region_precision:.2f}/{r.region_recall:.2f}; "
            f"test mean F1 {r.f1_before:.2f} -> {r.f1_after:.2f} (clean labels: {r.f1_clean:.2f}; "
            f"{_share(r)}); {r.seconds / 60:.1f} min")


def _share(r: DemoResult) -> str:
    if r.f1_clean <= r.f1_before:  # 40 test images: the noise of the measure can exceed the loss
        return "no loss to win back: the clean labels did not score higher"
    return f"share of the loss won back {r.won_back:.2f}"


def _fresh_folder(out: Path) -> Path:
    if out.exists():
        if not (out / "data" / "synthetic.json").exists():
            raise FileExistsError(f"{out} exists and is not a labelaudit demo folder")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    return out


def _train(cfg, run_dir: Path, db: str):
    """Train and record the run in the demo's store; (result, the teacher's test mean F1)."""
    from labelaudit.tracking import recorded_training
    from labelaudit.train import train

    with recorded_training(cfg, run_dir, db):
        result = train(cfg, run_dir)
    return result, result.test.get("mean_f1", float("nan"))


def _auto_accept(store, scan_run_id: int, precision: float) -> list[int]:
    """Accept the findings a scan at `precision` lists (the bench's scan keeps them all): the
    demo's stand-in reviewer."""
    import numpy as np

    from labelaudit.scan.calibrator import expected_precision_cutoff
    from labelaudit.store import repo

    with store.session() as s:
        found = list(repo.iter_findings(s, s.get(repo.Run, scan_run_id)))
        cutoff = expected_precision_cutoff(np.asarray([f.score for f in found]), precision)
        ids = [f.id for f in found if f.score >= cutoff]
    for fid in ids:
        with store.session() as s:
            repo.record_decision(s, finding_id=fid, verdict="accept", source="cli", note="demo auto-accept")
    return ids
