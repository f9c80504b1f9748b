"""Test-wide settings: caches go to a temporary folder, never to the user's ~/.cache."""
from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("LABELAUDIT_CACHE", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="session")
def pg_server():
    """One PostgreSQL server for the session (tests/pgserver.py)."""
    from pgserver import PgServer

    with PgServer() as url:
        yield url


@pytest.fixture
def pg_url(pg_server, request):
    """A fresh, empty PostgreSQL database on the session's server: its SQLAlchemy URL."""
    import re

    from sqlalchemy import create_engine, text

    name = "t_" + re.sub(r"\W", "_", request.node.name)[:50].lower()
    admin = create_engine(pg_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        c.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return pg_server.replace("/postgres?", f"/{name}?")
