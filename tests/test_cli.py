"""The command line: commands exist, errors are clear, scan -> export -> report chain."""
from __future__ import annotations

import csv

from scanhelp import make_dataset, make_run
from typer.testing import CliRunner

from labelaudit.cli import app

runner = CliRunner()


def test_help_lists_every_command():
    res = runner.invoke(app, ["--help"])
    assert res.exit_code == 0
    for cmd in ("synth", "train", "scan", "bench", "review", "decide", "export", "report", "demo"):
        assert cmd in res.output


def test_scan_export_report_chain(tmp_path):
    root = make_dataset(tmp_path / "data", n=12, size=64)
    run = make_run(tmp_path / "run", root)
    db = f"sqlite:///{tmp_path / 'x.db'}"
    res = runner.invoke(app, ["scan", "--run", str(run), "--db", db, "--limit", "5",
                              "--out", str(tmp_path / "csv"), "--top", "3"])
    assert res.exit_code == 0, res.output
    assert "5 images scored" in res.output and "Worst labels first" in res.output
    rows = list(csv.DictReader(open(tmp_path / "csv" / "images.csv")))
    assert len(rows) == 5 and all(r["image"].startswith("train/images/") for r in rows)
    bad = runner.invoke(app, ["export", "--db", db, "--out", str(root / "inside")])
    assert bad.exit_code == 2 and "refusing to export" in bad.output
    ok = runner.invoke(app, ["export", "--db", db, "--out", str(tmp_path / "fixed")])
    assert ok.exit_code == 0 and "0 findings applied" in ok.output
    rep = runner.invoke(app, ["report", "--db", db, "--run", str(run), "--out", str(tmp_path / "rep")])
    assert rep.exit_code == 0, rep.output
    assert (tmp_path / "rep" / "contact_sheet.png").exists()


def test_scan_of_a_missing_run_names_the_file(tmp_path):
    res = runner.invoke(app, ["scan", "--run", str(tmp_path / "nope"), "--db", f"sqlite:///{tmp_path}/a.db"])
    assert res.exit_code == 2 and "checkpoint.pt" in res.output


def test_export_without_a_scan_says_so(tmp_path):
    res = runner.invoke(app, ["export", "--db", f"sqlite:///{tmp_path}/empty.db", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "no finished scan" in res.output
