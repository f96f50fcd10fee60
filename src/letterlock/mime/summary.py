"""The message summary: what is derived from a message at delivery so that listing and
searching need not open the full sealed body.

A summary is sealed to the account key like the message itself. Its serialized form
is versioned JSON (``v``); readers must ignore keys they do not know, so later
versions can add fields (body structure, search text) without a migration.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

from letterlock.mime import structure
from letterlock.mime.headers import split_fields

SUMMARY_VERSION = 1


def split_header(raw: bytes) -> tuple[bytes, bytes]:
    """(header section including the blank line, body) of an RFC 5322 message.

    Tolerates bare LF line endings, and a message with no blank line (all header).
    """
    end = structure.header_end(raw)
    return raw[:end], raw[end:]


@dataclass(frozen=True)
class MessageSummary:
    header: bytes
    """The raw header section, blank line included."""
    size: int
    """Octets in the whole message."""
    extra: dict[str, Any] = field(default_factory=dict, compare=False)
    """Further derived data (e.g. body structure) keyed by name; see producers."""


def summarize(raw: bytes) -> MessageSummary:
    """Header, size, and (under ``structure``) the MIME part tree with the envelope,
    so IMAP ENVELOPE / BODYSTRUCTURE / section offsets need no full body."""
    header = raw[: structure.header_end(raw)]
    fields = split_fields(header)
    tree = structure.parse(raw, fields)
    envelope = structure.envelope_of(fields)
    return MessageSummary(header=header, size=len(raw),
                          extra={"structure": tree.to_json(), "envelope": envelope.to_json()})


def structure_of(summary: MessageSummary) -> structure.Part | None:
    """The part tree stored in ``summary`` (None for summaries made before it existed)."""
    data = summary.extra.get("structure")
    return None if data is None else structure.Part.from_json(data)


def envelope_of(summary: MessageSummary) -> structure.Envelope:
    data = summary.extra.get("envelope")
    if data is None:
        return structure.envelope_of(split_fields(summary.header))
    return structure.Envelope.from_json(data)


def encode(summary: MessageSummary) -> bytes:
    doc = {"v": SUMMARY_VERSION, "header": base64.b64encode(summary.header).decode("ascii"),
           "size": summary.size, **summary.extra}
    return json.dumps(doc, separators=(",", ":")).encode("utf-8")


def decode(data: bytes) -> MessageSummary:
    doc = json.loads(data)
    header = base64.b64decode(doc.pop("header"))
    size = int(doc.pop("size"))
    doc.pop("v", None)
    return MessageSummary(header=header, size=size, extra=doc)
