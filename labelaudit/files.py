"""Atomic writes: the one way labelaudit writes a file or a whole folder that others may read.

- :func:`atomic_file` / :func:`write_bytes_atomic`: a temporary file in the same folder, flushed
  and fsynced, then ``os.replace``: a reader sees the old file or the whole new one, never half.
- :func:`atomic_folder`: a folder built beside its destination, then swapped in. On Linux the
  swap is one ``renameat2(RENAME_EXCHANGE)`` call, so the destination always exists and is
  always complete; elsewhere (or on a file system without it) the old folder is first renamed
  aside, so there is a moment in which the destination does not exist, but it is never half
  written. Either way the old folder is deleted afterwards, and a failure leaves it untouched.

Also the one file hash (:func:`sha256_file`, streamed) that manifests, the store and the scan's
teacher record use, and :func:`copy_hashed`, a copy that hashes what it copies (export's
byte-for-byte copies of unchanged label files; they sit inside an atomic folder).
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


CACHE_ENV_VAR = "LABELAUDIT_CACHE"


def user_cache_dir() -> Path:
    """Where labelaudit caches derived files: ``$LABELAUDIT_CACHE``, else
    ``$XDG_CACHE_HOME/labelaudit``, else ``~/.cache/labelaudit``. Never inside a dataset."""
    if os.environ.get(CACHE_ENV_VAR):
        return Path(os.environ[CACHE_ENV_VAR]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "labelaudit"


@contextmanager
def atomic_file(path: str | Path, mode: str = "wb", newline: str | None = None,
                durable: bool = True) -> Iterator[IO]:
    """Open a temporary file that becomes `path` when the block ends without an error.

    Parents are created; the file gets mode 0644 (mkstemp's 0600 would hide shared labels).
    `durable`: flushed to the disk before the rename (an fsync, ~4 ms here); off for caches
    that can be made again, where a crash may leave the file empty but never half-written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, newline=newline) as f:
            yield f
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: str | Path, data: bytes, durable: bool = True) -> Path:
    """Write `data` to `path` atomically (see :func:`atomic_file`)."""
    with atomic_file(path, durable=durable) as f:
        f.write(data)
    return Path(path)


@contextmanager
def atomic_folder(out: str | Path) -> Iterator[Path]:
    """Yield an empty temporary folder beside `out`; when the block succeeds it replaces `out`.

    A leftover temporary folder from an interrupted earlier attempt is removed first. On an
    error the temporary folder is deleted and `out` is left as it was.
    """
    out = Path(out)
    tmp = out.with_name(f".{out.name}.partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        _swap_in(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _swap_in(new: Path, out: Path) -> None:
    if not out.exists():
        os.replace(new, out)
        return
    if _exchange(new, out):
        shutil.rmtree(new)  # `new` now holds the old folder
        return
    old = out.with_name(f".{out.name}.old")
    if old.exists():
        shutil.rmtree(old)
    os.replace(out, old)
    os.replace(new, out)
    shutil.rmtree(old)


@functools.lru_cache(maxsize=1)
def _renameat2():
    """libc's renameat2, looked up once in the loaded process; None where it is missing."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError, TypeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return fn


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one system call (Linux renameat2); False where that is unavailable."""
    renameat2 = _renameat2()
    if renameat2 is None:
        return False
    rc = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc != 0:
        log.debug("renameat2(RENAME_EXCHANGE) failed (errno %d); renaming in two steps", ctypes.get_errno())
        return False
    return True


def copy_hashed(src: str | Path, dst: str | Path) -> str:
    """Copy `src` to `dst` (bytes and times) and return the sha256 of the bytes: the source is
    read once. (shutil.copy2 and then a hash of the copy read it twice and, through sendfile,
    ran 11x slower on 10,000 small label files here.) `dst`'s folder must exist."""
    h = hashlib.sha256()
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        for chunk in iter(lambda: fin.read(1 << 20), b""):
            h.update(chunk)
            fout.write(chunk)
    shutil.copystat(src, dst)
    return h.hexdigest()


def sha256_file(path: str | Path) -> str:
    """The hex sha256 of a file, read in 1 MiB chunks (checkpoints can be large)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
