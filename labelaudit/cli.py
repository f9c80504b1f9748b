"""The `labelaudit` command line: parses flags, calls one public function, prints.

Heavy imports (torch, fiftyone, cleanlab) happen inside the command bodies so that
`labelaudit --help` answers at once.
"""
from __future__ import annotations

import functools
import logging
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

app = typer.Typer(
    name="labelaudit",
    help="Find label noise in face-parsing datasets with a DML-CSR self-ensembled teacher.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: Rich markup would swallow "[default: ...]"
)

log = logging.getLogger("labelaudit.cli")


def _user_error(e: BaseException) -> str | None:
    """The message for an error the user can fix (bad input, DB, checkpoint, config), else None."""
    from sqlalchemy import exc as sa

    from labelaudit.store import StoreError
    from labelaudit.train.checkpoint import CheckpointError

    # ValueError covers BadInputError (a bad image or label file) and bad configs
    user = (ValueError, LookupError, FileNotFoundError, FileExistsError, NotADirectoryError,
            IsADirectoryError, PermissionError, CheckpointError, StoreError)
    if isinstance(e, user):
        return str(e)
    if isinstance(e, (sa.ArgumentError, sa.NoSuchModuleError)):
        return f"--db: {e}"
    if isinstance(e, sa.DBAPIError):
        return f"the findings store cannot be used: {e.orig}"
    if isinstance(e, ModuleNotFoundError) and e.name and e.name.split(".")[0] in ("psycopg", "psycopg2", "pymysql"):
        return f"the database driver {e.name!r} is not installed (pip install {e.name.split('.')[0]})"
    return None


def command(*args, **kwargs):
    """`app.command`, with the one error handler: a user error is `error: ...` and exit code 2
    (its traceback with --verbose); anything else is a bug and keeps its traceback."""
    def register(fn):
        @functools.wraps(fn)
        def run(*a, **kw):
            try:
                return fn(*a, **kw)
            except (typer.Exit, typer.Abort, KeyboardInterrupt):
                raise
            except Exception as e:  # noqa: BLE001  (mapped or re-raised below)
                message = _user_error(e)
                if message is None:
                    raise
                log.info("details:", exc_info=True)  # shown with -v
                _fail(message)
        return app.command(*args, **kwargs)(run)
    return register


class DatasetKind(str, Enum):
    lapa = "lapa"
    celebamask = "celebamask"
    helen = "helen"
    folder = "folder"
    synthetic = "synthetic"


class SynthFormat(str, Enum):
    lapa = "lapa"
    celebamask = "celebamask"
    helen = "helen"


class Split(str, Enum):
    train = "train"
    val = "val"
    test = "test"


class Preset(str, Enum):
    cpu_tiny = "cpu-tiny"
    demo = "demo"
    cpu = "cpu"
    paper = "paper"


@app.callback()
def _root(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress details.")] = False) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def _comma_list(value: str, choices: tuple[str, ...], flag: str) -> tuple[str, ...]:
    """A comma list checked against its choices (order kept, duplicates dropped)."""
    items = tuple(dict.fromkeys(t.strip() for t in value.split(",") if t.strip()))
    bad = [t for t in items if t not in choices]
    if bad or not items:
        raise typer.BadParameter(f"{', '.join(bad) or 'nothing given'}: choose from {','.join(choices)}",
                                 param_hint=flag)
    return items


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


@command()
def synth(
    out: Annotated[Path, typer.Option(help="Directory to write the dataset into.")],
    format: Annotated[SynthFormat, typer.Option("--format", help="On-disk layout to write.")] = SynthFormat.lapa,
    n: Annotated[int, typer.Option(help="Number of images (all splits).")] = 300,
    size: Annotated[int, typer.Option(help="Label side length in pixels.")] = 128,
    noise_rate: Annotated[float, typer.Option(help="Fraction of training images given a wrong label.")] = 0.15,
    noise_types: Annotated[str, typer.Option(help="Comma list of noise types: flip,drop,boundary,blob (the classic family, the default), paint,outline,shift,missing,mirror,bleed (the annotator family, held out from the rules' tuning); `classic` and `annotator` name a whole family.")] = "classic",
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same bytes).")] = 0,
) -> None:
    """Generate synthetic faces with known, injected label noise (clean labels kept beside)."""
    from labelaudit.data.synthetic import generate

    from labelaudit.data.synthetic import ANNOTATOR_TYPES, CLASSIC_TYPES, NOISE_TYPES

    families = {"classic": ",".join(CLASSIC_TYPES), "annotator": ",".join(ANNOTATOR_TYPES)}
    named = ",".join(families.get(t.strip(), t) for t in noise_types.split(","))
    types = _comma_list(named, tuple(NOISE_TYPES), "--noise-types")
    summary = generate(out, format=format.value, n=n, size=size, noise_rate=noise_rate,
                       noise_types=types, seed=seed)
    typer.echo(f"wrote {sum(summary.counts.values())} images in the {format.value} layout to {out} "
               f"({', '.join(f'{k} {v}' for k, v in summary.counts.items())})")
    typer.echo(f"noisy training images: {summary.n_noisy} ("
               + ", ".join(f"{k} {v}" for k, v in summary.noisy_per_type.items())
               + f"), {summary.noisy_pixels} wrong pixels; clean labels in labels_clean/")


@command()
def train(
    root: Annotated[Path, typer.Option(help="Dataset root directory.")],
    dataset: Annotated[DatasetKind, typer.Option(help="On-disk format of the dataset.")] = DatasetKind.synthetic,
    labels: Annotated[Optional[Path], typer.Option(help="Corrected label tree (from `labelaudit export`).")] = None,
    preset: Annotated[Preset, typer.Option(help="Size and schedule preset.")] = Preset.cpu,
    config: Annotated[Optional[Path], typer.Option(help="TOML file overriding the preset.")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Total epochs; the CSR schedule is rescaled.")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Images per batch per process.")] = None,
    run: Annotated[Path, typer.Option("--run", "--run-dir", help="Run directory to create (what the other commands take as --run; under torchrun write --run-dir: torchrun's own parser takes --run for its --run-path).")] = Path("runs/latest"),
    out: Annotated[Optional[Path], typer.Option("--out", hidden=True, help="Old spelling of --run.")] = None,
    folds: Annotated[int, typer.Option(help="Train K out-of-sample teachers (0 = off).")] = 0,
    pretrained: Annotated[Optional[Path], typer.Option(help="Local deep-stem ImageNet backbone weights.")] = None,
    resume: Annotated[bool, typer.Option(help="Continue the interrupted run in --run.")] = False,
    seed: Annotated[Optional[int], typer.Option(help="Random seed.")] = None,
    workers: Annotated[Optional[int], typer.Option(help="Data-loading worker processes.")] = None,
    eval_test: Annotated[bool, typer.Option(help="Also score the final teacher on the test split.")] = False,
) -> None:
    """Train DML-CSR (decoupled multi-task learning + cyclical self-regulation) on a dataset."""
    from labelaudit.tracking import recorded_training
    from labelaudit.train import load_config
    from labelaudit.train import train as run_training

    overrides = {
        "data.dataset": dataset.value, "data.root": str(root),
        "data.labels": str(labels) if labels else None, "schedule.epochs": epochs,
        "schedule.batch_size": batch_size, "folds": folds or None,
        "model.pretrained": str(pretrained) if pretrained else None, "seed": seed,
        "data.workers": workers, "eval_test": eval_test or None,
    }
    run = out if out is not None else run
    cfg = load_config(preset.value, config, overrides)
    if resume and folds == 0 and (run / "checkpoint.pt").exists():
        from labelaudit.train.engine import check_resume

        done, total = check_resume(run, epochs)
        if done >= total:
            typer.echo(f"{run}: all {total} epochs were trained already; nothing to resume")
            return

    with recorded_training(cfg, run):
        result = run_training(cfg, run, resume=resume)
    for r in result if isinstance(result, list) else [result]:
        typer.echo(f"run: {r.run_dir}  ({r.seconds:.0f} s, {r.images_per_s:.1f} images/s)")
        if r.dml_student_val:
            typer.echo(f"  val mean F1, student after DML: {r.dml_student_val.get('mean_f1', float('nan')):.2f}")
        typer.echo(f"  val mean F1, final student:     {r.student_val.get('mean_f1', float('nan')):.2f}")
        if r.teacher_val:
            typer.echo(f"  val mean F1, CSR teacher:       {r.teacher_val.get('mean_f1', float('nan')):.2f}")
        if r.test:
            typer.echo(f"  test mean F1, CSR teacher:      {r.test.get('mean_f1', float('nan')):.2f}")


def _resolve_run(run: Optional[Path]) -> Path:
    """--run as given; else this folder when it holds a training run; else runs/latest."""
    if run is not None:
        return run
    here = Path(".")
    if (here / "checkpoint.pt").exists() or (here / "folds.json").exists():
        return here
    return Path("runs/latest")


RunOpt = Annotated[Optional[Path], typer.Option(
    "--run", "--run-dir", callback=_resolve_run, show_default=False,
    help="Training run directory (`train --run`; under torchrun write --run-dir) [default: this folder when it holds a run, else runs/latest].")]
DbOpt = Annotated[Optional[str], typer.Option(
    "--db", envvar="LABELAUDIT_DB", help="SQLAlchemy URL or SQLite path of the findings store "
                 "[default: $LABELAUDIT_DB, else labelaudit.db beside the run].")]


def _db_url(db: Optional[str], run: Path) -> str:
    from labelaudit.store import default_db_url

    return db or default_db_url(run)


class Scorer(str, Enum):
    calibrated = "calibrated"
    rules = "rules"


class Teacher(str, Enum):
    auto = "auto"
    csr = "csr"
    dml = "dml"
    final = "final"
    folds = "folds"
    snapshots = "snapshots"


CheckpointOpt = Annotated[Optional[list[Path]], typer.Option(
    "--checkpoint", help="A checkpoint file as the teacher: a labelaudit one or the released DML-CSR "
    "weights (preprocessing decided from the file). Repeat to average several. Needs --dataset and --root.")]
ProbsOpt = Annotated[Optional[list[Path]], typer.Option(
    "--probs", help="A folder of probability maps (`labelaudit predict --out`, or any program: "
    "README) as the teacher. Repeat to average several. Needs --dataset and --root.")]
DatasetOpt = Annotated[Optional[DatasetKind], typer.Option(
    "--dataset", help="On-disk format of the dataset (with --checkpoint or --probs).")]


TtaOpt = Annotated[Optional[bool], typer.Option(
    "--tta/--no-tta", show_default=False, help="Also average each view with its mirror image "
    "(left/right classes swapped back), at twice the forward [default: off].")]
ScalesOpt = Annotated[Optional[str], typer.Option(
    "--scales", show_default=False, help="Test-time input scales the network teacher's "
    "probabilities average over, a comma list [default: 1,1.25,1.5, three passes that see "
    "boundaries at a finer step; probability maps (--probs) are taken as written]. 1: one "
    "plain pass, about 4x faster.")]


def _scales(text: str | None) -> tuple[float, ...] | None:
    """--scales checked (Views says what is allowed); None: the audit's default."""
    from labelaudit.teachers import Views

    if text is None:
        return None
    try:
        return Views(scales=Views.parse_scales(text)).scales
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint="--scales") from None


def _teacher_files(checkpoint, probs, dataset) -> dict:
    """ScanOptions fields for a teacher given as files (checkpoints, probability folders)."""
    return {"checkpoints": tuple(checkpoint or ()), "probs": tuple(probs or ()),
            "dataset": dataset.value if dataset else None}


@command()
def scan(
    run: RunOpt = None,
    split: Annotated[Split, typer.Option(help="Split to audit.")] = Split.train,
    top: Annotated[int, typer.Option(min=0, help="Print the N worst images.")] = 20,
    db: DbOpt = None,
    out: Annotated[Optional[Path], typer.Option(help="Also write images.csv, findings.csv and region masks here.")] = None,
    tta: TtaOpt = None,
    scales: ScalesOpt = None,
    teacher: Annotated[Teacher, typer.Option(help="Which network judges the labels (auto: folds if trained, else the snapshots on runs of >= 1000 training images, else the CSR teacher).")] = Teacher.auto,
    root: Annotated[Optional[Path], typer.Option(help="Dataset root, if it moved since training.")] = None,
    batch_size: Annotated[int, typer.Option(help="Images per forward pass.")] = 8,
    workers: Annotated[int, typer.Option(help="Data-loading worker processes.")] = 0,
    limit: Annotated[Optional[int], typer.Option(help="Scan only the first N images.")] = None,
    precision: Annotated[float, typer.Option(min=0.0, max=1.0, help="List the findings whose expected precision (mean p_error) is at least this.")] = 0.8,
    scorer: Annotated[Scorer, typer.Option(help="calibrated: p_error from a model fitted on this dataset (labelaudit calibrate); rules: the hand-set rules.")] = Scorer.calibrated,
    recalibrate: Annotated[bool, typer.Option(help="Fit the calibration again even if the run folder has one.")] = False,
    prior_shift: Annotated[bool, typer.Option("--prior-shift/--no-prior-shift", help="Move p_error to this split's share of errors, estimated as its candidates' mean probability; off: the calibration's share (README, Limits).")] = True,
    checkpoint: CheckpointOpt = None,
    probs: ProbsOpt = None,
    dataset: DatasetOpt = None,
) -> None:
    """Rank suspect pixels, regions and images of a split with the trained teacher, any
    checkpoint file, or probability maps from any model."""
    from labelaudit.scan import ScanOptions, run_scan, summarize, write_csvs
    from labelaudit.store import open_db

    opts = ScanOptions(run_dir=run, split=split.value, teacher=teacher.value, tta=tta,
                       scales=_scales(scales), db_url=_db_url(db, run), root=root,
                       batch_size=batch_size, workers=workers, limit=limit, precision=precision,
                       scorer=scorer.value, recalibrate=recalibrate, prior_shift=prior_shift,
                       **_teacher_files(checkpoint, probs, dataset))
    res = run_scan(opts)
    if res.rank != 0:
        return  # a sharded scan (torchrun): rank 0 reports for all
    if res.calibration_seconds > 1:
        typer.echo(f"calibration: {res.calibration_seconds:.1f} s (once per dataset and teacher)")
    typer.echo(f"scan run {res.run_id} ({res.teacher} teacher): {res.n_scored_now} images scored"
               + (f", {res.n_resumed} already done" if res.n_resumed else "")
               + f" in {res.seconds:.1f} s ({res.images_per_s:.1f} images/s; scoring adds "
               f"{100 * res.overhead:.0f}% to the forward time)")
    store = open_db(res.db_url)
    try:
        _print_summary(summarize(store, res.run_id, top))
        if out is not None:
            images_csv, findings_csv = write_csvs(store, res.run_id, out)
            typer.echo(f"wrote {images_csv} and {findings_csv}")
    finally:
        store.close()
    typer.echo(f"store: {res.db_url}")


@command()
def calibrate(
    run: RunOpt = None,
    teacher: Annotated[Teacher, typer.Option(help="Which network to calibrate (auto: folds if trained, else the snapshots on runs of >= 1000 training images, else the CSR teacher).")] = Teacher.auto,
    split: Annotated[Split, typer.Option(help="Held-out split whose labels are corrupted in known ways.")] = Split.val,
    copies: Annotated[Optional[int], typer.Option(min=1, help="Corrupted copies of each image's labels [default: about 960 maps in all, 2-24 per image].")] = None,
    limit: Annotated[int, typer.Option(min=1, help="Use at most N images of the split.")] = 400,
    seed: Annotated[int, typer.Option(help="Seed of the corruptions.")] = 0,
    root: Annotated[Optional[Path], typer.Option(help="Dataset root, if it moved since training.")] = None,
    checkpoint: CheckpointOpt = None,
    probs: ProbsOpt = None,
    dataset: DatasetOpt = None,
    planted: Annotated[bool, typer.Option(help="Also learn from the errors planted in the teacher's own training labels (when its run has them); --no-planted: the held-out split's copies only, kept beside the default calibration.")] = True,
    tta: TtaOpt = None,
    scales: ScalesOpt = None,
) -> None:
    """Fit the scorer of a teacher on this dataset (scan does it on first use)."""
    from labelaudit.scan import ScanOptions
    from labelaudit.scan.calibrate import CalibrationOptions, calibrate_run

    opts = CalibrationOptions(split=split.value, copies=copies, limit=limit, seed=seed,
                              planted=planted)
    scan_opts = ScanOptions(run_dir=run, teacher=teacher.value, root=root, tta=tta,
                            scales=_scales(scales), **_teacher_files(checkpoint, probs, dataset))
    for path, cal in calibrate_run(scan_opts, opts):
        i = cal.info
        typer.echo(f"{path}: {i.n_images} {i.split} images x {i.copies} copies and "
                   f"{i.planted_images} planted training images, {i.n_candidates} candidates "
                   f"({i.n_errors} injected errors); cross-validated ECE {i.cv_ece:.3f} "
                   f"({'planted' if i.planted_images else i.split} rows), AUC {i.cv_auc:.3f}; "
                   f"{i.seconds:.1f} s")


class MapDtype(str, Enum):
    float16 = "float16"
    uint8 = "uint8"


@command()
def predict(
    out: Annotated[Path, typer.Option(help="Folder to write classes.json and one <image path>.npz per image into.")],
    run: RunOpt = None,
    teacher: Annotated[Teacher, typer.Option(help="Which teacher of the run, as scan picks it (folds: predict each fold run with --teacher csr).")] = Teacher.auto,
    checkpoint: Annotated[Optional[Path], typer.Option(help="A checkpoint file instead of a run (needs --dataset and --root).")] = None,
    dataset: DatasetOpt = None,
    root: Annotated[Optional[Path], typer.Option(help="Dataset root (default: the run's).")] = None,
    split: Annotated[Split, typer.Option(help="Split to predict.")] = Split.train,
    shard: Annotated[Optional[str], typer.Option(help="i/n: write every n-th image from the i-th (default under torchrun: rank/world).")] = None,
    dtype: Annotated[MapDtype, typer.Option(help="float16, or uint8 (q = 255 p: half the size, 0.4% steps).")] = MapDtype.float16,
    batch_size: Annotated[int, typer.Option(help="Images per forward pass.")] = 8,
    tta: TtaOpt = None,
    scales: ScalesOpt = None,
    limit: Annotated[Optional[int], typer.Option(help="Only the first N images.")] = None,
    with_val: Annotated[bool, typer.Option(help="Also write the val split (scan --probs calibrates its scorer on it).")] = True,
) -> None:
    """Write a teacher's probabilities for a split, for `scan --probs` here or elsewhere."""
    from labelaudit.scan import ScanOptions
    from dataclasses import replace

    from labelaudit.scan.maps_out import parse_shard, write_probability_maps

    opts = ScanOptions(run_dir=run, split=split.value, teacher=teacher.value, tta=tta,
                       scales=_scales(scales), root=root, batch_size=batch_size, limit=limit,
                       **_teacher_files([checkpoint] if checkpoint else None, None, dataset))
    splits = [split.value] + (["val"] if with_val and split is not Split.val else [])
    for name in splits:
        part = replace(opts, split=name, limit=opts.limit if name == split.value else None)
        res = write_probability_maps(part, out, parse_shard(shard), dtype.value)
        typer.echo(f"{out} ({name}): {res.n_written} maps written, {res.n_kept} kept from before, "
                   f"{len(res.bad)} unreadable images skipped ({res.seconds:.1f} s, "
                   f"{res.images_per_s:.1f} images/s)")


def _print_summary(sm) -> None:
    from labelaudit.scan import listed_phrase, shift_phrase

    est = sm.estimate
    if est:
        typer.echo(f"\nestimated label errors in the split: {est['expected_errors']:.0f} "
                   f"(among {est['n_candidates']} candidate regions); listed: {listed_phrase(est)} "
                   f"(p_error >= {est['cutoff']:.3f}, target {est['precision_target']:.2f})")
        if shift_phrase(est):
            typer.echo(shift_phrase(est))
    typer.echo(f"\n{sm.n_findings} findings in {sm.n_images} images. Worst labels first:")
    typer.echo(f"{'quality':>8}  {'findings':>8}  image")
    for w in sm.worst:
        typer.echo(f"{w.label_quality:8.3f}  {w.n_findings:8d}  {w.image}")
    if sm.pairs:
        typer.echo("\nconfusion pairs (given -> suggested):")
        typer.echo(f"{'given':>12} -> {'suggested':<12} {'findings':>8} {'pixels':>8}")
        for p in sm.pairs[:20]:
            typer.echo(f"{p.given:>12} -> {p.suggested:<12} {p.findings:8d} {p.pixels:8d}")
    noisy = {k: v for k, v in sm.noise_rate.items() if v > 0}
    if noisy:
        typer.echo("\nestimated noise rate per class (flagged / labelled pixels): "
                   + ", ".join(f"{k} {100 * v:.2f}%" for k, v in sorted(noisy.items(), key=lambda kv: -kv[1])))
    if sm.learnt is not None:
        images, pixels, weak = sm.learnt
        typer.echo(f"\nmemorisation evidence (ensemble teacher): in {images} images the newest member "
                   f"took the given label against its older members ({pixels} pixels: errors it may "
                   f"have learnt, images.csv learnt_pixels); {weak} findings are seen by fewer than "
                   "half of the members (findings.csv agreement)")
    if sm.bad_inputs:
        typer.echo(f"\n{len(sm.bad_inputs)} unreadable inputs were skipped:")
        for path, problem in sm.bad_inputs:
            typer.echo(f"  {path}: {problem}")


@command()
def bench(
    run: RunOpt = None,
    teachers: Annotated[str, typer.Option(help="Comma list of teachers to compare: csr,dml,final,folds,snapshots.")] = "csr,dml",
    root: Annotated[Optional[Path], typer.Option(help="Dataset root with labels_clean/ (default: the run's).")] = None,
    db: DbOpt = None,
    out: Annotated[Optional[Path], typer.Option(help="Write bench.json and bench.md here.")] = None,
    split: Annotated[Split, typer.Option(help="Split to score.")] = Split.train,
    limit: Annotated[Optional[int], typer.Option(help="Only the first N images.")] = None,
    batch_size: Annotated[int, typer.Option(help="Images per forward pass.")] = 8,
    cleanlab_chunk: Annotated[int, typer.Option(help="Images per cleanlab call (it needs them all in memory).")] = 64,
    scorers: Annotated[str, typer.Option(help="Comma list of our scorers to compare: calibrated,rules,calibrated-val-only (calibrated without the planted errors).")] = "calibrated,rules",
    prior_shift: Annotated[bool, typer.Option("--prior-shift/--no-prior-shift", help="Calibrated scans move p_error to the split's estimated share of errors (as scan).")] = True,
    tta: TtaOpt = None,
    scales: ScalesOpt = None,
) -> None:
    """Score scans against the known noise of a synthetic set, side by side with cleanlab."""
    from labelaudit.bench.run import SCORERS, markdown, run_bench

    names = _comma_list(teachers, tuple(t.value for t in Teacher if t is not Teacher.auto), "--teachers")
    report = run_bench(run, names, scorers=_comma_list(scorers, SCORERS, "--scorers"),
                       db_url=_db_url(db, run), split=split.value, root=root,
                       batch_size=batch_size, limit=limit, cleanlab_chunk=cleanlab_chunk,
                       prior_shift=prior_shift, tta=tta, scales=_scales(scales))
    table = markdown(report)
    typer.echo(table)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "bench.json").write_text(report.to_json())
        (out / "bench.md").write_text(table + "\n")
        typer.echo(f"wrote {out / 'bench.json'} and {out / 'bench.md'}")


@command()
def review(
    run: RunOpt = None,
    db: DbOpt = None,
    scan_run: Annotated[Optional[int], typer.Option(help="Scan run id [default: the latest finished].")] = None,
    top: Annotated[Optional[int], typer.Option(help="Only the N worst images.")] = None,
    name: Annotated[Optional[str], typer.Option(help="FiftyOne dataset name [default: labelaudit-<store id>-scan-<scan id>].")] = None,
    launch: Annotated[bool, typer.Option(help="Start the App and wait; sync the tags when it stops.")] = True,
    port: Annotated[int, typer.Option(help="App port.")] = 5151,
    address: Annotated[str, typer.Option(help="App address (remote mode).")] = "127.0.0.1",
    sync: Annotated[bool, typer.Option(help="Write the reviewers' tags to the decisions table now.")] = False,
    findings: Annotated[bool, typer.Option("--findings", help="Open on one tile per finding, most suspicious first: select tiles, tag them all at once.")] = False,
) -> None:
    """Review the findings in the FiftyOne App (worst first); accept/reject/relabel tags -> DB."""
    try:
        from labelaudit.review import (
            FINDINGS_VIEW, build_review_dataset, launch as launch_app, serve, stop_fiftyone,
            stop_signals, sync_decisions,
        )
    except ImportError:
        _fail("review needs FiftyOne: pip install 'labelaudit[review]'")
    from labelaudit.store import open_db

    store = open_db(_db_url(db, run), must_exist=True)
    try:
        ds = build_review_dataset(store, scan_run, top=top, name=name)
        # from here on Ctrl-C, SIGTERM and SIGHUP end the review through its clean-up (closing
        # or reloading the browser tab does not end it)
        with stop_signals():
            typer.echo(f"review dataset {ds.name}: {len(ds)} images, saved views: "
                       + ", ".join(ds.list_saved_views()))
            url = f"http://{address}:{port}/datasets/{ds.name}"
            if sync:
                typer.echo(f"{sync_decisions(store, ds)} decisions recorded from the tags")
            if not launch:
                typer.echo(f"App (after `labelaudit review --launch`): {url}")
                return

            def start() -> None:
                launch_app(ds, port=port, address=address,
                           view=FINDINGS_VIEW if findings else "worst-first")
                typer.echo(f"App: {url}  (tag findings or images accept / reject / relabel: each "
                           "tag is recorded within 2 s; Ctrl-C to stop)")

            try:  # a stop while the App starts still records the tags made before
                recorded = serve(lambda: sync_decisions(store, ds), start)
            finally:
                stop_fiftyone()  # the App server and MongoDB this review started
        typer.echo(f"{recorded} decisions recorded from the tags")
    finally:
        store.close()


@command()
def decide(
    findings: Annotated[list[int], typer.Argument(help="Finding ids (findings.csv, the App).")],
    accept: Annotated[bool, typer.Option("--accept", help="The label is wrong as found: fix it on export.")] = False,
    reject: Annotated[bool, typer.Option("--reject", help="The label is right: keep it.")] = False,
    relabel: Annotated[bool, typer.Option("--relabel", help="Wrong, but the suggestion is too: needs a human.")] = False,
    note: Annotated[Optional[str], typer.Option(help="Free text kept with the decision.")] = None,
    run: RunOpt = None,
    db: DbOpt = None,
    scan_run: Annotated[Optional[int], typer.Option(help="Scan run the ids must belong to [default: the latest finished].")] = None,
) -> None:
    """Record a verdict on findings from the shell (scriptable review)."""
    from labelaudit.scan.summary import resolve_scan_run
    from labelaudit.store import Finding, open_db, repo

    chosen = [v for v, on in (("accept", accept), ("reject", reject), ("relabel", relabel)) if on]
    if len(chosen) != 1:
        _fail("give exactly one of --accept, --reject, --relabel")
    store = open_db(_db_url(db, run), must_exist=True)
    try:
        scan_id = resolve_scan_run(store, scan_run)
        with store.session() as s:  # all ids checked before any is recorded
            found = {fid: s.get(Finding, fid) for fid in findings}
            missing = [str(fid) for fid, f in found.items() if f is None]
            if missing:
                _fail(f"no finding{'s' if len(missing) > 1 else ''} with id "
                      f"{', '.join(missing)} in {store.location}")
            other = [f"{fid} (scan run {f.run_id})" for fid, f in found.items() if f.run_id != scan_id]
            if other:
                _fail(f"finding{'s' if len(other) > 1 else ''} {', '.join(other)} not in scan run "
                      f"{scan_id}; pass --scan-run to decide on another scan")
            shown = {fid: f"{f.image.image_relpath} {f.kind}" for fid, f in found.items()}
        for fid in dict.fromkeys(findings):
            with store.session() as s:
                repo.record_decision(s, finding_id=fid, verdict=chosen[0], source="cli", note=note)
            typer.echo(f"finding {fid} ({shown[fid]}): {chosen[0]}")
    finally:
        store.close()


@command()
def relabel(
    run: RunOpt = None,
    db: DbOpt = None,
    scan_run: Annotated[Optional[int], typer.Option(help="Scan run id [default: the latest finished].")] = None,
    pull: Annotated[bool, typer.Option("--pull", help="Read the corrections made in Label Studio back into the store.")] = False,
    url: Annotated[str, typer.Option(envvar="FIFTYONE_LABELSTUDIO_URL", help="Label Studio server.")] = "http://localhost:8080",
    api_key: Annotated[Optional[str], typer.Option(envvar="FIFTYONE_LABELSTUDIO_API_KEY", help="Label Studio API token (Account & Settings).")] = None,
) -> None:
    """Send the images with a relabel verdict to Label Studio, their labels pre-loaded; --pull
    records the corrected labels, which `export` then writes."""
    try:
        from labelaudit.review.relabel import pull_corrections, send_for_relabel
    except ImportError:
        _fail("relabel needs FiftyOne: pip install 'labelaudit[review]'")
    from labelaudit.store import open_db

    if not api_key:
        _fail("give the Label Studio API token: --api-key or $FIFTYONE_LABELSTUDIO_API_KEY")
    store = open_db(_db_url(db, run), must_exist=True)
    try:
        if pull:
            got = pull_corrections(store, scan_run, url=url, api_key=api_key)
            typer.echo(f"{got.n_corrected} corrections recorded ({got.n_unchanged} labels came back "
                       f"unchanged; {got.n_images} images sent in all); `labelaudit export` writes them")
            return
        sent = send_for_relabel(store, scan_run, url=url, api_key=api_key)
    finally:
        store.close()
    if sent.anno_key is None:
        typer.echo("nothing new to relabel: no relabel verdict on an image not sent before")
        return
    typer.echo(f"sent {sent.n_images} images to {url}/projects/{sent.project_id} ({sent.anno_key}); "
               "correct the masks there, then: labelaudit relabel --pull")


@command()
def export(
    out: Annotated[Path, typer.Option(help="Folder for the corrected label tree (must not be inside the dataset).")],
    run: RunOpt = None,
    db: DbOpt = None,
    policy: Annotated[str, typer.Option(help="accepted (reviewed findings) or threshold:S (every finding scoring >= S not rejected).")] = "accepted",
    scan_run: Annotated[Optional[int], typer.Option(help="Scan run id [default: the latest finished].")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an earlier export in --out.")] = False,
) -> None:
    """Write the corrected labels in the dataset's own layout (+ changes.csv, manifest.json)."""
    from labelaudit.export import export_labels
    from labelaudit.store import open_db

    store = open_db(_db_url(db, run), must_exist=True)
    try:
        res = export_labels(store, out, run_id=scan_run, policy=policy, overwrite=overwrite)
    finally:
        store.close()
    typer.echo(f"exported {res.n_images} label files to {res.out}: {res.n_findings_applied} findings "
               f"and {res.n_corrections_applied} hand corrections applied, "
               f"{res.n_images_changed} images / {res.n_pixels_changed} pixels changed "
               f"(scan run {res.run_id}, policy {res.policy})")
    for why, n in res.not_applied.items():
        typer.echo(f"not applied: {n} {why}")
    typer.echo(f"retrain: labelaudit train --root <dataset root> --labels {res.out}")


@command()
def report(
    run: RunOpt = None,
    db: DbOpt = None,
    out: Annotated[Path, typer.Option(help="Folder for report.md and its pictures.")] = Path("report"),
    scan_run: Annotated[Optional[int], typer.Option(help="Scan run id [default: the latest finished].")] = None,
    after: Annotated[Optional[Path], typer.Option(help="Run directory retrained on the exported labels.")] = None,
    top: Annotated[int, typer.Option(min=1, help="Worst images on the contact sheet.")] = 8,
) -> None:
    """Contact sheet of the worst images, confusion pairs, score histogram, PR curve, before/after."""
    from labelaudit.report import make_report
    from labelaudit.store import open_db

    store = open_db(_db_url(db, run), must_exist=True)
    try:
        rep = make_report(store, out, run_id=scan_run, before=run, after=after, top=top)
    finally:
        store.close()
    if rep.before:
        line = f"val mean F1 (teacher): {rep.before.get('mean_f1', float('nan')):.2f}"
        if rep.after:
            line += f" before -> {rep.after.get('mean_f1', float('nan')):.2f} after cleaning"
        typer.echo(line)
    for f in rep.files:
        typer.echo(f"wrote {f}")


@command()
def demo(
    out: Annotated[Path, typer.Option(help="Working folder (replaced if it holds an earlier demo).")] = Path("demo-out"),
    n: Annotated[int, typer.Option(help="Generated images (80/10/10 split).")] = 200,
    epochs: Annotated[Optional[int], typer.Option(help="Override the demo preset's epochs.")] = None,
    precision: Annotated[float, typer.Option(min=0.0, max=1.0, help="Accept the findings listed at this expected precision (the stand-in reviewer).")] = 0.8,
) -> None:
    """The whole loop on generated faces with known noise, on a CPU (about 10 minutes)."""
    from labelaudit.demo import run_demo

    run_demo(out, n=n, epochs=epochs, precision=precision, echo=typer.echo)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
