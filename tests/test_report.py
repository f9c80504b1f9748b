"""The report's charts: cleanlab's image scores beside ours, from the scan's own maps."""
from __future__ import annotations

import numpy as np
from scanhelp import make_dataset, make_run, oracle_predictor, plant_flip

from labelaudit.data import open_source
from labelaudit.scan import ScanOptions, run_scan
from labelaudit.store import open_db

NOSE, HAIR = 6, 10


def test_cleanlab_curve_is_cleanlab_on_the_teacher_probabilities(tmp_path):
    """The report rebuilds cleanlab's softmin input from the stored suspicion maps; it must give
    cleanlab's own scores on the teacher's full probabilities and the given labels (to 8 bits)."""
    from cleanlab.segmentation.rank import get_label_quality_scores

    from labelaudit.report import _cleanlab_softmin, _scored, make_report

    root = make_dataset(tmp_path / "data", n=16)
    src = open_source("synthetic", root)
    recs = {str(src.image_relpath(r)): r for r in src.records("train")}
    for rec in list(recs.values())[2:4]:
        plant_flip(root, rec.id, NOSE, HAIR)
    predict = oracle_predictor(root)
    res = run_scan(ScanOptions(run_dir=make_run(tmp_path / "run", root), db_url=str(tmp_path / "a.db"),
                               progress=False, scorer="rules"), predict=predict)
    store = open_db(res.db_url)
    scored = _scored(store, res.run_id)
    got = _cleanlab_softmin(store, res.run_id, scored)
    want = []
    for im, _ in scored:
        rec = recs[im.image_relpath]
        probs = predict(0, {"id": [rec.id]})[0]
        want.append(get_label_quality_scores(src.load_label(rec)[None].astype(int), probs[None],
                                             verbose=False)[0][0])
    assert got is not None and len(got) == len(scored) == 12
    np.testing.assert_allclose(got, want, atol=0.005)
    assert np.ptp(want) > 0.05  # the planted flips make a difference the check can see
    rep = make_report(store, tmp_path / "rep", run_id=res.run_id)
    assert (tmp_path / "rep" / "pr_curve.png") in rep.files
    store.close()
