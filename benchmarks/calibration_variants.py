#!/usr/bin/env python
"""Ways of fitting the calibrated scorer, compared on one teacher's training split.

    python benchmarks/calibration_variants.py --run RUN [--out FILE.json]

The run must come from a synthetic set (its labels_clean/ say which training pixels are wrong)
and have planted errors (`labelaudit train`, data.plant > 0). One forward pass over the val
split and the training split; the calibration rows are made once (the val copies, the planted
training images), and each variant is fitted on them and scored on the candidates of the
training images that were not planted, against their true errors (a candidate is an error when
it overlaps a connected region of wrong pixels with IoU >= 0.3, as in the calibration):

- val: the val copies only (the calibration before planted errors);
- flag: val copies + planted rows (balanced weights) with the `trained` feature, scored as
  trained (what `labelaudit calibrate` fits);
- mix: the same rows, the `trained` feature left out;
- planted: the planted rows only;
- platt: the val model's logit mapped by a logistic regression fitted on the planted rows;
- stack: the val model's logit added as a feature of a model fitted on the planted rows.

Per variant: ECE of p_error over the candidates, AUC, recall at precision >= 0.8 of the ranked
candidates, image AP (label_quality = prod(1 - p) over the candidates at p >= FLOOR), and the
expected number of errors (sum of p) against the true count.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def rows_and_eval(run: Path):
    """(x, y) of the calibration rows and the evaluation candidates (features, truth,
    image index) of the training images that were not planted, with the image truth."""
    from labelaudit.confidence import self_confidence
    from labelaudit.scan import calibrate as C
    from labelaudit.scan.candidates import find_candidates
    from labelaudit.scan.forward import ScanDataset, teacher_predictor
    from labelaudit.scan.score import top_class
    from labelaudit.teachers import open_teachers

    teachers = open_teachers(run, "csr")
    source = teachers.data.open_source()
    predict = teacher_predictor(teachers, source.classes)
    opts = C.CalibrationOptions(progress=False)
    planted = C.planted_of(run, teachers)
    if planted is None:
        raise SystemExit(f"{run}: no planted errors (train with data.plant > 0)")
    rows = C.calibration_rows(source, teachers.size, teachers.channel_order, predict, 0, opts,
                              planted)
    ctx = rows.context
    train = ScanDataset(source, "train", size=teachers.size, augment=False,
                        channel_order=teachers.channel_order)
    train.records = [r for r in train.records if r.id not in planted]
    clean = {r.id: source.load_clean_label(r) for r in train.records}
    feats, truth, image, noisy = [], [], [], []
    for i, (probs, label, edges, rid) in enumerate(C._images(train, predict, 0, opts, "train")):
        pred, top = top_class(probs)
        cands = find_candidates(probs, label, self_confidence(probs, label), pred, top, ctx, edges)
        wrong = (label != clean[rid]) & (label != 255)
        feats.append(cands.features)
        truth.append(C.candidate_truth(cands, wrong))
        image.append(np.full(len(cands), i))
        noisy.append(bool(wrong.any()))
    return (rows.x, rows.y), (np.concatenate(feats), np.concatenate(truth), np.concatenate(image),
                              np.asarray(noisy))


def variants(x, y):
    """name -> function(features (n, F)) -> p, each fitted on the calibration rows."""
    from sklearn.linear_model import LogisticRegression

    from labelaudit.scan.calibrate import _balance
    from labelaudit.scan.calibrator import fit_model, logit, with_trained

    trained = x[:, -1] > 0
    w = _balance(trained)
    val = fit_model(x[~trained], y[~trained])
    flag = fit_model(x, y, 0, w)
    mix = fit_model(x[:, :-1], y, 0, w)
    only = fit_model(x[trained], y[trained])
    la = logit(val.predict_proba(x[trained])[:, 1])[:, None]
    platt = LogisticRegression().fit(la, y[trained])
    stack = fit_model(np.hstack([x[trained][:, :-1], la]), y[trained])

    def val_p(f):
        return val.predict_proba(with_trained(f, False))[:, 1]
    return {
        "val": val_p,
        "flag": lambda f: flag.predict_proba(with_trained(f, True))[:, 1],
        "mix": lambda f: mix.predict_proba(f)[:, 1],
        "planted": lambda f: only.predict_proba(with_trained(f, True))[:, 1],
        "platt": lambda f: platt.predict_proba(logit(val_p(f))[:, None])[:, 1],
        "stack": lambda f: stack.predict_proba(np.hstack([f, logit(val_p(f))[:, None]]))[:, 1],
    }


def recall_at_precision(p, t, target=0.8) -> float:
    order = np.argsort(-p, kind="stable")
    hits = np.cumsum(t[order])
    prec = hits / np.arange(1, len(t) + 1)
    ok = prec >= target
    return float(hits[ok].max() / max(1, t.sum())) if ok.any() else 0.0


def score(p, t, image, noisy) -> dict:
    from sklearn.metrics import average_precision_score, roc_auc_score

    from labelaudit.scan.calibrator import FLOOR, expected_calibration_error

    keep = p >= FLOOR
    quality = np.ones(len(noisy))
    np.multiply.at(quality, image[keep], 1 - p[keep])
    return {"ece": expected_calibration_error(p, t), "auc": float(roc_auc_score(t, p)),
            "r_at_p08": recall_at_precision(p, t),
            "image_ap": float(average_precision_score(noisy, 1 - quality)),
            "expected_errors": float(p[keep].sum()), "true_errors": int(t.sum())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    (x, y), (f, t, image, noisy) = rows_and_eval(a.run)
    trained = x[:, -1] > 0
    print(f"rows: {len(y)} ({int(y.sum())} errors), planted {int(trained.sum())} "
          f"({int(y[trained].sum())} errors); evaluation: {len(t)} candidates, {int(t.sum())} "
          f"errors, {int(noisy.sum())} of {len(noisy)} images noisy")
    out = {name: score(fn(f), t, image, noisy) for name, fn in variants(x, y).items()}
    print("| variant | ECE | AUC | R @ P>=0.8 | image AP | expected / true errors |")
    print("|---|---|---|---|---|---|")
    for name, s in out.items():
        print(f"| {name} | {s['ece']:.3f} | {s['auc']:.3f} | {s['r_at_p08']:.3f} | "
              f"{s['image_ap']:.3f} | {s['expected_errors']:.0f} / {s['true_errors']} |")
    if a.out:
        a.out.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
