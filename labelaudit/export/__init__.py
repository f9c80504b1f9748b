"""Corrected label trees from reviewed findings (DESIGN §7).

    res = export_labels(store, out="/data/LaPa-fixed", policy="accepted")
    # then: labelaudit train --root /data/LaPa --labels /data/LaPa-fixed
"""
from __future__ import annotations

from .write import ExportResult, export_labels, parse_policy

__all__ = ["ExportResult", "export_labels", "parse_policy"]
