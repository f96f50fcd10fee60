"""The warrant canary: for a half-year, one statement per kind of order NOT received,
computed from the same decided matters as the report and signed with the audit log's
key at its current head. A kind that was received is left out, not denied."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from letterlock.audit.keys import sign_statement
from letterlock.services.transparency.report import (
    AUDIT_DIR,
    HeadRef,
    MatterFacts,
    Period,
    current_head,
    load_decided_matters,
)


@dataclass(frozen=True)
class CanaryKind:
    key: str
    statement: str


CANARY_KINDS = (
    CanaryKind("national-security-letter", "any National Security Letter"),
    CanaryKind("fisa-order", "any order under the Foreign Intelligence Surveillance Act"),
    CanaryKind("national-security", "any other national-security process"),
    CanaryKind("interception", "any demand to intercept communications in real time"),
    CanaryKind("indefinite-gag", "any order forbidding us, without end date, to tell a user"),
)


def canary_kinds_received(matters: Iterable[MatterFacts], period: Period) -> set[str]:
    received: set[str] = set()
    for m in matters:
        if m.served not in period:
            continue
        if m.instrument == "us-nsl":
            received.add("national-security-letter")
        elif m.instrument == "us-fisa":
            received.add("fisa-order")
        elif m.national_security:
            received.add("national-security")
        if m.action == "intercept":
            received.add("interception")
        if m.gag == "indefinite":
            received.add("indefinite-gag")
    return received


def build_canary(
    matters: Iterable[MatterFacts], period: Period, issued_at: datetime, head: HeadRef
) -> dict[str, Any]:
    """The unsigned canary: one statement per kind of order NOT received in the period.

    A kind that was received is simply left out (the law may forbid saying more);
    ``covers`` lists every kind this canary speaks to, so the silence is visible.
    """
    received = canary_kinds_received(matters, period)
    not_received = [k for k in CANARY_KINDS if k.key not in received]
    day = issued_at.date().isoformat()
    return {
        "format": "letterlock-canary-v1",
        "period": str(period),
        "issued_at": issued_at.isoformat().replace("+00:00", "Z"),
        "log_id": head.log_id,
        "tree_size": head.tree_size,
        "root_hash": head.root_hash,
        "covers": [k.key for k in CANARY_KINDS],
        "not_received": [k.key for k in not_received],
        "statements": [
            f"As of {day}, we have not received {k.statement} during {period}."
            for k in not_received
        ],
        "notice": "A statement missing from this list is one we can no longer make.",
    }


async def signed_canary(
    control_dir: Path, period: Period, issued_at: datetime | None = None
) -> dict[str, Any]:
    """The canary for ``period``, signed with the operator's audit log key."""
    matters = await load_decided_matters(control_dir)
    audit_dir = control_dir / AUDIT_DIR
    head = await asyncio.to_thread(current_head, audit_dir)
    doc = build_canary(matters, period, issued_at or datetime.now(UTC), head)
    return await asyncio.to_thread(sign_statement, audit_dir, doc)
