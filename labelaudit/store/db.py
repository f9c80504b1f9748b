"""Opening the findings database: URL handling, SQLite pragmas, schema creation and upgrade.

``open_db`` takes any SQLAlchemy URL (``postgresql+psycopg://...`` for a team) or a plain file
path (-> SQLite). Every SQLite connection gets WAL journaling, foreign keys, a busy timeout and
synchronous=NORMAL. Opening a database made by an older labelaudit upgrades it in place; one made
by a newer labelaudit is refused.
"""
from __future__ import annotations

import json
import logging
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, func, inspect, insert, select, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool

from .migrations import CURRENT_VERSION, MIGRATIONS, new_store_id
from .models import Base, schema_version, store_meta

log = logging.getLogger(__name__)

DB_ENV_VAR = "LABELAUDIT_DB"
DB_FILENAME = "labelaudit.db"
SQLITE_BUSY_TIMEOUT_MS = 30_000
"""How long a SQLite writer waits for another (scan vs review sync) before failing."""


class StoreError(RuntimeError):
    """The database cannot be used by this version of labelaudit."""


class SchemaTooNewError(StoreError):
    """The database was written by a newer labelaudit (higher schema version)."""


def default_db_url(run_dir: str | Path | None = None) -> str:
    """``$LABELAUDIT_DB`` if set, else ``<run_dir>/labelaudit.db``, else ``./labelaudit.db``.

    Returns a SQLAlchemy URL string (an absolute ``sqlite:///`` path unless the env var says
    otherwise; the env var may itself be a URL or a plain path, both accepted by ``open_db``).
    """
    env = os.environ.get(DB_ENV_VAR, "").strip()
    if env:
        return env
    base = Path(run_dir) if run_dir is not None else Path.cwd()
    return URL.create("sqlite", database=str((base / DB_FILENAME).absolute())).render_as_string()


def to_url(url: str | Path | URL) -> URL:
    """A SQLAlchemy URL from a URL string or a plain file path (-> SQLite)."""
    if isinstance(url, URL):
        return url
    if isinstance(url, str) and "://" in url:
        return make_url(url)
    return URL.create("sqlite", database=str(Path(url).expanduser()))


def describe(url: URL) -> str:
    """How to name the database in messages: the file for SQLite, else the URL sans password."""
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        return str(url.database)
    return url.render_as_string(hide_password=True)


def _sqlite_file(url: URL) -> Path | None:
    """The database file of a plain SQLite URL; None for other databases, memory and file: URIs."""
    if url.get_backend_name() != "sqlite" or _is_sqlite_memory(url) or str(url.database).startswith("file:"):
        return None
    return Path(str(url.database)).expanduser()


def _is_sqlite_memory(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def json_dumps(obj: Any) -> str:
    """JSON text of a config/versions dict as the store keeps it (Paths, enums -> their str)."""
    # Resolved configs carry Paths and enums: store their text rather than fail mid-run.
    return json.dumps(obj, default=str, sort_keys=True)


def _set_wal(cur: Any) -> None:
    """Switch the file to WAL journaling. SQLite answers "database is locked" at once, without
    its busy handler, when another process holds the new file (ranks of a sharded scan opening
    one new store): retry for up to the busy timeout. The mode is kept in the file, so only the
    first opener of a store ever waits here."""
    import sqlite3

    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as err:
            if "locked" not in str(err) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _install_sqlite_hooks(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # pysqlite's own transaction handling defers BEGIN and autocommits DDL, which would make a
        # migration non-atomic; take over BEGIN ourselves (the documented SQLAlchemy recipe).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        _set_wal(cur)
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "")
        conn.exec_driver_sql(f"BEGIN {mode}".strip())


class Store:
    """An opened, up-to-date findings database.

    Use ``with store.session() as s:`` and pass ``s`` to the functions of ``repo``; each write
    function there commits its own transaction.
    """

    def __init__(self, engine: Engine, location: str) -> None:
        self.engine = engine
        self.location = location

    def session(self) -> Session:
        """A new session; objects stay usable after a commit (``expire_on_commit=False``)."""
        return Session(self.engine, expire_on_commit=False)

    def schema_version(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.scalar(select(func.max(schema_version.c.version))))

    @property
    def store_id(self) -> str:
        """The random id this store was given when it was made (schema v4)."""
        if not hasattr(self, "_store_id"):
            with self.engine.connect() as conn:
                self._store_id = str(conn.scalar(
                    select(store_meta.c.value).where(store_meta.c.key == "store_id")))
        return self._store_id

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.location!r})"


def open_db(url: str | Path | URL, *, echo: bool = False, must_exist: bool = False) -> Store:
    """Open (creating or upgrading as needed) the findings database at ``url``.

    Args:
        url: a SQLAlchemy URL or a plain file path (SQLite; parent folders are created).
        echo: log every SQL statement (debugging).
        must_exist: a SQLite file that does not exist is an error instead of a new, empty store
            (commands that only read findings must not leave an empty database behind).
    Raises:
        SchemaTooNewError: the database was written by a newer labelaudit.
        StoreError: the database has tables but is not a labelaudit store.
    """
    sa_url = to_url(url)
    db_file = _sqlite_file(sa_url)
    if must_exist and db_file is not None and not db_file.exists():
        raise StoreError(f"{db_file}: no findings store here; run `labelaudit scan` first "
                         "or point --db at the store")
    kwargs: dict[str, Any] = {"echo": echo, "json_serializer": json_dumps}
    if _is_sqlite_memory(sa_url):  # one shared connection, else every checkout is a new DB
        kwargs.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
    elif db_file is not None:
        db_file.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(sa_url, **kwargs)
    if sa_url.get_backend_name() == "sqlite":
        _install_sqlite_hooks(engine)
    location = describe(sa_url)
    try:
        upgrade_schema(engine, location)
    except BaseException:
        engine.dispose()
        raise
    return Store(engine, location)


_PG_SCHEMA_LOCK = 0x6C61_6175  # advisory lock key of the schema step ("laau")


def upgrade_schema(engine: Engine, location: str) -> int:
    """Create the schema in an empty database or upgrade an older one; returns the version.

    Runs in one transaction that first takes a lock, so that two processes opening the same new
    store (two ranks of a sharded scan, two users) do not both create it: on SQLite a
    write-locking BEGIN IMMEDIATE, on PostgreSQL a transaction-level advisory lock.
    """
    with engine.connect().execution_options(sqlite_begin="IMMEDIATE") as conn, conn.begin():
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_SCHEMA_LOCK})
        tables = set(inspect(conn).get_table_names())
        now = datetime.now(timezone.utc).replace(tzinfo=None)
        if not tables:
            Base.metadata.create_all(conn)
            conn.execute(insert(schema_version).values(version=CURRENT_VERSION, applied_at=now))
            conn.execute(insert(store_meta).values(key="store_id", value=new_store_id()))
            log.info("created labelaudit store v%d at %s", CURRENT_VERSION, location)
            return CURRENT_VERSION
        if "schema_version" not in tables:
            raise StoreError(
                f"{location}: not a labelaudit database (it has tables {sorted(tables)} but no "
                "schema_version table); point --db / LABELAUDIT_DB at another file")
        version = conn.scalar(select(func.max(schema_version.c.version)))
        if version is None:
            raise StoreError(f"{location}: schema_version table is empty; cannot tell its version")
        version = int(version)
        if version > CURRENT_VERSION:
            raise SchemaTooNewError(
                f"{location}: database schema version {version} is newer than this labelaudit "
                f"understands (version {CURRENT_VERSION}); upgrade labelaudit to open it")
        for step in MIGRATIONS:
            if step.version <= version:
                continue
            log.info("upgrading %s: schema v%d -> v%d (%s)",
                     location, step.version - 1, step.version, step.description)
            step.apply(conn)
            conn.execute(insert(schema_version).values(version=step.version, applied_at=now))
            version = step.version
        return version
