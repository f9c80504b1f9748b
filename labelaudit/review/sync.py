"""Reviewers' tags in FiftyOne -> the decisions table (idempotent)."""
from __future__ import annotations

import logging

from labelaudit.store import Run, Store, StoreError, repo
from labelaudit.store.models import VERDICTS

log = logging.getLogger(__name__)

VERDICT_TAGS = VERDICTS  # a tag of the same name is the verdict


def _verdict(tags) -> str | None:
    """The verdict a set of tags states (the last verdict tag wins), None without one."""
    found = [t for t in tags if t in VERDICT_TAGS]
    return found[-1] if found else None


def _verdicts(session, run_id: int, source: str | None = None
              ) -> tuple[dict[int, str], dict[int, str]]:
    """The verdicts in force for a scan run (from `source` only, when given): per finding id
    and per image id."""
    dec = repo.decisions_for_run(session, session.get(Run, run_id), source=source)
    return dec.verdicts()


def check_store(dataset, store: Store) -> None:
    """Refuse a review dataset that another store's scan made (its tags would land in the
    wrong store)."""
    owner = dataset.info.get("store_id")
    if owner is not None and owner != store.store_id:
        raise StoreError(f"review dataset {dataset.name!r} belongs to the store at "
                         f"{dataset.info.get('store', '?')}, not to {store.location}; review with "
                         "that --db, or give this review another --name")


def bound_dataset(name: str, store: Store):
    """The persistent FiftyOne dataset `name` (created if missing), bound to `store`: one made
    from another store is refused (check_store)."""
    import fiftyone as fo

    ds = fo.load_dataset(name) if fo.dataset_exists(name) else fo.Dataset(name, persistent=True)
    check_store(ds, store)
    ds.info["store_id"], ds.info["store"] = store.store_id, store.location
    ds.save()
    return ds


def sync_decisions(store: Store, dataset) -> int:
    """Record every verdict tag (on finding detections and on samples) not yet in force.

    A tag is recorded when its verdict differs from the decision in force for its target and
    from the last one synced from the App for it: a second call with the same tags records
    none, and a stale tag does not overturn a later `labelaudit decide` on the same target.
    Returns how many decisions were recorded.
    """
    check_store(dataset, store)
    run_ids = dataset.distinct("scan_run_id")
    if not run_ids:
        return 0
    with store.session() as s:
        in_force = {rid: _verdicts(s, rid) for rid in run_ids}
        from_app = {rid: _verdicts(s, rid, source="fiftyone") for rid in run_ids}
    todo: list[dict] = []
    for sample in dataset.select_fields(["findings", "image_id", "scan_run_id"]):
        findings_now, images_now = in_force[sample["scan_run_id"]]
        app_findings, app_images = from_app[sample["scan_run_id"]]
        image_id = int(sample["image_id"])
        v = _verdict(sample.tags)
        if v is not None and v != images_now.get(image_id) and v != app_images.get(image_id):
            todo.append({"image_id": image_id, "verdict": v})
        for d in (sample["findings"].detections if sample["findings"] else []):
            v, fid = _verdict(d.tags), int(d["finding_id"])
            if v is not None and v != findings_now.get(fid) and v != app_findings.get(fid):
                todo.append({"finding_id": fid, "verdict": v})
    for kw in todo:
        with store.session() as s:
            repo.record_decision(s, source="fiftyone", **kw)
    log.info("synced %d decisions from %s", len(todo), dataset.name)
    return len(todo)
