"""What the scan, review and export code call to read and write the findings store.

Every function takes an open ``Session`` (from ``Store.session()``). Each WRITE function is one
transaction: it commits on success and rolls back (then re-raises) on error, so a crash between
two calls loses at most the call in flight. Returned ORM objects stay usable after the commit.
Rows deleted or changed by another session are not refreshed in this one's objects: re-query.

Score directions: ``ImageScore.label_quality`` LOW = worst label; ``Finding.score`` (suspicion)
HIGH = most likely a label error.
"""
from __future__ import annotations

import json
import logging
import math
import platform
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from sqlalchemy import bindparam, func, insert, or_, select, update
from sqlalchemy.orm import Session, joinedload

from .db import json_dumps
from .models import (
    CORRECTION_SOURCES, DECISION_SOURCES, FINDING_KINDS, RUN_KINDS, RUN_STATUSES, VERDICTS,
    Correction, Dataset, Decision, Export, Finding, Image, ImageScore, Run, ScanMap, utcnow,
)
from .rows import ConfusionPair, FindingRecord, ImageResult, ImageRow, finding_fingerprint
from .rle import encode_label_png, encode_mask

log = logging.getLogger(__name__)

CARRY_MIN_IOU = 0.5
"""Region IoU at or above which a rescan's finding counts as the same as a decided one."""

_IN_CHUNK = 500  # ids per IN (...) clause; far below every backend's bound-parameter limit

T = TypeVar("T")


def _chunks(items: Sequence[T], n: int = _IN_CHUNK) -> Iterator[Sequence[T]]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


@contextmanager
def _transaction(session: Session) -> Iterator[None]:
    """One write transaction; on SQLite it takes the write lock up front (BEGIN IMMEDIATE).

    A deferred SQLite transaction that read first fails at once with "database is locked" if
    another process (a review sync during a scan) wrote meanwhile; an immediate one waits for
    the busy timeout instead. Whatever the session already holds is committed first.
    """
    if session.in_transaction():
        session.commit()  # also ends a read snapshot a previous query left open
    session.connection(execution_options={"sqlite_begin": "IMMEDIATE"})
    try:
        yield
        session.commit()
    except BaseException:
        session.rollback()
        raise


def _check_choice(what: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{what} must be one of {', '.join(allowed)}; got {value!r}")


def _check_unit(what: str, value: float) -> float:
    value = float(value)
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise ValueError(f"{what} must be a finite number in [0, 1]; got {value!r}")
    return value


def _as_utc(t: datetime) -> datetime:
    return t.replace(tzinfo=timezone.utc) if t.tzinfo is None else t.astimezone(timezone.utc)


# --------------------------------------------------------------------------- datasets, images


def merge_order_of(dataset: Dataset) -> str | None:
    """The dataset's CelebAMask-HQ merge order ("official", "glasses_on_top") or None.

    Stores written before this was a string kept it as the list of its characters.
    """
    order = dataset.merge_order
    if isinstance(order, list):
        order = "".join(order)
    return order or None


def open_dataset_source(dataset: Dataset, on_bad: str = "raise"):
    """Reopen the dataset a row describes, with the options it was read with (merge order)."""
    from labelaudit.data import open_source

    options: dict[str, Any] = {"on_bad": on_bad}
    order = merge_order_of(dataset)
    if order is not None:
        options["merge_order"] = order
    return open_source(dataset.kind, dataset.root, **options)


def get_or_create_dataset(
    session: Session, kind: str, root: str | Path, class_names: Sequence[str],
    merge_order: str | None = None,
) -> Dataset:
    """The dataset row for (kind, resolved root, merge order), created on first use.

    Raises ValueError if that dataset is already stored with different class names.
    """
    root_s = str(Path(root).expanduser().resolve())
    names, order = list(class_names), (str(merge_order) if merge_order is not None else None)
    with _transaction(session):
        for ds in session.scalars(
                select(Dataset).where(Dataset.kind == kind, Dataset.root == root_s)
                .order_by(Dataset.id)):
            if merge_order_of(ds) == order:
                if list(ds.class_names) != names:
                    raise ValueError(
                        f"dataset {kind} at {root_s} is stored with classes {ds.class_names}, "
                        f"not {names}")
                return ds
        ds = Dataset(kind=kind, root=root_s, num_classes=len(names), class_names=names,
                     merge_order=order)
        session.add(ds)
    log.info("new dataset %s at %s (id %d)", kind, root_s, ds.id)
    return ds


def upsert_images(session: Session, dataset: Dataset, rows: Sequence[ImageRow]) -> dict[str, int]:
    """Insert new images, update changed ones; returns {image_relpath: image id} for ``rows``.

    An image is identified by (dataset, split, image_relpath); its label path, sha256 and size
    are updated when they change (width/height only when given).
    """
    seen: set[str] = set()
    for r in rows:
        if r.image_relpath in seen:
            raise ValueError(f"upsert_images: {r.image_relpath!r} appears twice in one call")
        seen.add(r.image_relpath)
    out: dict[str, int] = {}
    with _transaction(session):
        for chunk in _chunks(list(rows)):
            existing = {
                (im.split, im.image_relpath): im for im in session.scalars(select(Image).where(
                    Image.dataset_id == dataset.id,
                    Image.image_relpath.in_([r.image_relpath for r in chunk])))}
            new: list[tuple[str, Image]] = []
            for r in chunk:
                im = existing.get((r.split, r.image_relpath))
                if im is None:
                    im = Image(dataset_id=dataset.id, split=r.split, image_relpath=r.image_relpath,
                               label_relpath=r.label_relpath, label_sha256=r.label_sha256,
                               width=r.width, height=r.height)
                    session.add(im)
                    new.append((r.image_relpath, im))
                    continue
                if r.label_sha256 is not None and im.label_sha256 not in (None, r.label_sha256):
                    log.info("label of %s changed since it was indexed", r.image_relpath)
                im.label_relpath = r.label_relpath
                if r.label_sha256 is not None:
                    im.label_sha256 = r.label_sha256
                if r.width is not None:
                    im.width = r.width
                if r.height is not None:
                    im.height = r.height
                out[r.image_relpath] = im.id
            session.flush()
            out.update((rel, im.id) for rel, im in new)
    return out


# --------------------------------------------------------------------------- runs


def _versions() -> dict[str, str | None]:
    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    # importlib.metadata, not `import torch`: recording a run must not cost a torch import.
    return {"python": platform.python_version(), "torch": version("torch"),
            "labelaudit": version("labelaudit")}


def start_run(
    session: Session, kind: str, dataset: Dataset | None, config: dict[str, Any],
    seed: int | None, checkpoint: str | Path | None = None, parent: Run | None = None,
    versions: dict[str, Any] | None = None,
) -> Run:
    """Record the start of a train / scan / export run (status "running").

    ``config`` is the resolved config, kept as JSON (Paths become text, in memory as in the
    DB); ``versions`` defaults to the python / torch / labelaudit versions installed.
    """
    _check_choice("run kind", kind, RUN_KINDS)
    run = Run(kind=kind, dataset_id=dataset.id if dataset is not None else None,
              config=json.loads(json_dumps(config)),
              checkpoint=str(checkpoint) if checkpoint is not None else None,
              status="running", seed=seed,
              versions=versions if versions is not None else _versions(),
              started_at=utcnow(), parent_run_id=parent.id if parent is not None else None)
    with _transaction(session):
        session.add(run)
    log.info("started %s run %d", kind, run.id)
    return run


def add_run_config(session: Session, run: Run, extra: dict[str, Any]) -> Run:
    """Add keys to a run's config (say, what is only known once the run has its id)."""
    with _transaction(session):
        run.config = {**(run.config or {}), **json.loads(json_dumps(extra))}
    return run


def finish_run(session: Session, run: Run, status: str = "done") -> Run:
    """Close a run with status done / failed / interrupted and the finish time."""
    _check_choice("final run status", status, tuple(s for s in RUN_STATUSES if s != "running"))
    with _transaction(session):
        session.add(run)  # re-attach if it was loaded by an earlier (closed) session
        run.status, run.finished_at = status, utcnow()
    log.info("%s run %d %s", run.kind, run.id, status)
    return run


def latest_run(
    session: Session, kind: str, *, dataset: Dataset | None = None, status: str | None = None,
) -> Run | None:
    """The most recently started run of ``kind`` (optionally of one dataset / with one status)."""
    q = select(Run).where(Run.kind == kind)
    if dataset is not None:
        q = q.where(Run.dataset_id == dataset.id)
    if status is not None:
        q = q.where(Run.status == status)
    return session.scalars(q.order_by(Run.started_at.desc(), Run.id.desc()).limit(1)).first()


# --------------------------------------------------------------------------- scan results


def _finding_row(run: Run, image_id: int, rec: FindingRecord) -> Finding:
    _check_choice("finding kind", rec.kind, FINDING_KINDS)
    x, y, w, h = (int(v) for v in rec.bbox)
    if w <= 0 or h <= 0 or x < 0 or y < 0:
        raise ValueError(f"image {image_id}: finding bbox {rec.bbox} is empty or negative")
    if int(rec.area) < 0:
        raise ValueError(f"image {image_id}: finding area {rec.area} < 0")
    rle = None
    if rec.mask is not None:
        mask = np.asarray(rec.mask).astype(bool, copy=False)
        if mask.shape != (h, w):  # a full-frame mask: keep only the bbox
            if mask.ndim != 2 or mask.shape[0] < y + h or mask.shape[1] < x + w:
                raise ValueError(f"image {image_id}: finding mask {mask.shape} is neither the "
                                 f"bbox size {(h, w)} nor a frame containing bbox {rec.bbox}")
            mask = mask[y:y + h, x:x + w]
        rle = encode_mask(mask)
    return Finding(
        run_id=run.id, image_id=image_id, given_class=int(rec.given),
        suggested_class=int(rec.suggested), kind=rec.kind,
        score=_check_unit(f"image {image_id}: finding score", rec.score), area=int(rec.area),
        bbox_x=x, bbox_y=y, bbox_w=w, bbox_h=h, mask_rle=rle, mask_path=rec.mask_path,
        fingerprint=finding_fingerprint(image_id, rec.given, rec.suggested, (x, y, w, h)),
        agreement=None if rec.agreement is None else float(rec.agreement))


def scan_map_pngs(session: Session, run: Run, image_ids: Sequence[int]
                  ) -> dict[int, tuple[bytes, bytes]]:
    """{image id: (teacher PNG, suspicion PNG)} of the scan's stored maps (models.ScanMap);
    images without any (scans made before v7 kept them in files: scan.layout) are left out."""
    out: dict[int, tuple[bytes, bytes]] = {}
    for chunk in _chunks([int(i) for i in image_ids]):
        out.update((r.image_id, (r.teacher_png, r.suspicion_png)) for r in session.execute(
            select(ScanMap.image_id, ScanMap.teacher_png, ScanMap.suspicion_png)
            .where(ScanMap.run_id == run.id, ScanMap.image_id.in_(chunk))))
    return out


def write_scan_batch(
    session: Session, run: Run, batch: Sequence[ImageResult], *, carry: bool = True,
    progress: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    frames: dict[int, tuple[int, int]] | None = None,
) -> int:
    """Store a batch of scan results in ONE transaction; returns how many images were new.

    Idempotent: images this run already scored are skipped whole (score and findings), so a
    resumed scan can rewrite a batch without duplicates. With ``carry``, decisions made on the
    same findings in earlier runs are inherited by the new findings (see ``carry_decisions``).
    In the same transaction: the run's progress replaced by ``progress(current progress)``
    (read under the write lock: ranks of a sharded scan each update their own part), and the
    label frame (height, width) of each image in ``frames`` that has none yet. Everything is
    written after the write lock is taken, so other writers only make it wait.
    """
    if run.kind != "scan":
        raise ValueError(f"write_scan_batch needs a scan run; run {run.id} is a {run.kind} run")
    ids = [int(r.image_id) for r in batch]
    if len(set(ids)) != len(ids):
        raise ValueError("write_scan_batch: the same image appears twice in one batch")
    with _transaction(session):
        if progress is not None:
            row = session.get(Run, run.id, with_for_update=True, populate_existing=True)
            row.progress = progress(dict(row.progress or {}))
        if frames:
            _set_frames(session, frames)
        done = set()
        for chunk in _chunks(ids):
            done.update(session.scalars(select(ImageScore.image_id).where(
                ImageScore.run_id == run.id, ImageScore.image_id.in_(chunk))))
        new = [res for res in batch if res.image_id not in done]
        # scores and maps as one executemany each: they are not needed as objects
        if new:
            session.execute(insert(ImageScore), [_score_row(run, res) for res in new])
        maps = [{"run_id": run.id, "image_id": res.image_id, "teacher_png": res.maps[0],
                 "suspicion_png": res.maps[1]} for res in new if res.maps is not None]
        if maps:
            session.execute(insert(ScanMap), maps)
        findings = [_finding_row(run, res.image_id, f) for res in new for f in res.findings]
        session.add_all(findings)
        session.flush()
        if carry and findings:
            _carry(session, run, findings, old_run_id=None)
    if len(new) < len(batch):
        log.debug("run %d: %d of %d images already scored, skipped", run.id,
                  len(batch) - len(new), len(batch))
    return len(new)


def _set_frames(session: Session, frames: dict[int, tuple[int, int]]) -> None:
    """The label frame (height, width) of each image that has none yet, in one statement."""
    images = Image.__table__
    session.execute(
        update(images).where(images.c.id == bindparam("iid"), images.c.width.is_(None))
        .values(height=bindparam("h"), width=bindparam("w")),
        [{"iid": int(i), "h": int(h), "w": int(w)} for i, (h, w) in frames.items()])


def _score_row(run: Run, res: ImageResult) -> dict[str, Any]:
    """The image_scores row of one scanned image, its values checked."""
    where = f"image {res.image_id}"
    return {
        "run_id": run.id, "image_id": res.image_id,
        "label_quality": _check_unit(f"{where}: label_quality", res.label_quality),
        "n_findings": len(res.findings), "n_suspect_pixels": int(res.n_suspect_pixels),
        "mean_self_confidence": None if res.mean_self_confidence is None else
        _check_unit(f"{where}: mean_self_confidence", res.mean_self_confidence),
        "learnt_pixels": res.learnt_pixels}


def scan_scores(session: Session, run: Run) -> tuple[list[tuple[int, int, float]], dict[int, float]]:
    """A scan's (finding id, image id, score) rows and {image id: label_quality}."""
    found = [(int(i), int(im), float(sc)) for i, im, sc in session.execute(
        select(Finding.id, Finding.image_id, Finding.score).where(Finding.run_id == run.id))]
    quality = {int(im): float(lq) for im, lq in session.execute(
        select(ImageScore.image_id, ImageScore.label_quality).where(ImageScore.run_id == run.id))}
    return found, quality


def rescore_scan(session: Session, run: Run, scores: dict[int, float], drop: Sequence[int],
                 quality: dict[int, float], progress: dict[str, Any]) -> None:
    """One transaction: findings get new scores, the `drop` findings are deleted, images get
    new label_quality and their findings counted again, the run's progress is replaced."""
    from sqlalchemy import delete, update

    with _transaction(session):
        if scores:
            session.execute(update(Finding), [
                {"id": i, "score": _check_unit(f"finding {i}: score", s)} for i, s in scores.items()])
        for chunk in _chunks(list(drop)):
            session.execute(delete(Finding).where(Finding.id.in_(chunk)))
        counts = dict(session.execute(select(Finding.image_id, func.count()).where(
            Finding.run_id == run.id).group_by(Finding.image_id)).all())
        rows = {int(im): int(sid) for sid, im in session.execute(
            select(ImageScore.id, ImageScore.image_id).where(ImageScore.run_id == run.id))}
        session.execute(update(ImageScore), [
            {"id": rows[im], "label_quality": _check_unit(f"image {im}: label_quality", lq),
             "n_findings": int(counts.get(im, 0))} for im, lq in quality.items() if im in rows])
        session.get(Run, run.id).progress = progress


def scored_image_ids(session: Session, run: Run) -> set[int]:
    """Ids of the images this run has already scored (a resumed scan skips them)."""
    return set(session.scalars(select(ImageScore.image_id).where(ImageScore.run_id == run.id)))


def top_images(session: Session, run: Run, n: int) -> list[ImageScore]:
    """The ``n`` worst-labelled images of a run (lowest label_quality first), ``.image`` loaded."""
    return list(session.scalars(
        select(ImageScore).options(joinedload(ImageScore.image))
        .where(ImageScore.run_id == run.id)
        .order_by(ImageScore.label_quality.asc(), ImageScore.image_id.asc()).limit(n)))


def findings_for_image(session: Session, run: Run, image_id: int) -> list[Finding]:
    """One image's findings in a run, most suspicious first."""
    return findings_for_images(session, run, [image_id])[image_id]


def findings_for_images(session: Session, run: Run, image_ids: Sequence[int]) -> dict[int, list[Finding]]:
    """{image id: its findings in the run, most suspicious first} for each of `image_ids`.

    Sorted here, not in SQL: with an ORDER BY on the score SQLite's planner walks the run's
    (run_id, score) index, every finding of the run, for each query (0.5 s per image at 100k
    images); without it the (run_id, image_id) index answers.
    """
    out: dict[int, list[Finding]] = {i: [] for i in image_ids}
    for chunk in _chunks(list(out)):
        for f in session.scalars(select(Finding).where(Finding.run_id == run.id,
                                                       Finding.image_id.in_(chunk))):
            out[f.image_id].append(f)
    for fs in out.values():
        fs.sort(key=lambda f: (-f.score, f.id))
    return out


def images_by_id(session: Session, ids: Sequence[int]) -> list[Image]:
    """The images with these ids (unknown ids skipped), in no particular order."""
    ids = list(dict.fromkeys(ids))
    return [im for chunk in _chunks(ids) for im in session.scalars(select(Image).where(Image.id.in_(chunk)))]


def findings_by_id(session: Session, ids: Sequence[int]) -> list[Finding]:
    """The findings with these ids (unknown ids skipped), in no particular order."""
    ids = list(dict.fromkeys(ids))
    return [f for chunk in _chunks(ids) for f in session.scalars(select(Finding).where(Finding.id.in_(chunk)))]


def pair_findings(session: Session, run: Run, given: int, suggested: int,
                  limit: int | None = None) -> list[Finding]:
    """The findings of one confusion pair (given class -> suggested class), most suspicious first."""
    q = (select(Finding).where(Finding.run_id == run.id, Finding.given_class == given,
                               Finding.suggested_class == suggested)
         .order_by(Finding.score.desc(), Finding.id.asc()))
    return list(session.scalars(q if limit is None else q.limit(limit)))


def iter_findings(
    session: Session, run: Run, min_score: float | None = None, *, batch_size: int = 1000,
) -> Iterator[Finding]:
    """Stream a run's findings, most suspicious first, fetching ``batch_size`` rows at a time.

    Write (record decisions) through another session while iterating: a write commits.
    """
    q = select(Finding).where(Finding.run_id == run.id)
    if min_score is not None:
        q = q.where(Finding.score >= min_score)
    q = q.order_by(Finding.score.desc(), Finding.id.asc()).execution_options(yield_per=batch_size)
    yield from session.scalars(q)


def confusion_pairs(session: Session, run: Run) -> list[ConfusionPair]:
    """(given, suggested, number of findings, pixels) per class pair, most frequent first."""
    n = func.count(Finding.id)
    px = func.coalesce(func.sum(Finding.area), 0)
    rows = session.execute(
        select(Finding.given_class, Finding.suggested_class, n, px)
        .where(Finding.run_id == run.id)
        .group_by(Finding.given_class, Finding.suggested_class)
        .order_by(n.desc(), px.desc(), Finding.given_class, Finding.suggested_class))
    return [ConfusionPair(int(g), int(s), int(c), int(p)) for g, s, c, p in rows]


# --------------------------------------------------------------------------- decisions


@dataclass
class RunDecisions:
    """The decision in force (latest) per finding of a run and per image the run scored."""

    findings: dict[int, Decision]
    images: dict[int, Decision]

    def verdicts(self) -> tuple[dict[int, str], dict[int, str]]:
        """({finding id: verdict}, {image id: verdict}) of the decisions in force."""
        return ({k: d.verdict for k, d in self.findings.items()},
                {k: d.verdict for k, d in self.images.items()})


def relabel_verdict_images(session: Session, decisions: RunDecisions) -> list[int]:
    """The image of each relabel verdict in force (a finding's: the finding's image), one entry
    per verdict: what is waiting for a hand correction."""
    by_finding, by_image = decisions.verdicts()
    relabel = VERDICTS[2]
    on_findings = findings_by_id(session, [k for k, v in by_finding.items() if v == relabel])
    return [f.image_id for f in on_findings] + [k for k, v in by_image.items() if v == relabel]


def _latest_key(d: Decision) -> tuple[datetime, int]:
    return (_as_utc(d.decided_at), d.id)


def record_decision(
    session: Session, *, finding_id: int | None = None, image_id: int | None = None,
    verdict: str, source: str, note: str | None = None, decided_at: datetime | None = None,
) -> Decision:
    """Record a verdict (accept / reject / relabel) on ONE finding or ONE whole image.

    Decisions are never overwritten: the latest per target is the one in force.
    """
    _check_choice("verdict", verdict, VERDICTS)
    _check_choice("decision source", source, DECISION_SOURCES)
    if (finding_id is None) == (image_id is None):
        raise ValueError("record_decision needs exactly one of finding_id or image_id")
    with _transaction(session):
        fingerprint = None
        if finding_id is not None:
            finding = session.get(Finding, finding_id)
            if finding is None:
                raise ValueError(f"record_decision: no finding with id {finding_id}")
            fingerprint = finding.fingerprint
        elif session.get(Image, image_id) is None:
            raise ValueError(f"record_decision: no image with id {image_id}")
        d = Decision(finding_id=finding_id, image_id=image_id, verdict=verdict, source=source,
                     note=note, fingerprint=fingerprint,
                     decided_at=_as_utc(decided_at) if decided_at is not None else utcnow())
        session.add(d)
    return d


def decisions_for_run(session: Session, run: Run, source: str | None = None) -> RunDecisions:
    """Decisions in force for a run: latest per finding of the run, latest per scored image.

    With `source` ("cli", "fiftyone", ...), the latest decision from that source only.
    """
    only = () if source is None else (Decision.source == source,)
    by_finding: dict[int, Decision] = {}
    for d in session.scalars(
            select(Decision).join(Finding, Decision.finding_id == Finding.id)
            .where(Finding.run_id == run.id, *only).order_by(Decision.decided_at, Decision.id)):
        by_finding[d.finding_id] = d  # type: ignore[index]  # later rows win
    by_image: dict[int, Decision] = {}
    scored = select(ImageScore.image_id).where(ImageScore.run_id == run.id)
    for d in session.scalars(
            select(Decision).where(Decision.image_id.in_(scored), *only)
            .order_by(Decision.decided_at, Decision.id)):
        by_image[d.image_id] = d  # type: ignore[index]
    return RunDecisions(by_finding, by_image)


def region_iou(a: Finding, b: Finding) -> float:
    """IoU of two findings' regions (their RLE masks; their bboxes when either has no RLE)."""
    ax0, ay0, aw, ah = a.bbox
    bx0, by0, bw, bh = b.bbox
    x0, y0 = min(ax0, bx0), min(ay0, by0)
    x1, y1 = max(ax0 + aw, bx0 + bw), max(ay0 + ah, by0 + bh)
    if min(ax0 + aw, bx0 + bw) <= max(ax0, bx0) or min(ay0 + ah, by0 + bh) <= max(ay0, by0):
        return 0.0  # bboxes do not overlap
    ma, mb = a.mask(), b.mask()
    if ma is None or mb is None:
        ma, mb = np.ones((ah, aw), bool), np.ones((bh, bw), bool)
    fa = np.zeros((y1 - y0, x1 - x0), bool)
    fb = np.zeros_like(fa)
    fa[ay0 - y0:ay0 - y0 + ah, ax0 - x0:ax0 - x0 + aw] = ma
    fb[by0 - y0:by0 - y0 + bh, bx0 - x0:bx0 - x0 + bw] = mb
    union = int(np.count_nonzero(fa | fb))
    return int(np.count_nonzero(fa & fb)) / union if union else 0.0


def _carry_sources(session: Session, chunk: Sequence[Finding], new_run: Run, old_run_id: int | None
                  ) -> tuple[dict[str, list[Decision]], dict[tuple[int, int, int], list[tuple[Decision, Finding]]]]:
    """Decisions a chunk of new findings could inherit, by fingerprint and by
    (image, given, suggested)."""
    fps = {f.fingerprint for f in chunk if f.fingerprint is not None}
    images = {f.image_id for f in chunk}
    q = (select(Decision, Finding).outerjoin(Finding, Decision.finding_id == Finding.id)
         .where(Decision.image_id.is_(None),
                or_(Decision.fingerprint.in_(fps), Finding.image_id.in_(images))))
    if old_run_id is not None:
        q = q.where(Finding.run_id == old_run_id)
    else:
        q = q.where(or_(Finding.id.is_(None), Finding.run_id != new_run.id))
    # populate_existing: rows may have changed under this session's identity map (a DB
    # cascade set finding_id NULL, another process decided) since they were loaded
    by_fp: dict[str, list[Decision]] = {}
    by_pair: dict[tuple[int, int, int], list[tuple[Decision, Finding]]] = {}
    for d, old in session.execute(q.execution_options(populate_existing=True)).all():
        if d.fingerprint is not None:
            by_fp.setdefault(d.fingerprint, []).append(d)
        if old is not None:
            by_pair.setdefault((old.image_id, old.given_class, old.suggested_class), []).append((d, old))
    return by_fp, by_pair


def _carry(session: Session, new_run: Run, new_findings: Sequence[Finding],
           old_run_id: int | None) -> int:
    """Give each new finding the latest decision on a matching decided finding (no commit).

    Match: same fingerprint, else same image + given + suggested class with region IoU >=
    ``CARRY_MIN_IOU``. Source decisions come from ``old_run_id``, or from every other run (and
    from decisions whose finding was deleted, by fingerprint) when it is None.
    """
    carried = 0
    for chunk in _chunks(list(new_findings)):
        by_fp, by_pair = _carry_sources(session, chunk, new_run, old_run_id)
        if not by_fp and not by_pair:
            continue
        own: dict[int, list[Decision]] = {}
        for d in session.scalars(select(Decision).where(
                Decision.finding_id.in_([f.id for f in chunk]))):
            own.setdefault(d.finding_id, []).append(d)  # type: ignore[arg-type]
        iou_cache: dict[tuple[int, int], float] = {}
        for f in chunk:
            matches = list(by_fp.get(f.fingerprint or "", []))
            if not matches:
                for d, old in by_pair.get((f.image_id, f.given_class, f.suggested_class), []):
                    key = (f.id, old.id)
                    if key not in iou_cache:
                        iou_cache[key] = region_iou(f, old)
                    if iou_cache[key] >= CARRY_MIN_IOU:
                        matches.append(d)
            if not matches:
                continue
            src = max(matches, key=_latest_key)
            mine = own.get(f.id, [])
            if any(d.carried_from_id == src.id or _latest_key(d) >= _latest_key(src)
                   for d in mine):
                continue  # already inherited, or decided afresh since
            copy = Decision(finding_id=f.id, verdict=src.verdict, source=src.source,
                            note=src.note, decided_at=src.decided_at,
                            fingerprint=f.fingerprint, carried_from_id=src.id)
            session.add(copy)
            own.setdefault(f.id, []).append(copy)
            carried += 1
        session.flush()
    if carried:
        log.info("run %d: %d findings inherited a decision", new_run.id, carried)
    return carried


def carry_decisions(session: Session, old_run: Run | None, new_run: Run) -> int:
    """Let ``new_run``'s findings inherit decisions made on the same findings of ``old_run``.

    ``old_run`` None = from every other run. Returns the number of decisions carried. Safe to
    repeat (a decision is inherited once); the latest decision still wins afterwards.
    ``write_scan_batch`` already does this at write time; call it again after reviewing an old
    run further.
    """
    ids = list(session.scalars(select(Finding.id).where(Finding.run_id == new_run.id)
                               .order_by(Finding.id)))
    total = 0
    with _transaction(session):
        for chunk in _chunks(ids):
            found = session.scalars(select(Finding).where(Finding.id.in_(chunk))).all()
            total += _carry(session, new_run, found,
                            old_run_id=old_run.id if old_run is not None else None)
    return total


# --------------------------------------------------------------------------- corrections


def record_correction(
    session: Session, *, image_id: int, label: np.ndarray, pixels_changed: int, source: str,
    run_id: int | None = None, note: str | None = None,
) -> Correction:
    """Record an image's label map as corrected by hand (the latest per image is in force).

    ``base_sha256`` is taken from the image's row: the label file the correction was drawn on.
    """
    _check_choice("correction source", source, CORRECTION_SOURCES)
    with _transaction(session):
        image = session.get(Image, image_id)
        if image is None:
            raise ValueError(f"record_correction: no image with id {image_id}")
        c = Correction(image_id=image_id, run_id=run_id, label_png=encode_label_png(label),
                       base_sha256=image.label_sha256, pixels_changed=int(pixels_changed),
                       source=source, note=note, created_at=utcnow())
        session.add(c)
    return c


def corrections_for_images(session: Session, image_ids: Sequence[int]) -> dict[int, Correction]:
    """The correction in force (latest) per image, for the images that have one."""
    out: dict[int, Correction] = {}
    for chunk in _chunks(sorted(set(image_ids))):
        for c in session.scalars(select(Correction).where(Correction.image_id.in_(chunk))
                                 .order_by(Correction.created_at, Correction.id)):
            out[c.image_id] = c  # later rows win
    return out


# --------------------------------------------------------------------------- exports


def record_export(
    session: Session, run: Run, *, out_dir: str | Path, policy: str, n_images_changed: int,
    n_pixels_changed: int, manifest_sha256: str,
) -> Export:
    """Record a corrected label tree written from the decisions on scan run ``run``."""
    ex = Export(run_id=run.id, out_dir=str(out_dir), policy=policy,
                n_images_changed=int(n_images_changed), n_pixels_changed=int(n_pixels_changed),
                manifest_sha256=manifest_sha256, created_at=utcnow())
    with _transaction(session):
        session.add(ex)
    return ex


def exports_for_run(session: Session, run: Run) -> list[Export]:
    """Exports made from a scan run, oldest first."""
    return list(session.scalars(select(Export).where(Export.run_id == run.id)
                                .order_by(Export.created_at, Export.id)))


__all__ = [
    "CARRY_MIN_IOU", "RunDecisions", "carry_decisions", "confusion_pairs",
    "corrections_for_images", "decisions_for_run", "exports_for_run", "finding_fingerprint",
    "findings_by_id", "findings_for_image", "findings_for_images", "finish_run",
    "get_or_create_dataset", "images_by_id", "iter_findings", "latest_run", "pair_findings",
    "record_correction", "record_decision", "record_export", "region_iou",
    "relabel_verdict_images", "scored_image_ids",
    "start_run", "top_images", "upsert_images", "write_scan_batch",
]
