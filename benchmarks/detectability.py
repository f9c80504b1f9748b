#!/usr/bin/env python
"""Which kinds of label error a teacher can see at all, apart from whether it memorised them.

    python benchmarks/detectability.py --run RUN --root SYNTHETIC_SET [--out FILE.md]

The same calibrated scorer (the run's stored calibration) judges three kinds of label map:

- out of sample: the val split's clean labels, each copy with one fresh event of one annotator
  kind (`data.synthetic.annotator`), against the clean val labels themselves;
- in sample, not memorised: the same on clean training images (the teacher trained on their
  clean labels, never on these errors);
- memorised: the set's own noisy training labels, which the teacher trained on.

Per condition and kind: the true regions (connected changed pixels, the benchmark's rule), the
share that some candidate matches at IoU >= 0.3 whatever its score (what the candidates allow),
the share matched by a candidate at p_error >= 0.5, and the image AUROC of 1 - label_quality
against the condition's clean maps. Per condition: the ECE of p_error over the candidates at
p >= 0.1 (truth: matches a true region), the sum of p_error against the matched candidates.
Where out of sample is as low as memorised, more data or a teacher that memorises less will not
find that kind; the teacher's own accuracy at that scale is the limit.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from labelaudit.bench.scoring import RegionCounts

SURE = 0.5  # "matched at p_error >= SURE"


@dataclass
class Condition:
    """Findings of one condition, accumulated map by map."""

    name: str
    regions: RegionCounts = field(default_factory=RegionCounts)  # every candidate, with its p
    images: list = field(default_factory=list)  # (1 - label_quality, kinds present)


def _teacher_maps(run: Path, root: Path):
    """(calibrator, class set, {split: [(probs, given label, clean label, noise-type map)]})."""
    from torch.utils.data import DataLoader

    import labelaudit.scan.run as scan
    from labelaudit.data.io import read_label
    from labelaudit.scan.calibrate import calibration_path
    from labelaudit.scan.calibrator import Calibrator
    from labelaudit.scan.forward import ScanDataset, scan_collate, teacher_predictor

    opts = scan.ScanOptions(run_dir=run, root=root, progress=False)
    teachers = opts.teachers()
    source = opts.source(teachers)
    predict = teacher_predictor(teachers, source.classes)
    cal = Calibrator.load(calibration_path(run, teachers.name))
    out = {}
    for split in ("val", "train"):
        ds = ScanDataset(source, split, size=teachers.size, augment=False,
                         channel_order=teachers.channel_order)
        rows = []
        for batch in DataLoader(ds, batch_size=8, collate_fn=scan_collate):
            recs = [ds.records[i] for i in batch["index"].tolist()]
            for probs, given, edges, rec in zip(predict(0, batch), batch["label_orig"],
                                                batch["edges"], recs):
                clean = source.load_clean_label(rec)
                f = root / "noise_types" / f"{Path(rec.clean_label_path).stem}.png"
                types = read_label(f) if f.exists() else np.zeros_like(clean)
                rows.append((probs, given, clean, types, edges))
        out[split] = rows
    return cal, source.classes, out


def _judge(cond: Condition, cal, probs: np.ndarray, label: np.ndarray, types: np.ndarray,
           edges: np.ndarray) -> None:
    """Score one label map against the teacher and match its candidates to the true regions."""
    from labelaudit.bench.scoring import true_regions
    from labelaudit.confidence import self_confidence
    from labelaudit.scan.calibrator import FLOOR
    from labelaudit.scan.candidates import find_candidates
    from labelaudit.scan.score import top_class

    pred, top = top_class(probs)
    cands = find_candidates(probs, label, self_confidence(probs, label), pred, top, cal.context,
                            edges)
    p = cal.predict(cands.features, False)
    masks = [cands.ids == j + 1 for j in range(len(cands))]
    truth = true_regions(types)
    cond.regions.update(masks, truth, list(p))
    cond.images.append((1.0 - float(np.prod(1.0 - p[p >= FLOOR])), {k for _, k in truth}))


def _fresh(cond: Condition, cal, classes, rows, copies: int, rng: np.random.Generator) -> None:
    """Each clean label as it is, then `copies` copies per annotator kind with one fresh event."""
    from labelaudit.data.synthetic.noise import ANNOTATOR_TYPES, inject_noise

    for probs, _, clean, _, edges in rows:
        _judge(cond, cal, probs, clean, np.zeros_like(clean), edges)
        for kind in ANNOTATOR_TYPES:
            for _ in range(copies):
                got = inject_noise(clean, classes, rng, (kind,), 1)
                if got is not None:
                    _judge(cond, cal, probs, got[0], got[1], edges)


def _lines(cond: Condition) -> list[str]:
    from labelaudit.bench.scoring import auroc
    from labelaudit.data.synthetic.noise import ANNOTATOR_TYPES
    from labelaudit.scan.calibrator import FLOOR, expected_calibration_error

    p, hit = cond.regions.outcomes()
    shown = p >= FLOOR
    score = np.array([s for s, _ in cond.images])
    clean = np.array([not kinds for _, kinds in cond.images])
    out = [f"**{cond.name}**: {len(cond.images)} label maps ({int(clean.sum())} clean), "
           f"{len(p)} candidates, ECE {expected_calibration_error(p[shown], hit[shown]):.3f}, "
           f"sum of p_error {p.sum():.0f} vs {int(hit.sum())} candidates on an error", "",
           "| kind | images | true regions | any candidate | candidate at p >= 0.5 | image AUROC |",
           "|---|---|---|---|---|---|"]
    for kind in ANNOTATOR_TYPES:
        has = np.array([kind in kinds for _, kinds in cond.images])
        if not has.any():
            continue
        both = has | clean
        out.append(f"| {kind} | {int(has.sum())} | {cond.regions.true_total.get(kind, 0)} | "
                   f"{cond.regions.recall(kind):.3f} | {cond.regions.listed(SURE, kind)[1]:.3f} | "
                   f"{auroc(score[both], has[both]):.3f} |")
    return out + [""]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--root", type=Path, required=True, help="the synthetic set the run trained on")
    ap.add_argument("--copies", type=int, default=3, help="copies per kind of each val image")
    ap.add_argument("--train-images", type=int, default=60, help="clean training images used")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    cal, classes, maps = _teacher_maps(a.run, a.root)
    rng = np.random.default_rng(a.seed)
    conds = [Condition(n) for n in (
        "out of sample (val, fresh errors)", "in sample, not memorised (clean training "
        "images, fresh errors)", "memorised (the set's own training noise)")]
    _fresh(conds[0], cal, classes, maps["val"], a.copies, rng)
    clean_train = [r for r in maps["train"] if not r[3].any()][:a.train_images]
    _fresh(conds[1], cal, classes, clean_train, max(1, a.copies - 1), rng)
    for probs, given, _, types, edges in maps["train"]:
        _judge(conds[2], cal, probs, given, types, edges)
    text = "\n".join([f"`python benchmarks/detectability.py --run {a.run} --root {a.root}`", ""]
                     + [line for c in conds for line in _lines(c)])
    print(text)
    if a.out:
        a.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
