"""Atomic writes: a file or folder appears whole or not at all; a failure leaves the old one."""
from __future__ import annotations

import pytest

from labelaudit.files import atomic_file, atomic_folder, copy_hashed, write_bytes_atomic


def test_atomic_file_replaces_only_on_success(tmp_path):
    p = tmp_path / "a" / "x.bin"
    write_bytes_atomic(p, b"old")
    with pytest.raises(RuntimeError):
        with atomic_file(p) as f:
            f.write(b"half")
            raise RuntimeError
    assert p.read_bytes() == b"old"
    assert [q.name for q in p.parent.iterdir()] == ["x.bin"]  # no temporary left behind
    write_bytes_atomic(p, b"new")
    assert p.read_bytes() == b"new" and oct(p.stat().st_mode & 0o777) == "0o644"


def test_atomic_folder_swaps_whole_folders_and_keeps_the_old_on_failure(tmp_path):
    out = tmp_path / "tree"
    with atomic_folder(out) as tmp:
        (tmp / "a.txt").write_text("1")
    assert (out / "a.txt").read_text() == "1"
    with pytest.raises(KeyboardInterrupt):
        with atomic_folder(out) as tmp:
            (tmp / "b.txt").write_text("2")
            raise KeyboardInterrupt
    assert sorted(p.name for p in out.iterdir()) == ["a.txt"]
    with atomic_folder(out) as tmp:
        (tmp / "b.txt").write_text("2")
    assert sorted(p.name for p in out.iterdir()) == ["b.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tree"]  # nothing left beside it


def test_copy_hashed_copies_bytes_and_times_and_returns_their_sha256(tmp_path):
    import hashlib
    import os

    src = tmp_path / "big.bin"
    data = os.urandom((1 << 20) * 2 + 123)  # more than one read chunk
    src.write_bytes(data)
    os.utime(src, (1_000_000_000, 1_000_000_000))
    dst = tmp_path / "copy.bin"
    assert copy_hashed(src, dst) == hashlib.sha256(data).hexdigest()
    assert dst.read_bytes() == data and dst.stat().st_mtime == 1_000_000_000


def test_only_durable_writes_flush_to_the_disk(tmp_path, monkeypatch):
    """A cache file (durable=False) skips the fsync that a label or a checkpoint gets."""
    import os

    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd)))
    write_bytes_atomic(tmp_path / "label.png", b"kept")
    assert len(synced) == 1
    write_bytes_atomic(tmp_path / "cache.png", b"again", durable=False)
    assert len(synced) == 1 and (tmp_path / "cache.png").read_bytes() == b"again"
