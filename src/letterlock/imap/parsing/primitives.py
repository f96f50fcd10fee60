"""Lexical primitives of IMAP command syntax (RFC 9051 section 9).

Every function is pure: it takes the complete command buffer (literals inline, as
``{n}\\r\\n`` followed by the n octets) and a position, and returns ``(value, new
position)`` or raises :class:`ParseError`. Nothing here does I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TypeVar

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
          "Dec")
_MONTH_NUM = {m.lower(): i + 1 for i, m in enumerate(MONTHS)}

# atom-specials: ( ) { SP CTL % * " \ ] -- and 8-bit octets are not CHARs.
_ATOM = re.compile(rb"[^(){ \x00-\x1f\x7f%*\"\\\]\x80-\xff]+")
_ASTRING = re.compile(rb"[^(){ \x00-\x1f\x7f%*\"\\\x80-\xff]+")
_LIST_CHARS = re.compile(rb"[^(){ \x00-\x1f\x7f\"\\\x80-\xff]+")
_TAG = re.compile(rb"[^(){ \x00-\x1f\x7f%*\"\\+\x80-\xff]+")
_NUMBER = re.compile(rb"[0-9]+")
_LITERAL = re.compile(rb"(~?)\{([0-9]+)(\+?)\}\r\n")

T = TypeVar("T")
MAX_NUMBER = 2**32 - 1
MAX_NUMBER64 = 2**63 - 1


class ParseError(Exception):
    """A command that does not match the grammar. ``tag`` is set once known, so the
    reply can be tagged; ``code`` is an optional response code for the BAD."""

    def __init__(self, message: str, tag: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.tag = tag
        self.code = code


def fail(what: str, buf: bytes, pos: int) -> ParseError:
    near = buf[pos : pos + 20].decode("ascii", "replace")
    near = "".join(c if c.isprintable() else "?" for c in near)
    return ParseError(f"expected {what} at offset {pos}" + (f" near {near!r}" if near else ""))


def at_end(buf: bytes, pos: int) -> bool:
    return pos >= len(buf)


def expect(buf: bytes, pos: int, token: bytes) -> int:
    if buf.startswith(token, pos):
        return pos + len(token)
    raise fail(repr(token.decode()), buf, pos)


def expect_ci(buf: bytes, pos: int, token: bytes) -> int:
    if buf[pos : pos + len(token)].upper() == token.upper():
        return pos + len(token)
    raise fail(token.decode(), buf, pos)


def sp(buf: bytes, pos: int) -> int:
    return expect(buf, pos, b" ")


def peek(buf: bytes, pos: int, token: bytes) -> bool:
    return buf.startswith(token, pos)


def peek_ci(buf: bytes, pos: int, token: bytes) -> bool:
    return buf[pos : pos + len(token)].upper() == token.upper()


def tag(buf: bytes, pos: int) -> tuple[str, int]:
    m = _TAG.match(buf, pos)
    if not m:
        raise fail("tag", buf, pos)
    return m.group().decode("ascii"), m.end()


def atom(buf: bytes, pos: int) -> tuple[str, int]:
    m = _ATOM.match(buf, pos)
    if not m:
        raise fail("atom", buf, pos)
    return m.group().decode("ascii"), m.end()


def bounded_int(digits: bytes, limit: int, what: str = "number") -> int:
    """The value of ``digits`` (ASCII decimal), at most ``limit``. The length is
    checked before converting: ``int()`` refuses more than 4,300 digits with a
    ValueError, and a number that long is out of every IMAP range anyway."""
    significant = digits.lstrip(b"0") or b"0"
    if len(significant) > 20 or (value := int(significant)) > limit:
        raise ParseError(f"{what} out of range (at most {limit})")
    return value


def number(buf: bytes, pos: int, limit: int = MAX_NUMBER) -> tuple[int, int]:
    m = _NUMBER.match(buf, pos)
    if not m:
        raise fail("number", buf, pos)
    return bounded_int(m.group(), limit), m.end()


def nz_number(buf: bytes, pos: int) -> tuple[int, int]:
    value, end = number(buf, pos)
    if value == 0:
        raise fail("non-zero number", buf, pos)
    return value, end


def literal(buf: bytes, pos: int, allow_binary: bool = False) -> tuple[bytes, int] | None:
    m = _LITERAL.match(buf, pos)
    if not m:
        return None
    if m.group(1) and not allow_binary:
        raise ParseError("literal8 is not allowed here")
    size = bounded_int(m.group(2), MAX_NUMBER64, "literal size")
    start = m.end()
    if start + size > len(buf):
        raise ParseError("literal is shorter than announced")
    data = buf[start : start + size]
    if not m.group(1) and b"\x00" in data:
        raise ParseError("NUL octet in a literal")
    return data, start + size


def quoted(buf: bytes, pos: int) -> tuple[bytes, int] | None:
    if not peek(buf, pos, b'"'):
        return None
    out = bytearray()
    i = pos + 1
    n = len(buf)
    while i < n:
        c = buf[i]
        if c == 0x22:
            return bytes(out), i + 1
        if c == 0x5C:
            if i + 1 < n and buf[i + 1] in (0x22, 0x5C):
                out.append(buf[i + 1])
                i += 2
                continue
            raise ParseError("bad escape in quoted string")
        if c in (0x0D, 0x0A, 0x00):
            raise ParseError("line break or NUL in quoted string")
        out.append(c)
        i += 1
    raise ParseError("unterminated quoted string")


def string(buf: bytes, pos: int, allow_binary: bool = False) -> tuple[bytes, int]:
    got = quoted(buf, pos)
    if got is None:
        got = literal(buf, pos, allow_binary)
    if got is None:
        raise fail("string", buf, pos)
    return got


def astring(buf: bytes, pos: int) -> tuple[bytes, int]:
    m = _ASTRING.match(buf, pos)
    if m:
        return m.group(), m.end()
    return string(buf, pos)


def nstring(buf: bytes, pos: int) -> tuple[bytes | None, int]:
    if peek_ci(buf, pos, b"NIL") and not _ASTRING.match(buf, pos + 3):
        return None, pos + 3
    return string(buf, pos)


def list_mailbox(buf: bytes, pos: int) -> tuple[bytes, int]:
    m = _LIST_CHARS.match(buf, pos)
    if m:
        return m.group(), m.end()
    return string(buf, pos)


def text(data: bytes) -> str:
    """Client-supplied bytes as text (UTF-8, lossless for other octets)."""
    return data.decode("utf-8", "surrogateescape")


# -- sequence sets -------------------------------------------------------------------

STAR = 0
"""``*`` in a sequence set: the largest number in use."""


@dataclass(frozen=True)
class SeqSet:
    ranges: tuple[tuple[int, int], ...]
    """Inclusive ranges as written; STAR (0) stands for ``*``."""
    saved: bool = False
    """``$``: the result saved by SEARCH RETURN (SAVE) (RFC 5182); ranges are empty."""

    def resolve(self, largest: int) -> list[tuple[int, int]]:
        """Ranges with ``*`` replaced by ``largest`` and ends ordered."""
        out = []
        for a, b in self.ranges:
            a = largest if a == STAR else a
            b = largest if b == STAR else b
            out.append((min(a, b), max(a, b)))
        return out

    def contains(self, value: int, largest: int) -> bool:
        return any(a <= value <= b for a, b in self.resolve(largest))


def _seq_number(buf: bytes, pos: int) -> tuple[int, int]:
    if peek(buf, pos, b"*"):
        return STAR, pos + 1
    return nz_number(buf, pos)


def seq_set(buf: bytes, pos: int) -> tuple[SeqSet, int]:
    if peek(buf, pos, b"$"):
        return SeqSet((), saved=True), pos + 1
    ranges = []
    while True:
        a, pos = _seq_number(buf, pos)
        b = a
        if peek(buf, pos, b":"):
            b, pos = _seq_number(buf, pos + 1)
        ranges.append((a, b))
        if not peek(buf, pos, b","):
            break
        pos += 1
    return SeqSet(tuple(ranges)), pos


# -- lists, flags, dates -------------------------------------------------------------

def paren_list(buf: bytes, pos: int, item: Callable[[bytes, int], tuple[T, int]],
               *, empty: bool = True) -> tuple[list[T], int]:
    """``( item *(SP item) )``, or ``()`` when ``empty`` (otherwise ``item`` reports
    the missing first item); ``item(buf, pos) -> (value, pos)``."""
    pos = expect(buf, pos, b"(")
    out: list[T] = []
    if empty and peek(buf, pos, b")"):
        return out, pos + 1
    while True:
        value, pos = item(buf, pos)
        out.append(value)
        if peek(buf, pos, b")"):
            return out, pos + 1
        pos = sp(buf, pos)


def flag(buf: bytes, pos: int) -> tuple[str, int]:
    if peek(buf, pos, b"\\"):
        if peek(buf, pos + 1, b"*"):
            return "\\*", pos + 2
        name, end = atom(buf, pos + 1)
        return "\\" + name, end
    return atom(buf, pos)


def flag_list(buf: bytes, pos: int) -> tuple[list[str], int]:
    return paren_list(buf, pos, flag)


def date(buf: bytes, pos: int) -> tuple[datetime, int]:
    """date = date-text / DQUOTE date-text DQUOTE ; d[d]-Mon-yyyy."""
    quoted_ = peek(buf, pos, b'"')
    start = pos + 1 if quoted_ else pos
    m = re.compile(rb"([0-9]{1,2})-([A-Za-z]{3})-([0-9]{4})").match(buf, start)
    if not m or m.group(2).decode().lower() not in _MONTH_NUM:
        raise fail("date", buf, pos)
    end = m.end()
    if quoted_:
        end = expect(buf, end, b'"')
    try:
        value = datetime(int(m.group(3)), _MONTH_NUM[m.group(2).decode().lower()],
                         int(m.group(1)))
    except ValueError:
        raise fail("valid date", buf, pos) from None
    return value, end


_DATE_TIME = re.compile(
    rb'"([ 0-9][0-9])-([A-Za-z]{3})-([0-9]{4}) ([0-9]{2}):([0-9]{2}):([0-9]{2}) '
    rb'([+-])([0-9]{2})([0-9]{2})"')


def date_time(buf: bytes, pos: int) -> tuple[datetime, int]:
    m = _DATE_TIME.match(buf, pos)
    if not m or m.group(2).decode().lower() not in _MONTH_NUM:
        raise fail("date-time", buf, pos)
    sign = 1 if m.group(7) == b"+" else -1
    offset = timedelta(hours=int(m.group(8)), minutes=int(m.group(9))) * sign
    try:
        value = datetime(int(m.group(3)), _MONTH_NUM[m.group(2).decode().lower()],
                         int(m.group(1)), int(m.group(4)), int(m.group(5)), int(m.group(6)),
                         tzinfo=timezone(offset))
    except ValueError:
        raise fail("valid date-time", buf, pos) from None
    # The client's offset is kept: INTERNALDATE is answered as it was given.
    return value, m.end()
