"""The decision a policy recommends, in LEGAL.md's JSON format."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from letterlock.errors import InvalidInput
from letterlock.policy.model import format_time, parse_time

DISCLOSING = frozenset({"disclose"})
TRANSPARENCY_BUCKETS = ("content", "non-content", "no-data", "preservation", "rejected")
"""The transparency report's buckets a decision falls in (:func:`transparency_bucket`)."""


@dataclass(frozen=True)
class Finding:
    """The outcome for one (target, category), with the rules that led to it."""

    outcome: str
    reasons: tuple[str, ...]
    policies: tuple[str, ...]  # deciding policy first, then every other matching one
    flags: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "reasons": list(self.reasons),
                "policies": list(self.policies), "flags": list(self.flags)}


@dataclass(frozen=True)
class Deadline:
    kind: str
    due: datetime

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "due": format_time(self.due)}


@dataclass(frozen=True)
class UserNotice:
    when: str  # before-disclosure | at-gag-expiry | after-emergency | on-authority-request | none
    # on-authority-request: an EU order's confidentiality (Regulation 2023/1543
    # art. 13): the provider tells the user only once the issuing authority asks it to.
    not_before: datetime | None

    def to_json(self) -> dict[str, Any]:
        return {"when": self.when,
                "not_before": None if self.not_before is None else format_time(self.not_before)}


@dataclass(frozen=True)
class Decision:
    profile: str
    evaluated_at: datetime
    targets: tuple[tuple[str, tuple[tuple[str, Finding], ...]], ...]
    deadlines: tuple[Deadline, ...]
    user_notice: UserNotice
    transparency: str  # content | non-content | no-data | preservation | rejected

    def findings(self) -> list[tuple[str, str, Finding]]:
        """Every (target, category, finding), in request order."""
        return [(t, c, f) for t, cats in self.targets for c, f in cats]

    def finding(self, target: str, category: str) -> Finding:
        for t, c, f in self.findings():
            if t == target and c == category:
                return f
        raise KeyError((target, category))

    def to_json(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "evaluated_at": format_time(self.evaluated_at),
            "targets": {t: {c: f.to_json() for c, f in cats} for t, cats in self.targets},
            "deadlines": [d.to_json() for d in self.deadlines],
            "user_notice": self.user_notice.to_json(),
            "transparency": self.transparency,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Decision:
        """Read back a decision written by :meth:`to_json` (e.g. from a matter store)."""
        try:
            targets = tuple(
                (t, tuple(
                    (c, Finding(outcome=str(f["outcome"]),
                                reasons=tuple(f["reasons"]), policies=tuple(f["policies"]),
                                flags=tuple(f["flags"])))
                    for c, f in cast(Mapping[str, Mapping[str, Any]], cats).items()))
                for t, cats in cast(Mapping[str, Any], data["targets"]).items())
            notice = data["user_notice"]
            return cls(
                profile=str(data["profile"]),
                evaluated_at=parse_time(data["evaluated_at"], "evaluated_at"),
                targets=targets,
                deadlines=tuple(Deadline(str(d["kind"]), parse_time(d["due"], "deadlines.due"))
                                for d in data["deadlines"]),
                user_notice=UserNotice(
                    str(notice["when"]),
                    None if notice["not_before"] is None
                    else parse_time(notice["not_before"], "user_notice.not_before")),
                transparency=str(data["transparency"]),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise InvalidInput(f"decision: malformed ({exc})") from exc


def transparency_bucket(outcomes: list[tuple[str, str]]) -> str:
    """The transparency-report bucket for (category, outcome) pairs: ``content`` when
    some content is disclosed, ``non-content`` when only non-content is, ``no-data``
    when no account existed, ``preservation`` when only preserving (counted apart),
    ``rejected`` for everything else."""
    disclosed = {c for c, o in outcomes if o in DISCLOSING}
    if "content" in disclosed:
        return "content"
    if disclosed:
        return "non-content"
    kinds = {o for _, o in outcomes}
    if kinds and kinds <= {"no-data"}:
        return "no-data"
    if "preserve" in kinds and kinds <= {"preserve", "no-data"}:
        return "preservation"
    return "rejected"
