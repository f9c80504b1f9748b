"""Schema of the findings store (docs/design.md §5): SQLAlchemy 2 typed declarative models.

Tables: datasets, images, runs, image_scores, findings, decisions, corrections, exports,
schema_version, store_meta.
Enumerations are short strings guarded by CHECK constraints. Region masks are RLE text cropped to
the finding's bbox (see ``rle.py``) or a PNG path, never dense arrays. Times are stored in UTC and
returned timezone-aware.

This module is the CURRENT schema (``migrations.CURRENT_VERSION``). Any change here needs a
migration step in ``migrations.py`` so that existing databases upgrade to the same schema.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import numpy as np
from sqlalchemy import (
    JSON, CheckConstraint, Column, DateTime, Float, ForeignKey, Index, Integer, LargeBinary,
    MetaData, String, Table, Text, TypeDecorator, UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from .rle import decode_label_png, decode_mask

RUN_KINDS = ("train", "scan", "export")
RUN_STATUSES = ("running", "done", "failed", "interrupted")
FINDING_KINDS = ("flip", "missing", "spurious", "boundary")
VERDICTS = ("accept", "reject", "relabel")
DECISION_SOURCES = ("cli", "fiftyone")
CORRECTION_SOURCES = ("labelstudio",)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator[datetime]):
    """A DATETIME stored as naive UTC on every backend and read back timezone-aware (UTC)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is not None:  # naive values are taken to be UTC already
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    })


schema_version = Table(
    "schema_version", Base.metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("applied_at", DateTime, nullable=False),
)
"""One row per schema version applied to this database; the current version is the maximum."""

store_meta = Table(
    "store_meta", Base.metadata,
    Column("key", String(32), primary_key=True),
    Column("value", Text, nullable=False),
)
"""v4: facts about the store itself; "store_id" (a random hex id made with the store) binds the
review datasets built from it to it (labelaudit.review)."""


class Dataset(Base):
    """A dataset on disk, read with one class vocabulary (and, for CelebAMask-HQ, a merge order)."""

    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    root: Mapped[str] = mapped_column(Text)
    num_classes: Mapped[int] = mapped_column(Integer)
    class_names: Mapped[list[str]] = mapped_column(JSON)
    # a JSON string ("official" / "glasses_on_top"); read it with repo.merge_order_of
    merge_order: Mapped[str | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    images: Mapped[list[Image]] = relationship(back_populates="dataset", passive_deletes=True)

    __table_args__ = (CheckConstraint("num_classes > 0", name="num_classes"),)


class Image(Base):
    """One image + label pair of a dataset; shared by every run over that dataset."""

    __tablename__ = "images"

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    split: Mapped[str] = mapped_column(String(32))
    image_relpath: Mapped[str] = mapped_column(Text)
    label_relpath: Mapped[str] = mapped_column(Text)
    label_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    width: Mapped[int | None] = mapped_column(Integer, nullable=True)
    height: Mapped[int | None] = mapped_column(Integer, nullable=True)

    dataset: Mapped[Dataset] = relationship(back_populates="images")

    __table_args__ = (UniqueConstraint("dataset_id", "split", "image_relpath"),)


class Run(Base):
    """One invocation of train / scan / export, with its resolved config and environment."""

    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    dataset_id: Mapped[int | None] = mapped_column(
        ForeignKey("datasets.id", ondelete="SET NULL"), nullable=True)
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # resolved; a scan's resume key
    checkpoint: Mapped[str | None] = mapped_column(Text, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="running")
    seed: Mapped[int | None] = mapped_column(Integer, nullable=True)
    versions: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    parent_run_id: Mapped[int | None] = mapped_column(
        ForeignKey("runs.id", ondelete="SET NULL"), nullable=True)
    # a scan's running totals: {"class_pixels": [per class], "bad_inputs": [[path, problem]]}
    progress: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)

    dataset: Mapped[Dataset | None] = relationship()
    parent: Mapped[Run | None] = relationship(remote_side=[id])

    __table_args__ = (
        CheckConstraint(_in("kind", RUN_KINDS), name="kind"),
        CheckConstraint(_in("status", RUN_STATUSES), name="status"),
    )


class ImageScore(Base):
    """Per-image result of a scan run. ``label_quality`` in [0, 1]: LOW = worst label."""

    __tablename__ = "image_scores"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"))
    label_quality: Mapped[float] = mapped_column(Float)
    n_findings: Mapped[int] = mapped_column(Integer, default=0)
    n_suspect_pixels: Mapped[int] = mapped_column(Integer, default=0)
    mean_self_confidence: Mapped[float | None] = mapped_column(Float, nullable=True)
    # v4: pixels the newest ensemble member took from the given label against the older ones
    # (scan.memorisation; None: one model)
    learnt_pixels: Mapped[int | None] = mapped_column(Integer, nullable=True)

    image: Mapped[Image] = relationship()

    __table_args__ = (
        UniqueConstraint("run_id", "image_id"),
        Index("ix_image_scores_run_quality", "run_id", "label_quality"),
        CheckConstraint("label_quality >= 0 AND label_quality <= 1", name="label_quality"),
    )


class ScanMap(Base):
    """v7: one image's per-pixel maps of a scan run, as PNGs: the teacher's argmax (uint8
    class ids) and the suspicion 1 - p[given label] (0..255). In the store, not in files: a
    file per map cost the scan 0.03-0.7 ms of kernel time each on ext4 (docs/experiments.md,
    stop 25), and every rank or machine of a sharded scan writes them where the review reads."""

    __tablename__ = "scan_maps"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"),
                                          primary_key=True)
    teacher_png: Mapped[bytes] = mapped_column(LargeBinary)
    suspicion_png: Mapped[bytes] = mapped_column(LargeBinary)


class Finding(Base):
    """A suspect region of one image in one scan run.

    ``score`` is the SUSPICION in [0, 1]: HIGH = more likely a label error (the opposite direction
    of ``ImageScore.label_quality``). The region mask is ``mask_rle`` (row-major RLE of the mask
    cropped to the bbox, shape (bbox_h, bbox_w)) or ``mask_path`` (a PNG elsewhere).
    ``fingerprint`` (schema v2) identifies "the same finding" across rescans.
    """

    __tablename__ = "findings"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"))
    given_class: Mapped[int] = mapped_column(Integer)
    suggested_class: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    score: Mapped[float] = mapped_column(Float)
    area: Mapped[int] = mapped_column(Integer)
    bbox_x: Mapped[int] = mapped_column(Integer)
    bbox_y: Mapped[int] = mapped_column(Integer)
    bbox_w: Mapped[int] = mapped_column(Integer)
    bbox_h: Mapped[int] = mapped_column(Integer)
    mask_rle: Mapped[str | None] = mapped_column(Text, nullable=True)
    mask_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    # v2; nullable because SQLite cannot add a NOT NULL column without a default. Always set.
    fingerprint: Mapped[str | None] = mapped_column(String(96), nullable=True)
    # v4: the share of an ensemble teacher's members that see this error (None: one model)
    agreement: Mapped[float | None] = mapped_column(Float, nullable=True)

    image: Mapped[Image] = relationship()

    __table_args__ = (
        Index("ix_findings_run_score", "run_id", "score"),
        Index("ix_findings_run_image", "run_id", "image_id"),
        Index("ix_findings_image_fingerprint", "image_id", "fingerprint"),
        Index("ix_findings_run_pair", "run_id", "given_class", "suggested_class", "score"),  # v5
        CheckConstraint(_in("kind", FINDING_KINDS), name="kind"),
        CheckConstraint("score >= 0 AND score <= 1", name="score"),
        CheckConstraint("area >= 0 AND bbox_w > 0 AND bbox_h > 0", name="extent"),
    )

    @property
    def bbox(self) -> tuple[int, int, int, int]:
        """(x, y, w, h) in label pixels."""
        return (self.bbox_x, self.bbox_y, self.bbox_w, self.bbox_h)

    def mask(self, frame_shape: tuple[int, int] | None = None) -> np.ndarray | None:
        """The region mask: (bbox_h, bbox_w) bool, or placed into a (H, W) frame if given.

        None when the finding keeps its mask in a PNG (``mask_path``) instead of RLE.
        """
        if self.mask_rle is None:
            return None
        crop = decode_mask(self.mask_rle, (self.bbox_h, self.bbox_w))
        if frame_shape is None:
            return crop
        full = np.zeros(frame_shape, dtype=bool)
        x, y, w, h = self.bbox
        full[y:y + h, x:x + w] = crop
        return full


class Decision(Base):
    """A reviewer's verdict on a finding or on a whole image; the latest per target wins.

    A finding decision keeps the finding's ``fingerprint`` so it still means something after the
    finding's run is deleted (``finding_id`` then becomes NULL), and so rescans can inherit it.
    A decision inherited by a rescan is a copy with ``carried_from_id`` pointing to its source
    and the source's ``decided_at`` (when the human decided).
    """

    __tablename__ = "decisions"

    id: Mapped[int] = mapped_column(primary_key=True)
    finding_id: Mapped[int | None] = mapped_column(
        ForeignKey("findings.id", ondelete="SET NULL"), nullable=True, index=True)
    image_id: Mapped[int | None] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE"), nullable=True, index=True)
    verdict: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(16))
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    # v2
    fingerprint: Mapped[str | None] = mapped_column(String(96), nullable=True, index=True)
    carried_from_id: Mapped[int | None] = mapped_column(
        ForeignKey("decisions.id", ondelete="SET NULL"), nullable=True)

    finding: Mapped[Finding | None] = relationship()

    __table_args__ = (
        CheckConstraint(_in("verdict", VERDICTS), name="verdict"),
        CheckConstraint(_in("source", DECISION_SOURCES), name="source"),
        CheckConstraint("finding_id IS NULL OR image_id IS NULL", name="one_target"),
    )


class Correction(Base):
    """v6: a label map corrected by hand in an annotation tool (a `relabel` verdict's answer).

    The whole corrected map of one image, in the label frame, as an index PNG (``label_png``);
    ``base_sha256`` is the label file it was drawn on (``Image.label_sha256`` then), so an
    export can tell a correction made on a label that has changed since. The latest per image
    is the one in force; an export writes it in place of the image's label.
    """

    __tablename__ = "corrections"

    id: Mapped[int] = mapped_column(primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    run_id: Mapped[int | None] = mapped_column(  # the scan whose relabel verdict asked for it
        ForeignKey("runs.id", ondelete="SET NULL"), nullable=True)
    label_png: Mapped[bytes] = mapped_column(LargeBinary)
    base_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    pixels_changed: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (
        CheckConstraint(_in("source", CORRECTION_SOURCES), name="source"),
        CheckConstraint("pixels_changed >= 0", name="pixels_changed"),
    )

    def label(self) -> np.ndarray:
        """The corrected (H, W) uint8 label map."""
        return decode_label_png(self.label_png)


class Export(Base):
    """A corrected label tree written from the accepted findings of a scan run (``run_id``)."""

    __tablename__ = "exports"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    out_dir: Mapped[str] = mapped_column(Text)
    policy: Mapped[str] = mapped_column(String(32))
    n_images_changed: Mapped[int] = mapped_column(Integer)
    n_pixels_changed: Mapped[int] = mapped_column(Integer)
    manifest_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
