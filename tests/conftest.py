"""Test-wide settings: caches go to a temporary folder, never to the user's ~/.cache."""
from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("LABELAUDIT_CACHE", str(tmp_path_factory.mktemp("cache")))
