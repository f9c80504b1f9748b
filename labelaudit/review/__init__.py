"""Review in the FiftyOne App (docs/design.md §6): a persistent dataset per scan, tags back to the store.

    ds = build_review_dataset(store)          # or `labelaudit review`
    session = launch(ds)                      # reviewers tag findings accept / reject / relabel
    sync_decisions(store, ds)                 # tags -> decisions table

FiftyOne is an optional extra (`pip install labelaudit[review]`); nothing else imports it.
"""
from __future__ import annotations

from .app import launch, serve, stop_fiftyone, stop_signals
from .dataset import FINDINGS_VIEW, build_review_dataset, dataset_name
from .sync import VERDICT_TAGS, sync_decisions

__all__ = ["FINDINGS_VIEW", "VERDICT_TAGS", "build_review_dataset", "dataset_name", "launch", "serve",
           "stop_fiftyone", "stop_signals", "sync_decisions"]
