"""Test-wide settings and shared servers: caches go to a temporary folder, never to the user's
~/.cache; one PostgreSQL server and one throw-away FiftyOne database per session; a Label Studio
server per test module that asks for one."""
from __future__ import annotations

import os
import shutil
import sys
import tempfile

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


@pytest.fixture(scope="session")
def fiftyone_home():
    """A throw-away FiftyOne database for the session (the review and relabel tests); everything
    FiftyOne started is stopped at the end."""
    if "fiftyone" in sys.modules:
        pytest.fail("fiftyone was imported before the review tests chose its database directory")
    keys = ("FIFTYONE_DATABASE_DIR", "FIFTYONE_DO_NOT_TRACK", "FIFTYONE_DATABASE_VALIDATION")
    saved = {k: os.environ.get(k) for k in keys}
    home = tempfile.mkdtemp(prefix="labelaudit-fo-")
    os.environ.update(FIFTYONE_DATABASE_DIR=home, FIFTYONE_DO_NOT_TRACK="true",
                      FIFTYONE_DATABASE_VALIDATION="false")
    yield home
    from labelaudit.review import stop_fiftyone

    stop_fiftyone()
    shutil.rmtree(home, ignore_errors=True)
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="module")
def label_studio():
    """A Label Studio server for one test module (tests/lsserver.py): .url, .token. Not kept
    for the session: its development server polls the source files and takes CPU while idle."""
    from lsserver import LabelStudioServer

    with LabelStudioServer() as server:
        yield server
