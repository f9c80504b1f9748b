"""The audit (docs/design.md §4): teacher probabilities -> suspect pixels -> findings -> the store.

    from labelaudit.scan import ScanOptions, run_scan, summarize
    result = run_scan(ScanOptions(run_dir=Path("runs/latest")))
"""
from __future__ import annotations

from .score import KINDS, ConfidenceStats, ImageAudit, Region, ScanParams, audit_image, self_confidence
from .summary import ScanSummary, listed_phrase, resolve_scan_run, shift_phrase, summarize, write_csvs

__all__ = [
    "KINDS", "ConfidenceStats", "ImageAudit", "Region", "ScanOptions", "ScanParams", "ScanResult",
    "ScanSummary", "audit_image", "listed_phrase", "resolve_scan_run", "shift_phrase", "run_scan", "self_confidence",
    "summarize", "write_csvs",
]


def __getattr__(name: str):
    # run.py imports torch; keep `import labelaudit.scan` light for the store-only commands
    if name in ("ScanOptions", "ScanResult", "run_scan"):
        from . import run

        return getattr(run, name)
    raise AttributeError(name)
