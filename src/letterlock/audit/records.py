"""Log records: how an :class:`AuditEvent` becomes the bytes of one Merkle leaf.

Each leaf is one line of ``events.jsonl``: canonical JSON (sorted keys, no spaces,
ASCII) of a record that carries its own index ``i`` and the time the log took it
(``logged_at``, never earlier than the record before). Three kinds:

* ``event``: the event in the clear.
* ``commitment``: an event under a non-disclosure order. Only a salted hash of its
  content is logged; nothing readable, not even the account or the order's expiry.
* ``reveal``: a later event that publishes the committed content and its salt, so
  anyone can check it against the commitment logged at the original position and time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from letterlock.audit.events import AuditEvent, EventType
from letterlock.audit.verify import canonical_json
from letterlock.errors import InvalidInput

RECORD_VERSION = 1
INDEFINITE = "indefinite"


def format_time(moment: datetime) -> str:
    """UTC, microseconds, ``Z``. A naive datetime is taken to be UTC already."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidInput(f"not a timestamp: {text!r}") from exc


def event_to_json(event: AuditEvent) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "type": str(event.type),
        "actor": event.actor,
        "at": format_time(event.at),
        "account": event.account,
        "matter": event.matter,
        "details": [[k, v] for k, v in event.details],
    }
    if event.sealed_until is not None:
        doc["sealed_until"] = format_time(event.sealed_until)
    return doc


def event_from_json(doc: Any) -> AuditEvent:
    if not isinstance(doc, dict):
        raise InvalidInput("event must be a JSON object")
    try:
        details = tuple((str(k), str(v)) for k, v in doc.get("details", []))
        sealed = doc.get("sealed_until")
        return AuditEvent(
            type=EventType(doc["type"]),
            actor=str(doc["actor"]),
            at=parse_time(str(doc["at"])),
            account=doc.get("account"),
            matter=doc.get("matter"),
            details=details,
            sealed_until=parse_time(sealed) if isinstance(sealed, str) else None,
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise InvalidInput(f"malformed event: {exc}") from exc


def is_sealed(event: AuditEvent) -> bool:
    """Under a non-disclosure order: a date, or ``indefinite`` in the details."""
    return event.sealed_until is not None or any(
        k == INDEFINITE and v.lower() not in ("", "0", "false", "no") for k, v in event.details
    )


@dataclass(frozen=True)
class LogRecord:
    """One parsed leaf. Exactly the fields for its ``kind`` are set."""

    index: int
    kind: str  # "event" | "commitment" | "reveal"
    logged_at: datetime
    event: AuditEvent | None = None
    commitment: bytes | None = None
    reveals: int | None = None
    salt: bytes | None = None
    content: str | None = None

    @property
    def revealed_event(self) -> AuditEvent | None:
        """For a reveal: the event that had been committed."""
        if self.content is None:
            return None
        return event_from_json(json.loads(self.content))


def encode_event(index: int, logged_at: datetime, event: AuditEvent) -> bytes:
    return canonical_json(
        {
            "v": RECORD_VERSION,
            "i": index,
            "kind": "event",
            "logged_at": format_time(logged_at),
            "event": event_to_json(event),
        }
    )


def encode_commitment(index: int, logged_at: datetime, commitment: bytes) -> bytes:
    return canonical_json(
        {
            "v": RECORD_VERSION,
            "i": index,
            "kind": "commitment",
            "logged_at": format_time(logged_at),
            "commitment": commitment.hex(),
        }
    )


def encode_reveal(
    index: int, logged_at: datetime, event: AuditEvent, reveals: int, salt: bytes, content: str
) -> bytes:
    return canonical_json(
        {
            "v": RECORD_VERSION,
            "i": index,
            "kind": "reveal",
            "logged_at": format_time(logged_at),
            "event": event_to_json(event),
            "reveals": reveals,
            "salt": salt.hex(),
            "content": content,
        }
    )


def decode(leaf: bytes) -> LogRecord:
    """Parse one leaf; InvalidInput names what is wrong."""
    try:
        doc = json.loads(leaf)
    except ValueError as exc:
        raise InvalidInput(f"not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise InvalidInput("record is not a JSON object")
    try:
        index = doc["i"]
        kind = doc["kind"]
        logged_at = parse_time(str(doc["logged_at"]))
        if not isinstance(index, int) or doc.get("v") != RECORD_VERSION:
            raise InvalidInput("bad record index or version")
        if kind == "event":
            return LogRecord(index, kind, logged_at, event=event_from_json(doc["event"]))
        if kind == "commitment":
            return LogRecord(index, kind, logged_at, commitment=bytes.fromhex(doc["commitment"]))
        if kind == "reveal":
            return LogRecord(
                index,
                kind,
                logged_at,
                event=event_from_json(doc["event"]),
                reveals=int(doc["reveals"]),
                salt=bytes.fromhex(doc["salt"]),
                content=str(doc["content"]),
            )
    except (KeyError, ValueError, TypeError) as exc:
        raise InvalidInput(f"malformed record: {exc}") from exc
    raise InvalidInput(f"unknown record kind {kind!r}")
