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

SUMMARY_VERSION = 1


def split_header(raw: bytes) -> tuple[bytes, bytes]:
    """(header section including the blank line, body) of an RFC 5322 message.

    Tolerates bare LF line endings, and a message with no blank line (all header).
    """
    start = 0
    while start < len(raw):
        end = raw.find(b"\n", start)
        if end < 0:
            break
        line = raw[start:end]
        if line in (b"", b"\r"):
            return raw[: end + 1], raw[end + 1 :]
        start = end + 1
    return raw, b""


@dataclass(frozen=True)
class MessageSummary:
    header: bytes
    """The raw header section, blank line included."""
    size: int
    """Octets in the whole message."""
    extra: dict[str, Any] = field(default_factory=dict, compare=False)
    """Further derived data (e.g. body structure) keyed by name; see producers."""


def summarize(raw: bytes) -> MessageSummary:
    header, _ = split_header(raw)
    return MessageSummary(header=header, size=len(raw))


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
