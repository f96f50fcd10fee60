"""Command framing: where a line announces a literal (RFC 9051 4.3, RFC 7888
LITERAL+, RFC 3516 literal8). Pure functions over one received line."""

from __future__ import annotations

import re
from dataclasses import dataclass

from letterlock.imap.parsing.primitives import MAX_NUMBER64, ParseError, bounded_int

_TRAILING_LITERAL = re.compile(rb"(~?)\{([0-9]+)(\+?)\}\r?\n\Z")
OUT_OF_RANGE = MAX_NUMBER64 + 1
"""The size of a literal announced with more than number64 (RFC 9051 9) octets."""


@dataclass(frozen=True)
class LiteralAnnouncement:
    size: int
    synchronizing: bool
    """True for ``{n}``: the client waits for a continuation request."""
    binary: bool


def trailing_literal(line: bytes) -> LiteralAnnouncement | None:
    """The literal announced at the end of ``line`` (which ends with its line break)."""
    m = _TRAILING_LITERAL.search(line)
    if not m:
        return None
    try:
        size = bounded_int(m.group(2), MAX_NUMBER64)
    except ParseError:  # still a literal: its octets must not be read as commands
        size = OUT_OF_RANGE
    return LiteralAnnouncement(size, not m.group(3), bool(m.group(1)))


def strip_line_end(line: bytes) -> bytes:
    if line.endswith(b"\r\n"):
        return line[:-2]
    if line.endswith(b"\n"):
        return line[:-1]
    return line


def normalise_literal_line(line: bytes) -> bytes:
    """The line with its literal announcement ending in CRLF, as the parser expects."""
    if line.endswith(b"}\n"):
        return line[:-1] + b"\r\n"
    return line
