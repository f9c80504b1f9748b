"""Schema versions of the findings store and the steps that upgrade one version to the next.

A new database is created from the current models (``Base.metadata.create_all``) and stamped
``CURRENT_VERSION``; an existing one is upgraded in place by running, in one transaction, every
step newer than the version recorded in its ``schema_version`` table. A test builds a database
from ``V1_DDL`` and checks that upgrading it yields exactly the schema ``create_all`` makes.

To change the schema: edit ``models.py``, append a ``Migration`` here, bump nothing else.
Steps use portable DDL (ALTER TABLE ... ADD COLUMN, CREATE INDEX) so they also run on PostgreSQL.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, text

from .rows import finding_fingerprint

log = logging.getLogger(__name__)

# Schema v1 exactly as labelaudit 0.1 created it on SQLite (frozen: never edit).
V1_DDL = """
CREATE TABLE datasets (
	id INTEGER NOT NULL,
	kind VARCHAR(32) NOT NULL,
	root TEXT NOT NULL,
	num_classes INTEGER NOT NULL,
	class_names JSON NOT NULL,
	merge_order JSON,
	created_at DATETIME NOT NULL,
	CONSTRAINT pk_datasets PRIMARY KEY (id),
	CONSTRAINT ck_datasets_num_classes CHECK (num_classes > 0)
);
CREATE TABLE schema_version (
	version INTEGER NOT NULL,
	applied_at DATETIME NOT NULL,
	CONSTRAINT pk_schema_version PRIMARY KEY (version)
);
CREATE TABLE images (
	id INTEGER NOT NULL,
	dataset_id INTEGER NOT NULL,
	split VARCHAR(32) NOT NULL,
	image_relpath TEXT NOT NULL,
	label_relpath TEXT NOT NULL,
	label_sha256 VARCHAR(64),
	width INTEGER,
	height INTEGER,
	CONSTRAINT pk_images PRIMARY KEY (id),
	CONSTRAINT uq_images_dataset_id_split_image_relpath UNIQUE (dataset_id, split, image_relpath),
	CONSTRAINT fk_images_dataset_id_datasets FOREIGN KEY(dataset_id) REFERENCES datasets (id) ON DELETE CASCADE
);
CREATE TABLE runs (
	id INTEGER NOT NULL,
	kind VARCHAR(16) NOT NULL,
	dataset_id INTEGER,
	config JSON NOT NULL,
	checkpoint TEXT,
	status VARCHAR(16) NOT NULL,
	seed INTEGER,
	versions JSON NOT NULL,
	started_at DATETIME NOT NULL,
	finished_at DATETIME,
	parent_run_id INTEGER,
	CONSTRAINT pk_runs PRIMARY KEY (id),
	CONSTRAINT ck_runs_kind CHECK (kind IN ('train', 'scan', 'export')),
	CONSTRAINT ck_runs_status CHECK (status IN ('running', 'done', 'failed', 'interrupted')),
	CONSTRAINT fk_runs_dataset_id_datasets FOREIGN KEY(dataset_id) REFERENCES datasets (id) ON DELETE SET NULL,
	CONSTRAINT fk_runs_parent_run_id_runs FOREIGN KEY(parent_run_id) REFERENCES runs (id) ON DELETE SET NULL
);
CREATE TABLE exports (
	id INTEGER NOT NULL,
	run_id INTEGER NOT NULL,
	out_dir TEXT NOT NULL,
	policy VARCHAR(32) NOT NULL,
	n_images_changed INTEGER NOT NULL,
	n_pixels_changed INTEGER NOT NULL,
	manifest_sha256 VARCHAR(64) NOT NULL,
	created_at DATETIME NOT NULL,
	CONSTRAINT pk_exports PRIMARY KEY (id),
	CONSTRAINT fk_exports_run_id_runs FOREIGN KEY(run_id) REFERENCES runs (id) ON DELETE CASCADE
);
CREATE INDEX ix_exports_run_id ON exports (run_id);
CREATE TABLE findings (
	id INTEGER NOT NULL,
	run_id INTEGER NOT NULL,
	image_id INTEGER NOT NULL,
	given_class INTEGER NOT NULL,
	suggested_class INTEGER NOT NULL,
	kind VARCHAR(16) NOT NULL,
	score FLOAT NOT NULL,
	area INTEGER NOT NULL,
	bbox_x INTEGER NOT NULL,
	bbox_y INTEGER NOT NULL,
	bbox_w INTEGER NOT NULL,
	bbox_h INTEGER NOT NULL,
	mask_rle TEXT,
	mask_path TEXT,
	CONSTRAINT pk_findings PRIMARY KEY (id),
	CONSTRAINT ck_findings_kind CHECK (kind IN ('flip', 'missing', 'spurious', 'boundary')),
	CONSTRAINT ck_findings_score CHECK (score >= 0 AND score <= 1),
	CONSTRAINT ck_findings_extent CHECK (area >= 0 AND bbox_w > 0 AND bbox_h > 0),
	CONSTRAINT fk_findings_run_id_runs FOREIGN KEY(run_id) REFERENCES runs (id) ON DELETE CASCADE,
	CONSTRAINT fk_findings_image_id_images FOREIGN KEY(image_id) REFERENCES images (id) ON DELETE CASCADE
);
CREATE INDEX ix_findings_run_image ON findings (run_id, image_id);
CREATE INDEX ix_findings_run_score ON findings (run_id, score);
CREATE TABLE image_scores (
	id INTEGER NOT NULL,
	run_id INTEGER NOT NULL,
	image_id INTEGER NOT NULL,
	label_quality FLOAT NOT NULL,
	n_findings INTEGER NOT NULL,
	n_suspect_pixels INTEGER NOT NULL,
	mean_self_confidence FLOAT,
	CONSTRAINT pk_image_scores PRIMARY KEY (id),
	CONSTRAINT uq_image_scores_run_id_image_id UNIQUE (run_id, image_id),
	CONSTRAINT ck_image_scores_label_quality CHECK (label_quality >= 0 AND label_quality <= 1),
	CONSTRAINT fk_image_scores_run_id_runs FOREIGN KEY(run_id) REFERENCES runs (id) ON DELETE CASCADE,
	CONSTRAINT fk_image_scores_image_id_images FOREIGN KEY(image_id) REFERENCES images (id) ON DELETE CASCADE
);
CREATE INDEX ix_image_scores_run_quality ON image_scores (run_id, label_quality);
CREATE TABLE decisions (
	id INTEGER NOT NULL,
	finding_id INTEGER,
	image_id INTEGER,
	verdict VARCHAR(16) NOT NULL,
	source VARCHAR(16) NOT NULL,
	decided_at DATETIME NOT NULL,
	note TEXT,
	CONSTRAINT pk_decisions PRIMARY KEY (id),
	CONSTRAINT ck_decisions_verdict CHECK (verdict IN ('accept', 'reject', 'relabel')),
	CONSTRAINT ck_decisions_source CHECK (source IN ('cli', 'fiftyone')),
	CONSTRAINT ck_decisions_one_target CHECK (finding_id IS NULL OR image_id IS NULL),
	CONSTRAINT fk_decisions_finding_id_findings FOREIGN KEY(finding_id) REFERENCES findings (id) ON DELETE SET NULL,
	CONSTRAINT fk_decisions_image_id_images FOREIGN KEY(image_id) REFERENCES images (id) ON DELETE CASCADE
);
CREATE INDEX ix_decisions_finding_id ON decisions (finding_id);
CREATE INDEX ix_decisions_image_id ON decisions (image_id);
INSERT INTO schema_version (version, applied_at) VALUES (1, CURRENT_TIMESTAMP);
"""


def v1_statements() -> list[str]:
    """``V1_DDL`` split into single statements (no statement contains a ';')."""
    return [s.strip() for s in V1_DDL.split(";") if s.strip()]


_BACKFILL_CHUNK = 5000


def _v2_fingerprints(conn: Connection) -> None:
    """v2: findings and decisions get a fingerprint so decisions survive a rescan."""
    conn.execute(text("ALTER TABLE findings ADD COLUMN fingerprint VARCHAR(96)"))
    conn.execute(text("ALTER TABLE decisions ADD COLUMN fingerprint VARCHAR(96)"))
    conn.execute(text(
        "ALTER TABLE decisions ADD COLUMN carried_from_id INTEGER "
        "CONSTRAINT fk_decisions_carried_from_id_decisions "
        "REFERENCES decisions (id) ON DELETE SET NULL"))
    last_id, n = 0, 0
    while True:  # keyset pagination: memory stays flat however many findings there are
        rows = conn.execute(text(
            "SELECT id, image_id, given_class, suggested_class, bbox_x, bbox_y, bbox_w, bbox_h "
            "FROM findings WHERE id > :last ORDER BY id LIMIT :n"),
            {"last": last_id, "n": _BACKFILL_CHUNK}).all()
        if not rows:
            break
        conn.execute(text("UPDATE findings SET fingerprint = :fp WHERE id = :id"), [
            {"id": r[0], "fp": finding_fingerprint(r[1], r[2], r[3], (r[4], r[5], r[6], r[7]))}
            for r in rows])
        last_id, n = rows[-1][0], n + len(rows)
    conn.execute(text(
        "UPDATE decisions SET fingerprint = "
        "(SELECT f.fingerprint FROM findings f WHERE f.id = decisions.finding_id) "
        "WHERE finding_id IS NOT NULL"))
    conn.execute(text("CREATE INDEX ix_findings_image_fingerprint ON findings (image_id, fingerprint)"))
    conn.execute(text("CREATE INDEX ix_decisions_fingerprint ON decisions (fingerprint)"))
    log.info("schema v2: fingerprinted %d existing findings", n)


def _v3_scan_progress(conn: Connection) -> None:
    """v3: a scan's running totals (class pixel counts, skipped inputs) leave its config, which
    is the key a resumed scan is matched by, for a column of their own."""
    conn.execute(text("ALTER TABLE runs ADD COLUMN progress JSON"))
    rows = conn.execute(text("SELECT id, config FROM runs WHERE kind = 'scan'")).all()
    for run_id, config in rows:
        config = json.loads(config) if isinstance(config, str) else dict(config or {})
        progress = {k: config.pop(k) for k in ("class_pixels", "bad_inputs") if k in config}
        conn.execute(text("UPDATE runs SET config = :c, progress = :p WHERE id = :id"),
                     {"c": json.dumps(config), "p": json.dumps(progress), "id": run_id})
    log.info("schema v3: moved the progress of %d scan runs out of their config", len(rows))


def new_store_id() -> str:
    import uuid

    return uuid.uuid4().hex


def _v4_memorisation_and_id(conn: Connection) -> None:
    """v4: an ensemble teacher's evidence of memorisation (scan.memorisation); the store's id."""
    conn.execute(text("ALTER TABLE findings ADD COLUMN agreement FLOAT"))
    conn.execute(text("ALTER TABLE image_scores ADD COLUMN learnt_pixels INTEGER"))
    conn.execute(text("CREATE TABLE store_meta (key VARCHAR(32) NOT NULL, value TEXT NOT NULL, "
                      "CONSTRAINT pk_store_meta PRIMARY KEY (key))"))
    conn.execute(text("INSERT INTO store_meta (key, value) VALUES ('store_id', :v)"),
                 {"v": new_store_id()})


def _v5_pair_index(conn: Connection) -> None:
    """v5: one confusion pair's findings, most suspicious first, read from an index (at 100k
    images the (run_id, score) index walked all 300k findings of the run: 0.4-1.2 s)."""
    conn.execute(text("CREATE INDEX ix_findings_run_pair ON findings "
                      "(run_id, given_class, suggested_class, score)"))


def _v6_corrections(conn: Connection) -> None:
    """v6: hand corrections from an annotation tool (labelaudit.review.relabel)."""
    pg = conn.dialect.name == "postgresql"
    blob, stamp = ("BYTEA", "TIMESTAMP WITHOUT TIME ZONE") if pg else ("BLOB", "DATETIME")
    conn.execute(text(
        "CREATE TABLE corrections (id INTEGER NOT NULL, image_id INTEGER NOT NULL, run_id INTEGER, "
        f"label_png {blob} NOT NULL, base_sha256 VARCHAR(64), pixels_changed INTEGER NOT NULL, "
        f"source VARCHAR(16) NOT NULL, created_at {stamp} NOT NULL, note TEXT, "
        "CONSTRAINT pk_corrections PRIMARY KEY (id), "
        "CONSTRAINT ck_corrections_source CHECK (source IN ('labelstudio')), "
        "CONSTRAINT ck_corrections_pixels_changed CHECK (pixels_changed >= 0), "
        "CONSTRAINT fk_corrections_image_id_images FOREIGN KEY(image_id) REFERENCES images (id) "
        "ON DELETE CASCADE, "
        "CONSTRAINT fk_corrections_run_id_runs FOREIGN KEY(run_id) REFERENCES runs (id) "
        "ON DELETE SET NULL)"))
    conn.execute(text("CREATE INDEX ix_corrections_image_id ON corrections (image_id)"))


def _v7_scan_maps(conn: Connection) -> None:
    """v7: a scan's per-image maps in the store (models.ScanMap); older scans keep their files."""
    blob = "BYTEA" if conn.dialect.name == "postgresql" else "BLOB"
    conn.execute(text(
        "CREATE TABLE scan_maps (run_id INTEGER NOT NULL, image_id INTEGER NOT NULL, "
        f"teacher_png {blob} NOT NULL, suspicion_png {blob} NOT NULL, "
        "CONSTRAINT pk_scan_maps PRIMARY KEY (run_id, image_id), "
        "CONSTRAINT fk_scan_maps_run_id_runs FOREIGN KEY(run_id) REFERENCES runs (id) "
        "ON DELETE CASCADE, "
        "CONSTRAINT fk_scan_maps_image_id_images FOREIGN KEY(image_id) REFERENCES images (id) "
        "ON DELETE CASCADE)"))


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    apply: Callable[[Connection], None]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(2, "finding/decision fingerprints; decisions carried across rescans",
              _v2_fingerprints),
    Migration(3, "scan progress in runs.progress, not in runs.config", _v3_scan_progress),
    Migration(4, "findings.agreement, image_scores.learnt_pixels, store_meta (the store's id)",
              _v4_memorisation_and_id),
    Migration(5, "index of a confusion pair's findings by score", _v5_pair_index),
    Migration(6, "corrections: label maps corrected by hand", _v6_corrections),
    Migration(7, "scan_maps: a scan's per-image maps in the store", _v7_scan_maps),
)
"""Ordered steps; step ``k`` upgrades a version ``k-1`` database to version ``k``."""

CURRENT_VERSION = MIGRATIONS[-1].version if MIGRATIONS else 1
