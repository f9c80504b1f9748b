"""Build or update the FiftyOne dataset of one scan run; masks stay on disk."""
from __future__ import annotations

import logging
from pathlib import Path

from labelaudit.review.sync import VERDICT_TAGS, bound_dataset
from labelaudit.scan.layout import ScanMaps
from labelaudit.scan.summary import resolve_scan_run
from labelaudit.store import Run, Store, repo

log = logging.getLogger(__name__)

LABEL_FIELDS = ["ground_truth", "teacher", "findings", "suspicion"]
FINDINGS_VIEW = "findings-first"  # the saved view of one tile per finding


def dataset_name(run_id: int, store_id: str) -> str:
    """The review dataset of scan `run_id` of the store with `store_id`: run ids start at 1 in
    every store, so the name carries the store's id too."""
    return f"labelaudit-{store_id[:12]}-scan-{run_id}"


def _given_label_png(source, rec, out: Path) -> Path:
    """The given label as an index PNG in the review cache (multi-file formats are merged)."""
    from labelaudit.data import write_label

    if not rec.label_parts and rec.label_path.suffix.lower() == ".png":
        return rec.label_path
    parts = [p.stat().st_mtime for p in rec.label_parts if p.exists()]
    if not out.exists() or out.stat().st_mtime < max(parts, default=0.0):  # stale: re-merge
        write_label(out, source.load_label(rec))
    return out


def build_review_dataset(store: Store, run_id: int | None = None, *, top: int | None = None,
                         name: str | None = None, overwrite: bool = False):
    """The persistent review dataset of scan `run_id` (default: latest), created or updated.

    One sample per scored image (the worst `top` when given) with `ground_truth` and `teacher`
    segmentations, the `suspicion` heat map, `findings` detections labelled "given->suggested",
    `label_quality`; saved views "worst-first" (images), "findings-first" (one tile per
    finding, highest p_error first) and one per confusion pair. Re-running updates the
    samples (matched by image id) and keeps the reviewers' tags.
    """
    import fiftyone as fo

    run_id = resolve_scan_run(store, run_id)
    name = name or dataset_name(run_id, store.store_id)
    if overwrite and fo.dataset_exists(name):
        fo.delete_dataset(name)
    ds = bound_dataset(name, store)
    with store.session() as s:
        run = s.get(Run, run_id)
        names = list(run.dataset.class_names)
        maps = ScanMaps.of(run)
        source = repo.open_dataset_source(run.dataset)
        worst = repo.top_images(s, run, top if top else 10**9)
        found = repo.findings_for_images(s, run, [sc.image_id for sc in worst])
        stored = repo.scan_map_pngs(s, run, [sc.image_id for sc in worst])
        rows = [(sc.image.id, sc.image.image_relpath, sc.label_quality, (sc.image.height, sc.image.width),
                 found[sc.image_id]) for sc in worst]
        pairs = repo.confusion_pairs(s, run)
        decided = repo.decisions_for_run(s, run)  # shown as tags: what is decided already
        decided_findings, decided_images = decided.verdicts()
    by_rel = source.records_by_relpath()
    maps.given(0).parent.mkdir(parents=True, exist_ok=True)
    existing = {sm["image_id"]: sm for sm in ds.select_fields("image_id")} if len(ds) else {}
    new = []
    for image_id, rel, quality, frame, findings in rows:
        rec = by_rel.get(rel)
        if rec is None:
            log.warning("%s: no longer in the dataset, not reviewed", rel)
            continue
        fields = _sample_fields(source, rec, image_id, frame, findings, names, maps,
                                stored.get(image_id))
        fields.update({"label_quality": float(quality), "image_id": int(image_id), "scan_run_id": run_id})
        for d in fields["findings"].detections:
            d.tags = [decided_findings[d["finding_id"]]] if d["finding_id"] in decided_findings else []
        old = existing.get(image_id)
        if old is not None:
            _update_sample(ds[old.id], fields, decided_images.get(image_id))
        else:
            tags = [decided_images[image_id]] if image_id in decided_images else []
            new.append(fo.Sample(filepath=str(rec.image_path), tags=tags, **fields))
    if new:
        ds.add_samples(new)
    _configure(ds, names, pairs)
    log.info("review dataset %s: %d samples", name, len(ds))
    return ds


def _sample_fields(source, rec, image_id: int, frame, findings, names, maps: ScanMaps,
                   stored: tuple[bytes, bytes] | None) -> dict:
    """The label fields of one image's sample (masks stay on disk: the scan's stored maps are
    written into its maps folder once)."""
    import fiftyone as fo

    h, w = frame
    if findings and h is None:  # the scan stores the label frame; older stores may not
        h, w = source.load_label(rec).shape[:2]
    dets = [fo.Detection(label=f"{names[f.given_class]}->{names[f.suggested_class]}",
                         bounding_box=[f.bbox[0] / w, f.bbox[1] / h, f.bbox[2] / w, f.bbox[3] / h],
                         mask=f.mask(), confidence=float(f.score), finding_id=int(f.id), kind=f.kind)
            for f in findings]
    teacher, suspicion = maps.files(image_id, stored)
    return {
        "ground_truth": fo.Segmentation(mask_path=str(_given_label_png(source, rec, maps.given(image_id)))),
        "teacher": fo.Segmentation(mask_path=str(teacher)),
        "suspicion": fo.Heatmap(map_path=str(suspicion), range=[0, 255]),
        "findings": fo.Detections(detections=dets),
    }


def _update_sample(sample, fields: dict, decided: str | None = None) -> None:
    """New field values; the tags on the sample and on findings still found are kept, and a
    decision made elsewhere (`decide`, an earlier scan) is shown where the reviewer tagged nothing."""
    tags = {d["finding_id"]: list(d.tags) for d in (sample["findings"].detections
                                                    if sample["findings"] else [])}
    for d in fields["findings"].detections:
        mine = tags.get(d["finding_id"], [])
        d.tags = mine if any(t in VERDICT_TAGS for t in mine) else mine + list(d.tags)
    if decided and not any(t in VERDICT_TAGS for t in sample.tags):
        sample.tags.append(decided)
    for k, v in fields.items():
        sample[k] = v
    sample.save()


def _configure(ds, names: list[str], pairs) -> None:
    """Class names, the App's active fields and colours, the saved views."""
    import fiftyone as fo
    from fiftyone import ViewField as F

    from labelaudit.data.classes import class_colours

    ds.default_mask_targets = {i: n for i, n in enumerate(names)}
    # the given labels and the findings shown; the teacher and the suspicion one toggle away
    ds.app_config.active_fields = fo.ActiveFields(paths=["ground_truth", "findings"])
    ds.app_config.color_scheme = fo.ColorScheme(
        color_by="value", default_mask_targets_colors=[
            {"intTarget": i, "color": c} for i, c in enumerate(class_colours(len(names)))])
    ds.save()
    views = {"worst-first": ds.sort_by("label_quality"),
             # one tile per finding, most suspicious first: a tag on a tile tags that finding alone
             FINDINGS_VIEW: ds.to_patches("findings").sort_by("findings.confidence", reverse=True)}
    for p in pairs[:20]:
        lbl = f"{names[p.given]}->{names[p.suggested]}"
        views[lbl.replace("->", "-to-")] = ds.filter_labels("findings", F("label") == lbl).sort_by("label_quality")
    for vname, view in views.items():
        if ds.has_saved_view(vname):
            ds.delete_saved_view(vname)
        ds.save_view(vname, view)
