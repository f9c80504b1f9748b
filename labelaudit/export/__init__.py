"""Corrected label trees from reviewed findings (docs/design.md §7).

    res = export_labels(store, out="/data/LaPa-fixed", policy="accepted")
    # then: labelaudit train --root /data/LaPa --labels /data/LaPa-fixed

`policy` decides which findings apply, `apply` changes one label map, `write` reads and writes
the dataset's files.
"""
from __future__ import annotations

from .apply import apply_findings
from .policy import Policy, parse_policy, select_findings
from .write import ExportResult, export_labels

__all__ = ["ExportResult", "Policy", "apply_findings", "export_labels", "parse_policy", "select_findings"]
