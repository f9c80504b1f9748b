"""On-disk dataset formats and `open_source`, the one way to open any of them."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from labelaudit.data.errors import BadInputError
from labelaudit.data.formats.celebamask import CelebAMaskSource
from labelaudit.data.formats.folder import FolderSource
from labelaudit.data.formats.helen import HelenSource
from labelaudit.data.formats.lapa import LapaSource
from labelaudit.data.source import Source

log = logging.getLogger(__name__)

KINDS: tuple[str, ...] = ("lapa", "celebamask", "helen", "folder", "synthetic")
_ALIASES = {"celebamask-hq": "celebamask", "celebamaskhq": "celebamask", "celeba": "celebamask"}
_SOURCES: dict[str, type[Source]] = {
    "lapa": LapaSource, "celebamask": CelebAMaskSource, "helen": HelenSource, "folder": FolderSource,
}


def detect_layout(root: str | Path) -> str:
    """Which format's layout `root` has: "celebamask", "helen" or "lapa" (the default)."""
    root = Path(root)
    if (root / "CelebA-HQ-img").is_dir():
        return "celebamask"
    if (root / "exemplars.txt").is_file():
        return "helen"
    if (root / "classes.txt").is_file() and (root / "images").is_dir():
        return "folder"
    return "lapa"


def open_source(kind: str, root: str | Path, **options: Any) -> Source:
    """Open the dataset at `root` stored in format `kind`.

    Args:
        kind: "lapa", "celebamask", "helen", "folder", or "synthetic" (generated data, written
            in the LaPa layout or the CelebAMask-HQ / Helen one: the layout is detected).
        root: the dataset root folder.
        **options: format options. All formats take on_bad="raise"|"skip"; celebamask also
            takes merge_order, cache_dir, cache, partition_file (see CelebAMaskSource).

    Raises:
        BadInputError: the root or a required file is missing.
        ValueError: unknown kind, or an option the format does not take.
    """
    key = _ALIASES.get(kind.lower(), kind.lower())
    if key == "synthetic":
        if not Path(root).is_dir():
            raise BadInputError(root, "dataset root folder not found")
        key = detect_layout(root)
        log.info("synthetic dataset %s: %s layout", root, key)
    if key not in _SOURCES:
        raise ValueError(f"unknown dataset kind {kind!r}; expected one of {', '.join(KINDS)}")
    cls = _SOURCES[key]
    try:
        return cls(root, **options)
    except TypeError as e:
        if "unexpected keyword" in str(e):
            raise ValueError(f"{key}: {e}") from None
        raise


__all__ = ["KINDS", "open_source", "detect_layout", "Source", "LapaSource", "CelebAMaskSource",
           "HelenSource", "FolderSource"]
