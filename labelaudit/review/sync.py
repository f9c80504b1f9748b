"""Reviewers' tags in FiftyOne -> the decisions table (idempotent)."""
from __future__ import annotations

import logging

from labelaudit.store import Run, Store, repo

log = logging.getLogger(__name__)

VERDICT_TAGS = ("accept", "reject", "relabel")


def _verdict(tags) -> str | None:
    """The verdict a set of tags states (the last verdict tag wins), None without one."""
    found = [t for t in tags if t in VERDICT_TAGS]
    return found[-1] if found else None


def sync_decisions(store: Store, dataset) -> int:
    """Record every verdict tag (on finding detections and on samples) not yet in force.

    Returns how many decisions were recorded; a second call with the same tags records none.
    """
    run_ids = dataset.distinct("scan_run_id")
    if not run_ids:
        return 0
    with store.session() as s:
        in_force = {rid: repo.decisions_for_run(s, s.get(Run, rid)) for rid in run_ids}
    n = 0
    for sample in dataset.select_fields(["findings", "image_id", "scan_run_id"]):
        dec = in_force[sample["scan_run_id"]]
        todo: list[dict] = []
        v = _verdict(sample.tags)
        cur = dec.images.get(sample["image_id"])
        if v is not None and (cur is None or cur.verdict != v):
            todo.append({"image_id": int(sample["image_id"]), "verdict": v})
        for d in (sample["findings"].detections if sample["findings"] else []):
            v = _verdict(d.tags)
            cur = dec.findings.get(d["finding_id"])
            if v is not None and (cur is None or cur.verdict != v):
                todo.append({"finding_id": int(d["finding_id"]), "verdict": v})
        for kw in todo:
            with store.session() as s:
                repo.record_decision(s, source="fiftyone", **kw)
            n += 1
    log.info("synced %d decisions from %s", n, dataset.name)
    return n
