"""The `labelaudit` command line: parses flags, calls one public function, prints.

Heavy imports (torch, fiftyone, cleanlab) happen inside the command bodies so that
`labelaudit --help` answers at once.
"""
from __future__ import annotations

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
)


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


class Preset(str, Enum):
    cpu_tiny = "cpu-tiny"
    cpu = "cpu"
    paper = "paper"


@app.callback()
def _root(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress details.")] = False) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


@app.command()
def synth(
    out: Annotated[Path, typer.Option(help="Directory to write the dataset into.")],
    format: Annotated[SynthFormat, typer.Option("--format", help="On-disk layout to write.")] = SynthFormat.lapa,
    n: Annotated[int, typer.Option(help="Number of images (all splits).")] = 300,
    size: Annotated[int, typer.Option(help="Label side length in pixels.")] = 128,
    noise_rate: Annotated[float, typer.Option(help="Fraction of training images given a wrong label.")] = 0.15,
    noise_types: Annotated[str, typer.Option(help="Comma list of flip,drop,boundary,blob.")] = "flip,drop,boundary,blob",
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same bytes).")] = 0,
) -> None:
    """Generate synthetic faces with known, injected label noise (clean labels kept beside)."""
    from labelaudit.data.synthetic import generate

    types = tuple(t.strip() for t in noise_types.split(",") if t.strip())
    try:
        summary = generate(out, format=format.value, n=n, size=size, noise_rate=noise_rate,
                           noise_types=types, seed=seed)
    except ValueError as e:
        _fail(str(e))
    typer.echo(f"wrote {format.value} layout to {out}")
    typer.echo(str(summary))


@app.command()
def train(
    root: Annotated[Path, typer.Option(help="Dataset root directory.")],
    dataset: Annotated[DatasetKind, typer.Option(help="On-disk format of the dataset.")] = DatasetKind.synthetic,
    labels: Annotated[Optional[Path], typer.Option(help="Corrected label tree (from `labelaudit export`).")] = None,
    preset: Annotated[Preset, typer.Option(help="Size and schedule preset.")] = Preset.cpu,
    config: Annotated[Optional[Path], typer.Option(help="TOML file overriding the preset.")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Total epochs; the CSR schedule is rescaled.")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Images per batch per process.")] = None,
    out: Annotated[Path, typer.Option(help="Run directory.")] = Path("runs/latest"),
    folds: Annotated[int, typer.Option(help="Train K out-of-sample teachers (0 = off).")] = 0,
    pretrained: Annotated[Optional[Path], typer.Option(help="Local deep-stem ImageNet backbone weights.")] = None,
    resume: Annotated[bool, typer.Option(help="Continue the interrupted run in --out.")] = False,
    seed: Annotated[Optional[int], typer.Option(help="Random seed.")] = None,
    workers: Annotated[Optional[int], typer.Option(help="Data-loading worker processes.")] = None,
    eval_test: Annotated[bool, typer.Option(help="Also score the final teacher on the test split.")] = False,
) -> None:
    """Train DML-CSR (decoupled multi-task learning + cyclical self-regulation) on a dataset."""
    from labelaudit.train import load_config
    from labelaudit.train import train as run_training
    from labelaudit.train.checkpoint import CheckpointError

    overrides = {
        "data.dataset": dataset.value, "data.root": str(root),
        "data.labels": str(labels) if labels else None, "schedule.epochs": epochs,
        "schedule.batch_size": batch_size, "folds": folds or None,
        "model.pretrained": str(pretrained) if pretrained else None, "seed": seed,
        "data.workers": workers, "eval_test": eval_test or None,
    }
    try:
        cfg = load_config(preset.value, config, overrides)
        result = run_training(cfg, out, resume=resume)
    except (ValueError, FileExistsError, FileNotFoundError, CheckpointError) as e:
        _fail(str(e))
    for r in result if isinstance(result, list) else [result]:
        typer.echo(f"run: {r.run_dir}  ({r.seconds:.0f} s, {r.images_per_s:.1f} images/s)")
        if r.dml_student_val:
            typer.echo(f"  val mean F1, student after DML: {r.dml_student_val.get('mean_f1', float('nan')):.2f}")
        typer.echo(f"  val mean F1, final student:     {r.student_val.get('mean_f1', float('nan')):.2f}")
        if r.teacher_val:
            typer.echo(f"  val mean F1, CSR teacher:       {r.teacher_val.get('mean_f1', float('nan')):.2f}")
        if r.test:
            typer.echo(f"  test mean F1, CSR teacher:      {r.test.get('mean_f1', float('nan')):.2f}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
