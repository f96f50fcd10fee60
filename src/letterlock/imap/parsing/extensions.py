"""Grammars of the IMAP extensions that add to SORT and SEARCH-like commands: THREAD
(RFC 5256)."""

from __future__ import annotations

from letterlock.imap.parsing.primitives import ParseError, astring, atom, sp
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
