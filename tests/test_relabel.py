"""Relabel for real: a relabel verdict -> Label Studio (the real server) -> a hand correction ->
the exported label. The annotator's edit is posted through Label Studio's own API, as its editor
does when a person submits a brush annotation."""
from __future__ import annotations

import re

import numpy as np
import pytest
from scanhelp import make_dataset, make_run, oracle_predictor, plant_flip
from typer.testing import CliRunner

from labelaudit.cli import app
from labelaudit.data import open_source, read_label
from labelaudit.review.relabel import corrected_label
from labelaudit.scan import ScanOptions, run_scan
from labelaudit.store import open_db, repo

NOSE, HAIR, SKIN = 6, 10, 1
runner = CliRunner()


def test_a_hand_edit_reads_as_changes_to_the_given_label():
    given = np.array([[1, 1, 2],
                      [1, 3, 3],
                      [0, 3, 3]], np.uint8)
    one = given == 1
    three_less = (given == 3) & ~np.eye(3, dtype=bool)  # the annotator erased 3 on the diagonal
    two_more = (given == 2) | (np.arange(9).reshape(3, 3) == 5)  # and painted 2 over a 3
    got = corrected_label(given, [(1, one), (3, three_less), (2, two_more)])
    assert got.tolist() == [[1, 1, 2],
                            [1, 0, 2],
                            [0, 3, 0]]
    # untouched regions give the given label back; a class without regions is erased
    assert np.array_equal(corrected_label(given, [(c, given == c) for c in (1, 2, 3)]), given)
    assert corrected_label(given, [(1, one), (3, given == 3)])[0, 2] == 0
    # painting a class over another without erasing it: the painted class wins there
    assert corrected_label(given, [(1, one | (given == 2)), (2, given == 2), (3, given == 3)])[0, 2] == 1


@pytest.mark.review
@pytest.mark.slow
def test_a_correction_made_in_label_studio_comes_back_and_is_exported(fiftyone_home, label_studio,
                                                                      tmp_path):
    from label_studio_sdk.converter import brush

    root = make_dataset(tmp_path / "data", n=12)
    stem = open_source("synthetic", root).records("train")[3].id
    plant_flip(root, stem, NOSE, HAIR)
    run = make_run(tmp_path / "run", root)
    db = str(tmp_path / "r.db")
    res = run_scan(ScanOptions(run_dir=run, db_url=db, progress=False, scorer="rules"),
                   predict=oracle_predictor(root))
    with open_db(db) as store, store.session() as s:
        top = next(repo.iter_findings(s, s.get(repo.Run, res.run_id)))
        assert (top.given_class, top.suggested_class) == (HAIR, NOSE)
    ls = ["--db", db, "--url", label_studio.url, "--api-key", label_studio.token]
    assert runner.invoke(app, ["decide", str(top.id), "--relabel", "--db", db]).exit_code == 0

    down = runner.invoke(app, ["relabel", "--db", db, "--url", "http://127.0.0.1:9", "--api-key", "x"])
    assert down.exit_code == 2 and "error: Label Studio at http://127.0.0.1:9" in down.output
    bad_key = runner.invoke(app, ["relabel", "--db", db, "--url", label_studio.url, "--api-key", "x"])
    assert bad_key.exit_code == 2 and f"error: Label Studio at {label_studio.url}" in bad_key.output
    sent = runner.invoke(app, ["relabel", *ls])  # the failed tries sent nothing: all goes now
    assert sent.exit_code == 0, sent.output
    project = int(re.search(r"/projects/(\d+)", sent.output).group(1))
    assert "sent 1 images" in sent.output
    tasks = label_studio.get("/api/tasks", project=project, fields="all")
    tasks = tasks["tasks"] if isinstance(tasks, dict) else tasks
    assert len(tasks) == 1 and len(tasks[0]["predictions"]) == 1  # the given label, pre-loaded
    given = read_label(root / "train" / "labels" / f"{stem}.png")
    clean = read_label(root / "train" / "labels_clean" / f"{stem}.png")
    regions = tasks[0]["predictions"][0]["result"]
    shown = {}
    for r in regions:
        flat = brush.decode_rle(r["value"]["rle"]).reshape(r["original_height"], r["original_width"], 4)
        shown[r["value"]["brushlabels"][0]] = flat[:, :, 3] > 0
    assert set(shown) == {n for i, n in enumerate(open_source("synthetic", root).classes.names)
                          if i and (given == i).any()}
    assert np.array_equal(shown["hair"], given == HAIR)

    # the annotator paints the nose back and takes it out of the hair
    nose = clean == NOSE
    edit = []
    for r in regions:
        if r["value"]["brushlabels"] == ["hair"]:
            r = {**r, "value": {**r["value"], "rle": brush.mask2rle((shown["hair"] & ~nose).astype(np.uint8) * 255)}}
        edit.append(r)
    edit.append({**regions[0], "id": "nose-by-hand", "value": {
        "format": "rle", "rle": brush.mask2rle(nose.astype(np.uint8) * 255), "brushlabels": ["nose"]}})
    label_studio.post(f"/api/tasks/{tasks[0]['id']}/annotations", {"result": edit})

    pulled = runner.invoke(app, ["relabel", "--pull", *ls])
    assert pulled.exit_code == 0, pulled.output
    assert "1 corrections recorded" in pulled.output
    again = runner.invoke(app, ["relabel", "--pull", *ls])
    assert "0 corrections recorded" in again.output  # nothing new came back
    assert "nothing new to relabel" in runner.invoke(app, ["relabel", *ls]).output
    out = tmp_path / "fixed"
    exported = runner.invoke(app, ["export", "--db", db, "--out", str(out)])
    assert exported.exit_code == 0, exported.output
    assert "1 hand corrections applied" in exported.output
    assert np.array_equal(read_label(out / "train" / "labels" / f"{stem}.png"), clean)


@pytest.mark.review
@pytest.mark.slow
def test_celebamask_images_go_to_label_studio_at_their_labels_size(fiftyone_home, label_studio,
                                                                   tmp_path):
    """CelebAMask-HQ's images are twice their labels' size: Label Studio gets the image resized
    to the label frame, so an untouched label comes back exactly as given (no correction)."""
    from labelaudit.data.synthetic import generate

    root = tmp_path / "data"
    generate(root, format="celebamask", n=12, size=64, noise_rate=0.0, seed=5, progress=False)
    run = make_run(tmp_path / "run", root)
    db = str(tmp_path / "c.db")
    res = run_scan(ScanOptions(run_dir=run, db_url=db, progress=False, scorer="rules"),
                   predict=oracle_predictor(root))
    with open_db(db) as store, store.session() as s:
        image = repo.top_images(s, s.get(repo.Run, res.run_id), 1)[0].image_id
        repo.record_decision(s, image_id=image, verdict="relabel", source="cli")
    ls = ["--db", db, "--url", label_studio.url, "--api-key", label_studio.token]
    sent = runner.invoke(app, ["relabel", *ls])
    assert sent.exit_code == 0 and "sent 1 images" in sent.output, sent.output
    project = int(re.search(r"/projects/(\d+)", sent.output).group(1))
    tasks = label_studio.get("/api/tasks", project=project, fields="all")
    tasks = tasks["tasks"] if isinstance(tasks, dict) else tasks
    layer = tasks[0]["predictions"][0]["result"][0]
    assert (layer["original_width"], layer["original_height"]) == (64, 64)  # images are 128 px
    pulled = runner.invoke(app, ["relabel", "--pull", *ls])
    assert "0 corrections recorded (1 labels came back unchanged" in pulled.output, pulled.output
