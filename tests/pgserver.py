"""A throwaway PostgreSQL server for the tests: its own cluster in a temporary folder, listening
on a Unix socket only, stopped by its PID at the end. `scripts/setup.sh` installs PostgreSQL
where it is missing; a test that needs it fails (it is never skipped) when it cannot start."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

USER = "labelaudit"


def _bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for folder in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (folder / name).exists():
            return str(folder / name)
    raise RuntimeError(f"PostgreSQL's {name} not found; run scripts/setup.sh (it installs "
                       "the postgresql package)")


def _as_owner(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run as the `postgres` system user then."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


class PgServer:
    """`with PgServer() as url:` a SQLAlchemy URL of an empty database; the cluster lives in a
    fresh folder under the system temp folder (which the `postgres` user can reach), removed
    at the end."""

    def __init__(self, port: int = 55432) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="labelaudit-pg-"))
        self.port = port
        self.data, self.sock = self.folder / "data", self.folder / "sock"
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> str:
        self.sock.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres")
            shutil.chown(self.sock, "postgres")
        done = subprocess.run(_as_owner([_bin("initdb"), "-D", str(self.data), "-U", USER,
                                         "--auth=trust", "-E", "UTF8"]), capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"initdb failed in {self.folder}: {done.stderr.strip()}")
        self.proc = subprocess.Popen(
            _as_owner([_bin("postgres"), "-D", str(self.data), "-k", str(self.sock), "-p", str(self.port),
                       "-c", "listen_addresses=", "-c", "fsync=off"]),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"postgresql+psycopg://{USER}@/postgres?host={self.sock}&port={self.port}"
        self._wait(url)
        return url

    def _wait(self, url: str, seconds: float = 30.0) -> None:
        from sqlalchemy import create_engine, text

        engine = create_engine(url)
        t0 = time.monotonic()
        try:
            while True:
                try:
                    with engine.connect() as c:
                        c.execute(text("select 1"))
                    return
                except Exception:
                    if time.monotonic() - t0 > seconds or self.proc.poll() is not None:
                        raise RuntimeError(f"PostgreSQL did not start in {self.folder}") from None
                    time.sleep(0.2)
        finally:
            engine.dispose()

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # smart shutdown of this server's PID only
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.folder, ignore_errors=True)
