"""Keeping a long scan's process memory and its housekeeping flat.

Two costs that grow with what the process holds, not with the work of a batch: glibc keeping
freed pages (`HeapTrimmer`), and Python's cyclic garbage collector walking every object the
process has made so far (`long_lived_frozen`).
"""
from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import Iterator


class HeapTrimmer:
    """Hands the heap's free pages back to the OS after each batch (glibc `malloc_trim`).

    Each batch allocates and frees ~0.7 MB probability maps per image next to the network's
    activations; glibc keeps the freed pages, and the heap's holes made the scan's resident
    memory creep up over its first few hundred images (measured: 421 -> 448 MB over 320 images
    of the cpu preset; Python and numpy allocations themselves stay flat). Trimming once per
    batch keeps the peak flat (benchmark: 400 MB for 60 images, 397 MB for 240). A trim costs
    ~2 ms, so it runs every `every`-th call (a few batches' holes at most). A no-op where the C
    library has no `malloc_trim`.
    """

    def __init__(self, every: int = 4) -> None:
        import ctypes

        self.every, self._calls = every, 0
        try:  # the symbols already loaded into this process (no library search, no subprocess)
            self._trim = getattr(ctypes.CDLL(None), "malloc_trim", None)
        except OSError:
            self._trim = None

    @property
    def active(self) -> bool:
        return self._trim is not None

    def __call__(self) -> None:
        self._calls += 1
        if self._trim is not None and self._calls % self.every == 0:
            self._trim(0)


@contextmanager
def long_lived_frozen() -> Iterator[None]:
    """Leave the objects that exist now (the libraries, the networks, the dataset index) out of
    the garbage collector's passes while the block runs (`gc.freeze`), then hand them back.

    Why: the per-image objects of a scan (regions, ORM rows, small arrays) trigger collections,
    and each older-generation pass walks every object of the process. In the CLI (typer,
    SQLAlchemy, torch, sklearn all loaded) that cost 0.5 ms of the scan's ~4.6 ms own work per
    image (docs/experiments.md, stop 24). Nothing is done when the caller froze objects itself.
    """
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
