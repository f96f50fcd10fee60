"""Comparators (RFC 4790 as Sieve uses them), match types :is/:contains/:matches
(RFC 5228 2.7.1) and relational :value/:count (RFC 5231)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from letterlock.sieve.syntax import Node

_UPPER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def ascii_fold(value: str) -> str:
    """i;ascii-casemap folds only A-Z; other characters compare as octets."""
    return value.translate(_UPPER)


def numeric(value: str) -> int | None:
    """i;ascii-numeric: the leading digits as a number; None (positive infinity)
    when the string does not start with a digit."""
    m = re.match(r"[0-9]+", value)
    return int(m.group(0)) if m else None


_ONE, _ANY = 0, 1


@lru_cache(maxsize=256)
def _glob_tokens(pattern: str) -> tuple[str | int, ...]:
    """A :matches key as tokens: a character, _ONE for ?, _ANY for *; a backslash
    makes the next character literal."""
    out: list[str | int] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(pattern[i])
        else:
            out.append(_ANY if c == "*" else _ONE if c == "?" else c)
        i += 1
    return tuple(out)


def glob(pattern: str, value: str) -> list[tuple[int, int]] | None:
    """Match a :matches key against ``value``; the span of each wildcard (the match
    variables of RFC 5229 3.2, earlier * as short as possible), or None. At worst
    O(len(pattern) * len(value)): on a mismatch only the last * seen takes one more
    character (a backtracking regular expression can take exponential time)."""
    tokens = _glob_tokens(pattern)
    spans: dict[int, tuple[int, int]] = {}
    p = i = 0
    star, mark = -1, 0
    while i < len(value):
        if p < len(tokens) and tokens[p] == _ANY:
            star, mark = p, i
            spans[p] = (i, i)
            p += 1
        elif p < len(tokens) and (tokens[p] == _ONE or tokens[p] == value[i]):
            if tokens[p] == _ONE:
                spans[p] = (i, i + 1)
            p += 1
            i += 1
        elif star >= 0:
            mark += 1
            spans[star] = (spans[star][0], mark)
            p, i = star + 1, mark
        else:
            return None
    while p < len(tokens) and tokens[p] == _ANY:
        spans[p] = (i, i)
        p += 1
    if p != len(tokens):
        return None
    return [spans[k] for k in sorted(spans)]


def _relation(relation: str, order: int) -> bool:
    return {"gt": order > 0, "ge": order >= 0, "lt": order < 0, "le": order <= 0,
            "eq": order == 0, "ne": order != 0}[relation]


def _order(a: str, b: str, comparator: str) -> int:
    if comparator == "i;ascii-numeric":
        x, y = numeric(a), numeric(b)
        if x == y:
            return 0
        if x is None:
            return 1
        if y is None:
            return -1
        return 1 if x > y else -1
    if comparator == "i;ascii-casemap":
        a, b = ascii_fold(a), ascii_fold(b)
    return (a > b) - (a < b)


@dataclass(frozen=True)
class Matcher:
    """The match type and comparator of one test."""

    kind: str
    """"is", "contains", "matches", "value" or "count"."""
    comparator: str
    relation: str = "eq"

    @classmethod
    def of(cls, node: Node, default_kind: str = "is") -> Matcher:
        comparator = node.tag("comparator")
        comp = comparator if isinstance(comparator, str) else "i;ascii-casemap"
        for kind in ("is", "contains", "matches"):
            if node.tag(kind):
                return cls(kind, comp)
        for kind in ("value", "count"):
            relation = node.tag(kind)
            if isinstance(relation, str):
                return cls(kind, comp, relation.lower())
        return cls(default_kind, comp)

    def one(self, value: str, key: str) -> bool:
        comp = self.comparator
        if self.kind == "value":
            return _relation(self.relation, _order(value, key, comp))
        if self.kind == "is":
            return _order(value, key, comp) == 0
        fold = comp == "i;ascii-casemap"
        if fold:
            value, key = ascii_fold(value), ascii_fold(key)
        if self.kind == "contains":
            return key in value
        return glob(key, value) is not None

    def captures(self, values: Sequence[str], keys: Sequence[str]) -> list[str] | None:
        """For :matches, the match variables of the first value and key that match
        (${0} the whole value, then one per wildcard); None when nothing matches."""
        fold = self.comparator == "i;ascii-casemap"
        for value in values:
            folded = ascii_fold(value) if fold else value
            for key in keys:
                spans = glob(ascii_fold(key) if fold else key, folded)
                if spans is not None:  # folding keeps lengths: spans fit the original
                    return [value] + [value[a:b] for a, b in spans]
        return None

    def any(self, values: Sequence[str], keys: Sequence[str]) -> bool:
        """True if some value matches some key; :count compares how many values."""
        if self.kind == "count":
            count = str(len(values))
            return any(_relation(self.relation, _order(count, key, self.comparator))
                       for key in keys)
        return any(self.one(v, k) for v in values for k in keys)
