"""Grammars of IMAP extensions with syntax of their own: THREAD (RFC 5256) and
CATENATE (RFC 4469)."""

from __future__ import annotations

from letterlock.imap.parsing.commands import CatPart
from letterlock.imap.parsing.primitives import (
    ParseError,
    astring,
    atom,
    expect,
    peek,
    peek_ci,
    sp,
    string,
)
from letterlock.imap.parsing.search import SearchKey, search_keys

THREAD_ALGORITHMS = ("ORDEREDSUBJECT", "REFERENCES")


def thread_args(buf: bytes, pos: int) -> tuple[str, str, SearchKey, int]:
    """``thread-alg SP search-criteria`` (RFC 5256 5): the algorithm (upper case), the
    charset and the keys. An algorithm the server does not offer is a ParseError
    (the command's BAD)."""
    word, pos = atom(buf, pos)
    algorithm = word.upper()
    if algorithm not in THREAD_ALGORITHMS:
        raise ParseError(f"unknown threading algorithm {word}")
    charset, pos = astring(buf, sp(buf, pos))
    keys, pos = search_keys(buf, sp(buf, pos))
    return algorithm, charset.decode("ascii", "replace"), keys, pos


MAX_CAT_PARTS = 1000


def catenate(buf: bytes, pos: int) -> tuple[tuple[CatPart, ...], int]:
    """``(cat-part *(SP cat-part))`` after CATENATE (RFC 4469 5): ``TEXT literal`` (a
    literal8 too, RFC 3516 4.4) or ``URL astring``."""
    pos = expect(buf, pos, b"(")
    parts: list[CatPart] = []
    while True:
        if peek_ci(buf, pos, b"TEXT "):
            pos += 5
            if not (peek(buf, pos, b"{") or peek(buf, pos, b"~{")):
                raise ParseError("CATENATE TEXT needs a literal")
            data, pos = string(buf, pos, allow_binary=True)
            parts.append(CatPart(text=data))
        elif peek_ci(buf, pos, b"URL "):
            url, pos = astring(buf, pos + 4)
            parts.append(CatPart(url=url.decode("utf-8", "surrogateescape")))
        else:
            raise ParseError("CATENATE parts are TEXT or URL")
        if len(parts) > MAX_CAT_PARTS:
            raise ParseError("too many CATENATE parts")
        if peek(buf, pos, b")"):
            return tuple(parts), pos + 1
        pos = sp(buf, pos)
