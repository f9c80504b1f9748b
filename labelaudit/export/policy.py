"""Which findings an export applies: a pure function of the findings, their decisions and a policy.

Policies: "accepted" applies the findings a reviewer accepted (directly, or through an accepted
image); "threshold:S" also applies every finding scoring >= S that nobody rejected or sent to
relabelling. A finding's own decision wins over its image's.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from labelaudit.store.models import VERDICTS

ACCEPT, REJECT, RELABEL = VERDICTS


class _Finding(Protocol):
    id: int
    image_id: int
    score: float


@dataclass(frozen=True)
class Policy:
    """threshold None: accepted findings only; else also unrejected findings scoring >= it."""

    name: str
    threshold: float | None = None


def parse_policy(policy: str) -> Policy:
    """"accepted" or "threshold:S" (0 <= S <= 1) -> Policy; anything else is a ValueError."""
    if policy == "accepted":
        return Policy(policy)
    if policy.startswith("threshold:"):
        try:
            s = float(policy.split(":", 1)[1])
        except ValueError:
            s = -1.0
        if 0.0 <= s <= 1.0:
            return Policy(policy, s)
    raise ValueError(f"--policy must be 'accepted' or 'threshold:S' with 0 <= S <= 1, got {policy!r}")


def verdict_of(finding: _Finding, by_finding: Mapping[int, str], by_image: Mapping[int, str]) -> str | None:
    """The verdict in force for a finding: its own, else its image's, else None."""
    return by_finding.get(finding.id, by_image.get(finding.image_id))


def applies(finding: _Finding, verdict: str | None, policy: Policy) -> bool:
    """Does `policy` apply this finding, given the verdict in force for it?"""
    if verdict == ACCEPT:
        return True
    return (policy.threshold is not None and finding.score >= policy.threshold
            and verdict not in (REJECT, RELABEL))


def select_findings(findings: Iterable[_Finding], by_finding: Mapping[int, str],
                    by_image: Mapping[int, str], policy: Policy) -> dict[int, list]:
    """{image_id: [findings to apply]} in the order given."""
    out: dict[int, list] = {}
    for f in findings:
        if applies(f, verdict_of(f, by_finding, by_image), policy):
            out.setdefault(f.image_id, []).append(f)
    return out
