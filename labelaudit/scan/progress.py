"""A scan run's running totals (`runs.progress`), kept per rank so that the ranks of a sharded
scan (torchrun) never overwrite each other: {"ranks": {"0": {...}, "1": {...}}, "estimate": ...}.

One rank's entry: class_pixels (C,), bad_inputs [[path, problem]], p_hist (per teacher, the
calibrated scorer's logit histogram). Totals are sums over the entries; a run written before
ranks existed (its totals at the top level) reads as rank 0.
"""
from __future__ import annotations

from typing import Any


def rank_entry(progress: dict[str, Any] | None, rank: int) -> dict[str, Any]:
    """This rank's own totals (empty when it has none yet)."""
    progress = progress or {}
    ranks = progress.get("ranks")
    if ranks is None:  # the single-process layout of schema v3
        return {k: progress[k] for k in ("class_pixels", "bad_inputs", "p_hist") if k in progress} \
            if rank == 0 else {}
    return dict(ranks.get(str(rank), {}))


def with_rank(progress: dict[str, Any] | None, rank: int, entry: dict[str, Any]) -> dict[str, Any]:
    """A copy of `progress` with this rank's entry replaced."""
    progress = dict(progress or {})
    ranks = progress.pop("ranks", None)
    if ranks is None:
        old = {k: progress.pop(k) for k in ("class_pixels", "bad_inputs", "p_hist") if k in progress}
        ranks = {"0": old} if old else {}
    return {**progress, "ranks": {**ranks, str(rank): entry}}


def totals(progress: dict[str, Any] | None) -> dict[str, Any]:
    """class_pixels and p_hist summed over the ranks, bad_inputs of all ranks."""
    progress = progress or {}
    entries = list((progress.get("ranks") or {}).values()) or [rank_entry(progress, 0)]
    out: dict[str, Any] = {"class_pixels": None, "bad_inputs": [], "p_hist": None}
    for e in entries:
        if e.get("class_pixels") is not None:
            out["class_pixels"] = _add(out["class_pixels"], e["class_pixels"])
        if e.get("p_hist") is not None:
            out["p_hist"] = [_add(a, b) for a, b in zip(out["p_hist"] or [None] * len(e["p_hist"]),
                                                        e["p_hist"])]
        out["bad_inputs"] += [b for b in e.get("bad_inputs", []) if b not in out["bad_inputs"]]
    return out


def _add(a: list | None, b: list) -> list:
    return list(b) if a is None else [x + y for x, y in zip(a, b)]
