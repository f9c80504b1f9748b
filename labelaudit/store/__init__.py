"""The findings store (docs/design.md §5): datasets, runs, scores, findings, decisions,
hand corrections and exports in SQL.

    store = open_db(default_db_url(run_dir))        # SQLite file or any SQLAlchemy URL
    with store.session() as s:
        run = repo.start_run(s, "scan", dataset, config, seed=0)
        repo.write_scan_batch(s, run, results)      # one transaction per batch, resumable

Score directions: ``label_quality`` LOW = worst image; ``Finding.score`` HIGH = most suspicious.
"""
from __future__ import annotations

from . import repo
from .db import SchemaTooNewError, Store, StoreError, default_db_url, open_db
from .migrations import CURRENT_VERSION
from .models import Correction, Dataset, Decision, Export, Finding, Image, ImageScore, Run
from .rows import ConfusionPair, FindingRecord, ImageResult, ImageRow, finding_fingerprint
from .repo import (
    RunDecisions, carry_decisions, confusion_pairs, decisions_for_run, exports_for_run,
    findings_for_image, finish_run, get_or_create_dataset, iter_findings, latest_run,
    record_decision, record_export, scored_image_ids, start_run, top_images, upsert_images,
    write_scan_batch,
)
from .rle import decode_mask, encode_mask

__all__ = [
    "CURRENT_VERSION", "ConfusionPair", "Correction", "Dataset", "Decision", "Export", "Finding",
    "FindingRecord", "Image", "ImageResult", "ImageRow", "ImageScore", "Run", "RunDecisions",
    "SchemaTooNewError", "Store", "StoreError", "carry_decisions", "confusion_pairs",
    "decisions_for_run", "decode_mask", "default_db_url", "encode_mask", "exports_for_run",
    "finding_fingerprint", "findings_for_image", "finish_run", "get_or_create_dataset",
    "iter_findings", "latest_run", "open_db", "record_decision", "record_export", "repo",
    "scored_image_ids", "start_run", "top_images", "upsert_images", "write_scan_batch",
]
