"""SORT and UID SORT (RFC 5256, with DISPLAYFROM/DISPLAYTO from RFC 5957): search, then
order by sort keys computed from the messages' sealed digests; ties fall back to sequence order."""

from __future__ import annotations

from collections.abc import Callable

from letterlock.imap import esearch
from letterlock.imap.commands.search import Hit, _Candidate, begin_updates, run_search
from letterlock.imap.context import Context
from letterlock.imap.parsing import commands as c
from letterlock.imap.parsing.search import SearchKey, SearchProgram
from letterlock.imap.reply import Reply, ok
from letterlock.imap.subjects import base_subject
from letterlock.mime import dates
from letterlock.mime.headers import decode_words, first_value, parse_addresses, split_fields


def _casemap(text: str) -> str:
    return "".join(ch.upper() if ch.isascii() else ch for ch in text)


def _header(cand: _Candidate, name: str) -> bytes | None:
    header = cand.header
    return first_value(split_fields(header), name)


def _address_key(cand: _Candidate, name: str, display: bool) -> str:
    """RFC 5256 addr-mailbox of the first address (a group's name for a group), or
    for DISPLAY* (RFC 5957) its display name, else its address."""
    addrs = [a for a in parse_addresses(_header(cand, name)) if a.mailbox is not None]
    if not addrs:
        return ""
    first = addrs[0]
    if not display:
        return _casemap(first.mailbox or "")
    if first.name:
        return _casemap(decode_words(first.name))
    if first.host is None or first.host == "MISSING_DOMAIN":
        return _casemap(first.mailbox or "")
    return _casemap(f"{first.mailbox}@{first.host}")


def _sent(cand: _Candidate) -> float:
    raw = _header(cand, "date")
    when = dates.sent_at(raw.decode("latin-1")) if raw is not None else None
    return (when or cand.record.internaldate).timestamp()


def _value(cand: _Candidate, key: str) -> object:
    if key == "ARRIVAL":
        return cand.record.internaldate.timestamp()
    if key == "SIZE":
        return cand.record.size
    if key == "DATE":
        return _sent(cand)
    if key == "SUBJECT":
        raw = _header(cand, "subject")
        return base_subject(raw.decode("utf-8", "replace")) if raw else ""
    if key in ("FROM", "CC", "TO"):
        return _address_key(cand, key.lower(), display=False)
    return _address_key(cand, "from" if key == "DISPLAYFROM" else "to", display=True)


class _Reversed:
    """Inverts the order of a value inside a sort tuple."""

    __slots__ = ("value",)

    def __init__(self, value: object) -> None:
        self.value = value

    def __lt__(self, other: _Reversed) -> bool:
        return other.value < self.value  # type: ignore[operator, no-any-return]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Reversed) and self.value == other.value

    def __hash__(self) -> int:
        return hash(self.value)


def key_for(criteria: tuple[tuple[bool, str], ...]) -> Callable[[_Candidate], tuple[object, ...]]:
    """The sort key of a message for ``criteria`` (most significant first)."""
    def key(cand: _Candidate) -> tuple[object, ...]:
        out: list[object] = []
        for reverse, name in criteria:
            value = _value(cand, name)
            out.append(_Reversed(value) if reverse else value)
        return tuple(out)
    return key


async def sorted_hits(ctx: Context, criteria: tuple[tuple[bool, str], ...],
                      keys: SearchKey, charset: str | None) -> list[Hit] | Reply:
    """The messages matching ``keys``, in ``criteria`` order (ties: mailbox order)."""
    hits = await run_search(ctx, SearchProgram(keys, charset, None), charset,
                            sort_key=key_for(criteria))
    if isinstance(hits, Reply):
        return hits
    return sorted(hits, key=lambda h: (h.sort_key, h.seq))


async def sort(cmd: c.Sort, ctx: Context) -> Reply:
    ordered = await sorted_hits(ctx, cmd.criteria, cmd.keys, cmd.charset)
    if isinstance(ordered, Reply):
        return ordered
    numbers = [h.uid if cmd.uid else h.seq for h in ordered]
    if cmd.returns is None:
        ctx.out.untagged(b"SORT" + b"".join(b" %d" % n for n in numbers))
        return ok(f"{cmd.name} completed")
    # ESORT (RFC 5267 3): an ESEARCH response, results in sort order.
    program = SearchProgram(cmd.keys, cmd.charset, cmd.returns, cmd.partial)
    refused = begin_updates(ctx, cmd.tag, cmd.uid, program, cmd.criteria,
                            [h.uid for h in ordered])
    if refused is not None:
        return refused
    if "SAVE" in cmd.returns:
        assert ctx.selected is not None
        ctx.selected.saved = sorted(h.uid for h in ordered)
    line = esearch.correlator(cmd.tag, cmd.uid)
    line += esearch.return_data(numbers, cmd.returns or ("ALL",), cmd.partial)
    ctx.out.untagged(line)
    return ok(f"{cmd.name} completed")
