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
    assert "estimated label errors in the split" in res.output  # the calibrated scorer's summary
    assert "p_error moved to this split's estimated share" in res.output  # the default shift
    rows = list(csv.DictReader(open(tmp_path / "csv" / "images.csv")))
    assert len(rows) == 5 and all(r["image"].startswith("train/images/") for r in rows)
    bad = runner.invoke(app, ["export", "--db", db, "--out", str(root / "inside")])
    assert bad.exit_code == 2 and "refusing to export" in bad.output
    ok = runner.invoke(app, ["export", "--db", db, "--out", str(tmp_path / "fixed")])
    assert ok.exit_code == 0 and "0 findings and 0 hand corrections applied" in ok.output
    rep = runner.invoke(app, ["report", "--db", db, "--run", str(run), "--out", str(tmp_path / "rep")])
    assert rep.exit_code == 0, rep.output
    assert (tmp_path / "rep" / "contact_sheet.png").exists()
    assert (tmp_path / "rep" / "reliability.png").exists()  # the scan's calibration, drawn


def test_scan_of_a_missing_run_names_the_file(tmp_path):
    res = runner.invoke(app, ["scan", "--run", str(tmp_path / "nope"), "--db", f"sqlite:///{tmp_path}/a.db"])
    assert res.exit_code == 2 and "checkpoint.pt" in res.output


def test_export_without_a_scan_says_so(tmp_path):
    from labelaudit.store import open_db

    open_db(tmp_path / "empty.db").close()
    res = runner.invoke(app, ["export", "--db", f"sqlite:///{tmp_path}/empty.db", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "no finished scan" in res.output
    res = runner.invoke(app, ["report", "--db", f"sqlite:///{tmp_path}/empty.db", "--out", str(tmp_path / "r")])
    assert res.exit_code == 2 and "no finished scan" in res.output and not (tmp_path / "r").exists()


def test_reading_commands_leave_no_empty_store_behind(tmp_path):
    for cmd in (["decide", "3", "--accept"], ["export", "--out", str(tmp_path / "o")],
                ["report", "--out", str(tmp_path / "r")]):
        res = runner.invoke(app, [*cmd, "--run", str(tmp_path / "run")])
        assert res.exit_code == 2 and "no findings store" in res.output, (cmd, res.output)
    assert not list(tmp_path.rglob("*.db")) and not (tmp_path / "o").exists()


def test_every_option_default_is_shown_in_help():
    for cmd in ("scan", "export", "report", "train"):
        res = runner.invoke(app, [cmd, "--help"])
        assert res.exit_code == 0
        assert "[default: $LABELAUDIT_DB" in res.output or cmd == "train"  # not swallowed as markup
        assert "[default: " in res.output
    assert "--out" not in runner.invoke(app, ["train", "--help"]).output  # the old spelling is hidden


def test_bad_stores_are_one_error_line_with_exit_2(tmp_path):
    (tmp_path / "folder.db").mkdir()
    (tmp_path / "junk.db").write_bytes(b"this is not a database" * 100)
    for db in ("postgresql+nodriver://x/y", "notadialect://x", "sqlite:////no/such/dir/a.db",
               str(tmp_path / "folder.db"), str(tmp_path / "junk.db")):
        res = runner.invoke(app, ["export", "--db", db, "--out", str(tmp_path / "o")])
        assert res.exit_code == 2, (db, res.output)
        assert res.output.startswith("error: ") and "Traceback" not in res.output, (db, res.output)


def test_comma_lists_are_checked(tmp_path):
    res = runner.invoke(app, ["bench", "--run", str(tmp_path), "--teachers", "csr,teachr"])
    assert res.exit_code == 2 and "teachr" in res.output
    res = runner.invoke(app, ["synth", "--out", str(tmp_path / "s"), "--noise-types", "flip,smudge"])
    assert res.exit_code == 2 and "smudge" in res.output and not (tmp_path / "s").exists()


def test_synth_noise_families_expand_to_their_types(tmp_path):
    import json

    res = runner.invoke(app, ["synth", "--out", str(tmp_path / "a"), "--n", "20", "--size", "64",
                              "--format", "celebamask", "--noise-types", "annotator,flip",
                              "--noise-rate", "0.5"])
    assert res.exit_code == 0, res.output
    manifest = json.loads((tmp_path / "a" / "synthetic.json").read_text())
    assert manifest["noise_types"] == ["paint", "outline", "shift", "missing", "mirror", "bleed", "flip"]


def test_commands_run_inside_a_run_folder_find_it(tmp_path, monkeypatch):
    root = make_dataset(tmp_path / "data", n=12, size=64)
    run = make_run(tmp_path / "run", root)
    monkeypatch.chdir(run)
    res = runner.invoke(app, ["scan", "--limit", "3", "--top", "1"])
    assert res.exit_code == 0, res.output
    assert (run / "labelaudit.db").exists() and "3 images scored" in res.output
    monkeypatch.chdir(tmp_path)  # elsewhere, without --run: runs/latest, which does not exist
    res = runner.invoke(app, ["scan"])
    assert res.exit_code == 2 and "runs/latest" in res.output


def test_bench_scans_are_never_the_default_and_decide_checks_the_scan(tmp_path):
    from scanhelp import oracle_predictor, plant_flip

    from labelaudit.data import open_source
    from labelaudit.scan import ScanOptions, resolve_scan_run, run_scan
    from labelaudit.store import Finding, open_db

    root = make_dataset(tmp_path / "data", n=12, size=64)
    plant_flip(root, open_source("synthetic", root).records("train")[1].id, 6, 10)
    run = make_run(tmp_path / "run", root)
    db = str(run / "labelaudit.db")
    oracle = oracle_predictor(root)
    mine = run_scan(ScanOptions(run_dir=run, db_url=db, progress=False, scorer="rules"), predict=oracle)
    bench = run_scan(ScanOptions(run_dir=run, db_url=db, progress=False, scorer="rules",
                                 purpose="bench"), predict=oracle)
    store = open_db(db)
    assert resolve_scan_run(store) == mine.run_id != bench.run_id
    with store.session() as s:
        theirs = s.query(Finding.id).filter(Finding.run_id == bench.run_id).first()[0]
        ours = s.query(Finding.id).filter(Finding.run_id == mine.run_id).first()[0]
    store.close()
    res = runner.invoke(app, ["decide", str(theirs), "--accept", "--run", str(run)])
    assert res.exit_code == 2 and f"not in scan run {mine.run_id}" in res.output
    res = runner.invoke(app, ["decide", str(ours), "--accept", "--run", str(run)])
    assert res.exit_code == 0 and f"finding {ours}" in res.output
    res = runner.invoke(app, ["decide", str(theirs), "--reject", "--run", str(run),
                              "--scan-run", str(bench.run_id)])
    assert res.exit_code == 0, res.output


def test_resume_says_what_it_cannot_do(tmp_path):
    root = make_dataset(tmp_path / "d", n=12, size=48)
    args = ["train", "--root", str(root), "--preset", "cpu-tiny", "--run", str(tmp_path / "r"),
            "--batch-size", "4"]
    assert runner.invoke(app, [*args, "--epochs", "2"]).exit_code == 0
    other = runner.invoke(app, [*args, "--resume", "--epochs", "6"])
    assert other.exit_code == 2 and "started for 2 epochs (2 done)" in other.output
    done = runner.invoke(app, [*args, "--resume"])
    assert done.exit_code == 0 and "all 2 epochs were trained already" in done.output


def test_the_demo_summary_says_when_there_was_no_loss_to_win_back():
    from pathlib import Path

    from labelaudit.demo import DemoResult, _summary

    def result(clean: float) -> DemoResult:
        return DemoResult(Path("d"), 24, 3128, 3000, 900, 800, 29, 0.75, 0.47, 0.72, 0.57,
                          f1_before=60.0, f1_after=62.0, f1_clean=clean, seconds=300.0)

    assert "share of the loss won back 0.50" in _summary(result(64.0))
    below = _summary(result(55.0))
    assert "no loss to win back" in below and "nan" not in below
