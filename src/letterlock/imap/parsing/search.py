"""SEARCH keys (RFC 9051 6.4.4, RFC 3501 6.4.4, RFC 7162 MODSEQ) and ESEARCH return
options (RFC 4731)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from letterlock.imap.parsing.primitives import (
    MAX_NUMBER64,
    ParseError,
    SeqSet,
    astring,
    atom,
    date,
    expect,
    fail,
    flag,
    number,
    nz_number,
    paren_list,
    peek,
    seq_set,
    sp,
    string,
)


@dataclass(frozen=True)
class AllKey:
    pass


@dataclass(frozen=True)
class FlagKey:
    flag: str
    present: bool


@dataclass(frozen=True)
class RecentKey:
    """RECENT, NEW or OLD (IMAP4rev1)."""

    which: str


@dataclass(frozen=True)
class SeqKey:
    set: SeqSet
    uid: bool


@dataclass(frozen=True)
class HeaderKey:
    field: str
    """Lower-case header field name."""
    value: bytes


@dataclass(frozen=True)
class TextKey:
    where: str
    """``body`` (body only) or ``text`` (header and body)."""
    value: bytes


@dataclass(frozen=True)
class DateKey:
    sent: bool
    """Compare the Date header (SENT*) rather than the internal date."""
    op: str
    """``before``, ``on`` or ``since``."""
    day: datetime


@dataclass(frozen=True)
class SizeKey:
    larger: bool
    size: int


@dataclass(frozen=True)
class ModSeqKey:
    modseq: int


@dataclass(frozen=True)
class NotKey:
    key: SearchKey


@dataclass(frozen=True)
class OrKey:
    left: SearchKey
    right: SearchKey


@dataclass(frozen=True)
class AndKey:
    keys: tuple[SearchKey, ...]


SearchKey = (AllKey | FlagKey | RecentKey | SeqKey | HeaderKey | TextKey | DateKey | SizeKey
             | ModSeqKey | NotKey | OrKey | AndKey)

_FLAG_KEYS = {
    "ANSWERED": ("\\Answered", True), "UNANSWERED": ("\\Answered", False),
    "DELETED": ("\\Deleted", True), "UNDELETED": ("\\Deleted", False),
    "FLAGGED": ("\\Flagged", True), "UNFLAGGED": ("\\Flagged", False),
    "SEEN": ("\\Seen", True), "UNSEEN": ("\\Seen", False),
    "DRAFT": ("\\Draft", True), "UNDRAFT": ("\\Draft", False),
}
_ADDRESS_KEYS = ("BCC", "CC", "FROM", "SUBJECT", "TO")
_DATE_KEYS = {"BEFORE": (False, "before"), "ON": (False, "on"), "SINCE": (False, "since"),
              "SENTBEFORE": (True, "before"), "SENTON": (True, "on"),
              "SENTSINCE": (True, "since")}
MAX_DEPTH = 64


def search_key(buf: bytes, pos: int, depth: int = 0) -> tuple[SearchKey, int]:
    if depth > MAX_DEPTH:
        raise ParseError("search keys nested too deeply")
    if peek(buf, pos, b"("):
        keys, pos = paren_list(buf, pos, lambda b, p: search_key(b, p, depth + 1),
                               empty=False)
        return (keys[0] if len(keys) == 1 else AndKey(tuple(keys))), pos
    if buf[pos : pos + 1].isdigit() or peek(buf, pos, b"*") or peek(buf, pos, b"$"):
        s, pos = seq_set(buf, pos)
        return SeqKey(s, False), pos
    word, pos = atom(buf, pos)
    name = word.upper()
    if name == "ALL":
        return AllKey(), pos
    if name in _FLAG_KEYS:
        f, present = _FLAG_KEYS[name]
        return FlagKey(f, present), pos
    if name in ("NEW", "OLD", "RECENT"):
        return RecentKey(name.lower()), pos
    if name in ("KEYWORD", "UNKEYWORD"):
        kw, pos = flag(buf, sp(buf, pos))
        return FlagKey(kw, name == "KEYWORD"), pos
    if name in _ADDRESS_KEYS:
        value, pos = astring(buf, sp(buf, pos))
        return HeaderKey(name.lower(), value), pos
    if name in ("BODY", "TEXT"):
        value, pos = astring(buf, sp(buf, pos))
        return TextKey(name.lower(), value), pos
    if name == "HEADER":
        field, pos = astring(buf, sp(buf, pos))
        value, pos = astring(buf, sp(buf, pos))
        return HeaderKey(field.decode("utf-8", "replace").lower(), value), pos
    if name in _DATE_KEYS:
        sent, op = _DATE_KEYS[name]
        day, pos = date(buf, sp(buf, pos))
        return DateKey(sent, op, day), pos
    if name in ("LARGER", "SMALLER"):
        size, pos = number(buf, sp(buf, pos), MAX_NUMBER64)
        return SizeKey(name == "LARGER", size), pos
    if name == "UID":
        s, pos = seq_set(buf, sp(buf, pos))
        return SeqKey(s, True), pos
    if name == "NOT":
        key, pos = search_key(buf, sp(buf, pos), depth + 1)
        return NotKey(key), pos
    if name == "OR":
        left, pos = search_key(buf, sp(buf, pos), depth + 1)
        right, pos = search_key(buf, sp(buf, pos), depth + 1)
        return OrKey(left, right), pos
    if name == "MODSEQ":
        pos = sp(buf, pos)
        if peek(buf, pos, b'"'):
            # entry-name entry-type-req: per-flag metadata we do not keep separately.
            _, pos = string(buf, pos)
            _, pos = atom(buf, sp(buf, pos))
            pos = sp(buf, pos)
        modseq, pos = number(buf, pos, MAX_NUMBER64)
        return ModSeqKey(modseq), pos
    raise ParseError(f"unknown search key {word}")


@dataclass(frozen=True)
class SearchProgram:
    keys: SearchKey
    charset: str | None
    returns: tuple[str, ...] | None
    """ESEARCH RETURN options (MIN MAX ALL COUNT SAVE, and RFC 5267's CONTEXT UPDATE
    PARTIAL); () means ALL; None: no RETURN."""
    partial: tuple[int, int] | None = None
    """PARTIAL's range (low, high), 1-based positions in the result (RFC 5267 4.4)."""


RETURN_OPTIONS = ("MIN", "MAX", "ALL", "COUNT", "SAVE", "CONTEXT", "UPDATE", "PARTIAL")


def return_options(buf: bytes, pos: int,
                   ) -> tuple[tuple[str, ...] | None, tuple[int, int] | None, int]:
    """An optional ``RETURN (...) SP`` (RFC 4731, RFC 5267): the options (None when
    absent), PARTIAL's range, and the position after the trailing space."""
    if buf[pos : pos + 7].upper() != b"RETURN ":
        return None, None, pos
    pos = expect(buf, pos + 7, b"(")
    opts: list[str] = []
    partial: tuple[int, int] | None = None
    while not peek(buf, pos, b")"):
        opt, pos = atom(buf, pos)
        name = opt.upper()
        if name not in RETURN_OPTIONS:
            raise ParseError(f"unsupported RETURN option {opt}")
        if name in opts:
            raise ParseError(f"RETURN option {name} given twice")
        if name == "PARTIAL":
            low, pos = nz_number(buf, sp(buf, pos))
            pos = expect(buf, pos, b":")
            high, pos = nz_number(buf, pos)
            partial = (min(low, high), max(low, high))
        opts.append(name)
        if not peek(buf, pos, b")"):
            pos = sp(buf, pos)
    if "PARTIAL" in opts and "ALL" in opts:
        # RFC 5267 4.4: one PARTIAL, one ALL, or neither.
        raise ParseError("RETURN cannot have both PARTIAL and ALL")
    return tuple(opts), partial, sp(buf, pos + 1)


def search_program(buf: bytes, pos: int) -> tuple[SearchProgram, int]:
    returns, partial, pos = return_options(buf, pos)
    charset = None
    if buf[pos : pos + 8].upper() == b"CHARSET ":
        raw, pos = astring(buf, pos + 8)
        charset = raw.decode("ascii", "replace")
        pos = sp(buf, pos)
    program, pos = search_keys(buf, pos)
    return SearchProgram(program, charset, returns, partial), pos


def search_keys(buf: bytes, pos: int) -> tuple[SearchKey, int]:
    """One or more space-separated keys up to the end of the command (implicit AND)."""
    keys = []
    while True:
        key, pos = search_key(buf, pos)
        keys.append(key)
        if pos >= len(buf):
            break
        if not peek(buf, pos, b" "):
            raise fail("search key", buf, pos)
        pos += 1
    return (keys[0] if len(keys) == 1 else AndKey(tuple(keys))), pos


SORT_KEYS = ("ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO", "DISPLAYFROM",
             "DISPLAYTO")


def sort_criteria(buf: bytes, pos: int) -> tuple[tuple[tuple[bool, str], ...], int]:
    """``(REVERSE DATE SUBJECT)`` as ((reverse, key), ...) (RFC 5256, RFC 5957)."""
    pos = expect(buf, pos, b"(")
    out: list[tuple[bool, str]] = []
    reverse = False
    while True:
        word, pos = atom(buf, pos)
        word = word.upper()
        if word == "REVERSE" and not reverse:
            reverse = True
            pos = sp(buf, pos)
            continue
        if word not in SORT_KEYS:
            raise ParseError(f"unknown sort key {word}")
        out.append((reverse, word))
        reverse = False
        if peek(buf, pos, b")"):
            return tuple(out), pos + 1
        pos = sp(buf, pos)
