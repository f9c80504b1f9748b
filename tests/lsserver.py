"""A throwaway Label Studio server for the relabel tests: its own data folder, 127.0.0.1 only, a
known API token, stopped by its PID (and the process group it leads) at the end.

Label Studio lives in its own virtual environment (`.venv-labelstudio`, made by
scripts/setup.sh: its pins clash with the project's numpy); $LABELAUDIT_LABEL_STUDIO names
another `label-studio` executable. A test that needs it fails (never skips) when it cannot start.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def executable() -> str:
    found = os.environ.get("LABELAUDIT_LABEL_STUDIO") or str(ROOT / ".venv-labelstudio" / "bin" / "label-studio")
    if not Path(found).exists():
        raise RuntimeError(f"Label Studio not found at {found}; run scripts/setup.sh (it installs it)")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LabelStudioServer:
    """`with LabelStudioServer() as ls:` ls.url, ls.token (a legacy API token, the kind
    FiftyOne's Label Studio backend sends)."""

    def __init__(self, start_seconds: float = 240.0) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="labelaudit-ls-"))
        self.port, self.token = _free_port(), secrets.token_hex(20)
        self.url = f"http://127.0.0.1:{self.port}"
        self.start_seconds = start_seconds
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> LabelStudioServer:
        env = {**os.environ, "LABEL_STUDIO_BASE_DATA_DIR": str(self.folder),
               "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true"}
        self.log = open(self.folder / "server.log", "w")
        self.proc = subprocess.Popen(
            [executable(), "start", "--no-browser", "--port", str(self.port), "--internal-host",
             "127.0.0.1", "--data-dir", str(self.folder / "data"), "--username", "test@labelaudit.local",
             "--password", secrets.token_hex(8), "--user-token", self.token, "--enable-legacy-api-token"],
            env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        self._wait()
        return self

    def _wait(self) -> None:
        t0 = time.monotonic()
        while True:
            try:
                self.get("/api/projects")
                return
            except OSError:
                if time.monotonic() - t0 > self.start_seconds or self.proc.poll() is not None:
                    tail = (self.folder / "server.log").read_text()[-2000:]
                    self.__exit__()
                    raise RuntimeError(f"Label Studio did not start:\n{tail}") from None
                time.sleep(1.0)

    def get(self, path: str, **params) -> dict | list:
        return self._call("GET", path, params=params)

    def post(self, path: str, body: dict) -> dict:
        return self._call("POST", path, body=body)

    def _call(self, method: str, path: str, params: dict | None = None, body: dict | None = None):
        query = "?" + "&".join(f"{k}={v}" for k, v in params.items()) if params else ""
        req = urllib.request.Request(
            self.url + path + query, method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Token {self.token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read() or b"null")

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # the server and its autoreload child
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.folder, ignore_errors=True)
