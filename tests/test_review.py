"""Review in FiftyOne: the dataset built from a scan, tags -> decisions, the real App in Chromium.

FiftyOne runs against a throw-away database directory (never the user's; conftest.fiftyone_home)
and everything it started is stopped when the session ends.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from scanhelp import make_dataset, make_run, oracle_predictor, plant_flip
from typer.testing import CliRunner

from labelaudit.cli import app
from labelaudit.data import open_source
from labelaudit.scan import ScanOptions, run_scan
from labelaudit.store import open_db, repo

pytestmark = pytest.mark.review
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
NOSE, HAIR = 6, 10


@pytest.fixture(scope="module")
def scanned(fiftyone_home, tmp_path_factory):
    base = tmp_path_factory.mktemp("review")
    root = make_dataset(base / "data", n=16)
    stems = [r.id for r in open_source("synthetic", root).records("train")]
    plant_flip(root, stems[4], NOSE, HAIR)
    run = make_run(base / "run", root)
    db = str(base / "r.db")
    res = run_scan(ScanOptions(run_dir=run, db_url=db, progress=False, scorer="rules"),  # review mechanics
                   predict=oracle_predictor(root))
    store = open_db(db)
    yield store, res.run_id, stems[4], root, run, db
    store.close()


@pytest.fixture(scope="module")
def review_ds(scanned):
    from labelaudit.review import build_review_dataset

    store, run_id, *_ = scanned
    return build_review_dataset(store, run_id)


def test_dataset_holds_the_scan_worst_first(scanned, review_ds):
    store, run_id, flipped, root, _, _ = scanned
    n_train = len(open_source("synthetic", root).records("train"))
    assert len(review_ds) == n_train
    worst = review_ds.load_saved_view("worst-first").first()
    assert Path(worst.filepath).stem == flipped
    labels = [d.label for d in worst.findings.detections]
    assert labels[0] == "hair->nose"
    det = worst.findings.detections[0]  # bbox relative to the 128 px label frame, crop mask
    with store.session() as s:
        x, y, w, h = s.get(repo.Finding, det["finding_id"]).bbox
    assert det.bounding_box == pytest.approx([x / 128, y / 128, w / 128, h / 128])
    assert det.mask.shape == (h, w) and det.mask.any() and det["kind"] == "flip"
    for field in ("ground_truth", "teacher"):
        assert Path(worst[field].mask_path).exists()
    assert Path(worst.suspicion.map_path).exists()
    assert review_ds.default_mask_targets[NOSE] == "nose"
    assert "hair-to-nose" in review_ds.list_saved_views()
    assert len(review_ds.load_saved_view("hair-to-nose")) == 1


def test_tags_land_in_decisions_once_and_survive_a_rebuild(scanned, review_ds):
    from labelaudit.review import build_review_dataset, sync_decisions

    store, run_id, flipped, *_ = scanned
    worst = review_ds.load_saved_view("worst-first").first()
    det = worst.findings.detections[0]
    det.tags = ["accept"]
    worst.save()
    other = review_ds.load_saved_view("worst-first").skip(3).first()
    other.tags.append("reject")
    other.save()
    assert sync_decisions(store, review_ds) == 2
    assert sync_decisions(store, review_ds) == 0  # idempotent
    with store.session() as s:
        dec = repo.decisions_for_run(s, s.get(repo.Run, run_id))
        assert dec.findings[det["finding_id"]].verdict == "accept"
        assert dec.findings[det["finding_id"]].source == "fiftyone"
        assert dec.images[other["image_id"]].verdict == "reject"
    # a rebuild (after a rescan) keeps the reviewers' tags
    ds = build_review_dataset(store, run_id)
    again = ds.load_saved_view("worst-first").first()
    assert again.findings.detections[0].tags == ["accept"]


def test_the_findings_view_has_one_tile_per_finding_and_a_tile_tag_decides_it_alone(fiftyone_home,
                                                                                   tmp_path):
    """`review --findings`: one patch per finding, highest p_error first; tagging one tile (as
    the App's tag button does on a selection) records a decision on that finding only."""
    from labelaudit.review import FINDINGS_VIEW, build_review_dataset, sync_decisions

    root = make_dataset(tmp_path / "data", n=16)
    stems = [r.id for r in open_source("synthetic", root).records("train")]
    for stem, (a, b) in zip(stems[1:4], [(NOSE, HAIR), (HAIR, NOSE), (NOSE, 1)]):
        plant_flip(root, stem, a, b)
    res = run_scan(ScanOptions(run_dir=make_run(tmp_path / "run", root), db_url=str(tmp_path / "f.db"),
                               progress=False, scorer="rules"), predict=oracle_predictor(root))
    store, run_id = open_db(res.db_url), res.run_id
    review_ds = build_review_dataset(store, run_id, name="labelaudit-test-findings-view")
    view = review_ds.load_saved_view(FINDINGS_VIEW)
    every = [d for sm in review_ds for d in (sm.findings.detections if sm.findings else [])]
    assert len(view) == len(every) > 1
    scores = [p.findings.confidence for p in view]
    assert scores == sorted(scores, reverse=True)
    tile = view.skip(1).first()
    view.select(tile.id).tag_labels("reject", label_fields="findings")
    assert sync_decisions(store, review_ds) == 1
    with store.session() as s:
        dec = repo.decisions_for_run(s, s.get(repo.Run, run_id))
    assert dec.findings[tile.findings["finding_id"]].verdict == "reject"
    tagged = [d["finding_id"] for sm in review_ds for d in (sm.findings.detections if sm.findings else [])
              if "reject" in d.tags]
    assert tagged == [tile.findings["finding_id"]]
    store.close()


def test_decide_from_the_cli(scanned):
    store, run_id, _, _, run, db = scanned
    with store.session() as s:
        fid = next(repo.iter_findings(s, s.get(repo.Run, run_id))).id
    res = CliRunner().invoke(app, ["decide", str(fid), "--reject", "--db", db])
    assert res.exit_code == 0, res.output
    with store.session() as s:
        assert repo.decisions_for_run(s, s.get(repo.Run, run_id)).findings[fid].verdict == "reject"
    bad = CliRunner().invoke(app, ["decide", str(fid), "999999", "--accept", "--db", db])
    assert bad.exit_code == 2 and "no finding with id 999999" in bad.output
    with store.session() as s:  # nothing recorded when any id is unknown
        assert repo.decisions_for_run(s, s.get(repo.Run, run_id)).findings[fid].verdict == "reject"


def test_a_stale_tag_does_not_overturn_a_later_decision(scanned, review_ds):
    from labelaudit.review import sync_decisions

    store, run_id, *_ = scanned
    sample = review_ds.load_saved_view("worst-first").skip(5).first()
    sample.tags.append("accept")
    sample.save()
    assert sync_decisions(store, review_ds) == 1
    with store.session() as s:  # a later decision from the shell on the same image
        repo.record_decision(s, image_id=sample["image_id"], verdict="reject", source="cli")
    assert sync_decisions(store, review_ds) == 0

    def in_force():
        with store.session() as s:
            return repo.decisions_for_run(s, s.get(repo.Run, run_id)).images[sample["image_id"]]
    assert (in_force().verdict, in_force().source) == ("reject", "cli")
    sample.tags = ["relabel"]  # a new verdict in the App does count
    sample.save()
    assert sync_decisions(store, review_ds) == 1
    assert (in_force().verdict, in_force().source) == ("relabel", "fiftyone")


def test_review_command_builds_and_syncs_without_the_app(scanned, review_ds):
    from labelaudit.review import dataset_name

    store, run_id, _, _, _, db = scanned
    res = CliRunner().invoke(app, ["review", "--db", db, "--no-launch", "--sync", "--top", "4"])
    assert res.exit_code == 0, res.output
    name = dataset_name(run_id, store.store_id)
    assert f"review dataset {name}:" in res.output and "worst-first" in res.output
    assert f"http://127.0.0.1:5151/datasets/{name}" in res.output
    assert "0 decisions recorded from the tags" in res.output  # all synced by the tests above
    assert len(review_ds) == len(review_ds.distinct("image_id"))  # updated, not duplicated


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_readme_loop_from_relative_paths_shows_every_layer_in_the_app(fiftyone_home, tmp_path,
                                                                          monkeypatch):
    """The README's loop typed with relative paths in a project folder (data, run, store), then
    the App served from another folder and opened in headless Chromium (Playwright): every mask
    the grid asks for (given, teacher, suspicion) answers 200 with non-empty pixels, none 404s,
    and the page shows coloured masks. Before the store kept absolute paths, the App resolved
    `runs/a/...` from its own folder and 197 media requests answered 404."""
    import cv2
    import numpy as np
    from playwright.sync_api import sync_playwright
    from urllib.parse import parse_qs, urlparse

    import fiftyone as fo

    from labelaudit.review import launch

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "chromium is missing: scripts/setup.sh installs it (apt-get install chromium)"
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    project.mkdir(), elsewhere.mkdir()
    monkeypatch.chdir(project)
    runner = CliRunner()
    res = runner.invoke(app, ["synth", "--out", "data/synth", "--n", "12", "--size", "64", "--seed", "4"])
    assert res.exit_code == 0, res.output
    make_run(Path("runs/a"), Path("data/synth"))
    run_scan(ScanOptions(run_dir=Path("runs/a"), db_url="runs/a/labelaudit.db", progress=False,
                         scorer="rules"), predict=oracle_predictor(Path("data/synth")))
    res = runner.invoke(app, ["review", "--run", "runs/a", "--no-launch", "--name", "labelaudit-test-relative"])
    assert res.exit_code == 0, res.output
    monkeypatch.chdir(elsewhere)
    ds = fo.load_dataset("labelaudit-test-relative")
    # the test turns on the two layers a reviewer toggles on with one click each
    ds.app_config.active_fields = fo.ActiveFields(paths=["ground_truth", "teacher", "suspicion", "findings"])
    ds.save()
    port = _free_port()
    launch(ds, port=port)
    url = f"http://127.0.0.1:{port}/datasets/{ds.name}"
    _wait_for(url)
    media: dict[str, tuple[int, str]] = {}  # file the page asked for -> (status, url)

    def keep(response):
        if urlparse(response.url).path.endswith("/media"):
            path = parse_qs(urlparse(response.url).query).get("filepath", [""])[0]
            media[path] = (response.status, response.url)

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.on("response", keep)
        page.goto(url, wait_until="load", timeout=120_000)
        page.get_by_text("Dismiss").click(timeout=30_000)  # FiftyOne's Enterprise advert
        deadline = time.time() + 90  # the App keeps a connection open: wait for the masks
        while time.time() < deadline and not all(any(f"/{k}/" in p for p in media)
                                                 for k in ("labels", "teacher", "suspicion")):
            page.wait_for_timeout(1000)
        page.wait_for_timeout(3000)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "review-app.png"))
        page.goto(f"{url}?view=findings-first", wait_until="load", timeout=120_000)
        page.wait_for_timeout(8000)
        page.screenshot(path=str(ARTIFACTS / "review-findings.png"))  # the README's picture
        browser.close()
    failed = {p: st for p, (st, _) in media.items() if st >= 400}
    assert not failed, failed
    for layer in ("labels", "teacher", "suspicion"):  # what the server sent the page, fetched again
        urls = [u for p, (_, u) in media.items() if f"/{layer}/" in p]
        assert urls, (layer, sorted(media))
        pixels = [cv2.imdecode(np.frombuffer(urllib.request.urlopen(u, timeout=10).read(), np.uint8),
                               cv2.IMREAD_UNCHANGED) for u in urls]
        assert all(px is not None for px in pixels) and any(px.any() for px in pixels), layer
    shot = cv2.imread(str(ARTIFACTS / "review-app.png"))
    colours = len(np.unique(shot.reshape(-1, 3) // 16, axis=0))
    assert shot.std() > 20 and colours > 200, (shot.std(), colours)


def _wait_for(url: str, seconds: float = 90) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            time.sleep(1)
    pytest.fail(f"the App did not answer at {url}")


def test_a_review_dataset_is_bound_to_its_store(scanned, review_ds, tmp_path):
    """Two stores, both with scan run 1: two datasets; tags never cross into the other store."""
    from labelaudit.review import build_review_dataset, sync_decisions
    from labelaudit.store import StoreError

    store, run_id, _, root, run, _ = scanned
    other = open_db(tmp_path / "other.db")
    res = run_scan(ScanOptions(run_dir=run, db_url=str(tmp_path / "other.db"), progress=False,
                               scorer="rules", maps=False), predict=oracle_predictor(root))
    assert res.run_id == run_id
    theirs = build_review_dataset(other, res.run_id)
    assert theirs.name != review_ds.name
    with pytest.raises(StoreError, match="belongs to the store at"):
        sync_decisions(other, review_ds)
    with pytest.raises(StoreError, match="belongs to the store at"):
        build_review_dataset(store, run_id, name=theirs.name)
    sample = theirs.first()
    sample.tags.append("reject")
    sample.save()
    with store.session() as s:
        before = len(repo.decisions_for_run(s, s.get(repo.Run, run_id)).images)
    assert sync_decisions(other, theirs) == 1
    with other.session() as s:
        assert repo.decisions_for_run(s, s.get(repo.Run, res.run_id)).images[sample["image_id"]].verdict == "reject"
    with store.session() as s:
        assert len(repo.decisions_for_run(s, s.get(repo.Run, run_id)).images) == before
    other.close()


@pytest.mark.parametrize("signal_after, nth", [("review dataset", 7), ("App: ", 6)])
def test_sigterm_to_review_keeps_the_tags_and_stops_the_app(scanned, review_ds, fiftyone_home,
                                                            signal_after, nth):
    """A tag not yet synced, then `labelaudit review` stopped by SIGTERM while the App starts
    (after the dataset line) or once it runs: the tag is a decision, and no App server or
    MongoDB that the review started is left running."""
    import signal

    import psutil

    store, run_id, *_ , db = scanned
    sample = review_ds.load_saved_view("worst-first").skip(nth).first()  # one image per case
    sample.tags.append("relabel")
    sample.save()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "FIFTYONE_DATABASE_DIR": fiftyone_home}
    proc = subprocess.Popen([sys.executable, "-m", "labelaudit", "review", "--db", db,
                             "--port", str(_free_port())], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)
    lines, deadline = [], time.time() + 120
    while time.time() < deadline:
        line = proc.stdout.readline()
        lines.append(line)
        if line.startswith(signal_after) or not line:
            break
    assert lines[-1].startswith(signal_after), "".join(lines)
    children = psutil.Process(proc.pid).children(recursive=True)
    proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:  # end it and what it started, so no later test meets them
        for p in [*psutil.Process(proc.pid).children(recursive=True), psutil.Process(proc.pid)]:
            p.kill()
        out, _ = proc.communicate()
        pytest.fail("the review did not stop on SIGTERM:\n" + "".join(lines) + out)
    assert proc.returncode == 0, "".join(lines) + out
    assert "1 decisions recorded from the tags" in out, out
    with store.session() as s:
        dec = repo.decisions_for_run(s, s.get(repo.Run, run_id))
        assert dec.images[sample["image_id"]].verdict == "relabel"
    assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    review_ds.reload()  # the review process updated the samples behind this one


def test_decisions_made_elsewhere_show_as_tags(scanned, review_ds):
    """A new review of a scan shows every decision in force (from `decide`, from earlier
    reviews) as the tag of its finding or image, and syncing them records nothing new."""
    from labelaudit.review import build_review_dataset, sync_decisions

    store, run_id, *_ = scanned
    det = review_ds.load_saved_view("worst-first").first().findings.detections[-1]
    with store.session() as s:
        repo.record_decision(s, finding_id=det["finding_id"], verdict="reject", source="cli")
        image_id = review_ds.load_saved_view("worst-first").skip(1).first()["image_id"]
        repo.record_decision(s, image_id=image_id, verdict="relabel", source="cli")
        dec = repo.decisions_for_run(s, s.get(repo.Run, run_id))
    ds = build_review_dataset(store, run_id, name="labelaudit-test-fresh-review")
    tags = {d["finding_id"]: d.tags for sm in ds for d in (sm.findings.detections if sm.findings else [])}
    assert tags[det["finding_id"]] == ["reject"]
    assert {k: t for k, t in tags.items() if t} == {k: [d.verdict] for k, d in dec.findings.items()}
    images = {sm["image_id"]: sm.tags for sm in ds}
    assert images[image_id] == ["relabel"]
    assert {k: t for k, t in images.items() if t} == {k: [d.verdict] for k, d in dec.images.items()}
    assert sync_decisions(store, ds) == 0  # shown, not recorded a second time


def test_the_app_and_the_report_share_the_class_colours(review_ds):
    from labelaudit.report import palette

    scheme = review_ds.app_config.color_scheme
    app_colours = {c["intTarget"]: c["color"] for c in scheme.default_mask_targets_colors}
    report = ["#%02x%02x%02x" % tuple(int(v) for v in rgb) for rgb in palette(len(app_colours))]
    assert [app_colours[i] for i in range(len(app_colours))] == report
    assert len(set(report)) == len(report) == 11  # LaPa's 11 classes, all distinct
    assert review_ds.app_config.active_fields.paths == ["ground_truth", "findings"]


def test_a_stop_signal_swallowed_while_the_app_starts_still_ends_the_review():
    """FiftyOne polls its App server under a bare `except:` while it launches: a SIGTERM that
    lands there is caught by it, yet the review stops at its next look, syncing once more."""
    import signal

    from labelaudit.review import serve, stop_signals

    def start() -> None:  # the launch, with the signal arriving in library code that eats it
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.5)
        except:  # noqa: E722 - what the library does
            pass

    syncs = []

    def sync() -> int:
        syncs.append(1)
        assert len(syncs) < 5, "the review went on serving after SIGTERM"
        return 1

    with stop_signals():
        assert serve(sync, start, every=0.01) == 1  # only the final sync: stopped before the first
    assert len(syncs) == 1
