"""ESEARCH return data for SEARCH and SORT results (RFC 4731, RFC 5267 ESORT and
PARTIAL), and the update contexts of RFC 5267 4.3 (RETURN (UPDATE)) with their ADDTO
and REMOVEFROM notifications.

Pure: numbers in, response bytes out. A context remembers its result as UIDs in
result order (mailbox order for SEARCH, sort order for SORT); the command handlers
recompute results, and this module says how the client's copy must change.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from letterlock.imap.parsing.search import SearchKey


def ordered_set(numbers: Sequence[int]) -> str:
    """A sequence set that lists ``numbers`` in the order given: a range only where
    numbers rise by one (RFC 5267 3.2: ranges read in increasing order)."""
    out: list[str] = []
    i = 0
    while i < len(numbers):
        j = i
        while j + 1 < len(numbers) and numbers[j + 1] == numbers[j] + 1:
            j += 1
        out.append(str(numbers[i]) if i == j else f"{numbers[i]}:{numbers[j]}")
        i = j + 1
    return ",".join(out)


def return_data(numbers: Sequence[int], returns: Sequence[str],
                partial: tuple[int, int] | None) -> bytes:
    """`` MIN n MAX n ALL set COUNT n PARTIAL (m:n set)`` for results in their order
    (ascending for SEARCH, sort order for SORT: MIN is then the first sorted, MAX the
    last). Empty results give no MIN, MAX or ALL; PARTIAL gives NIL."""
    out = b""
    if numbers:
        if "MIN" in returns:
            out += b" MIN %d" % numbers[0]
        if "MAX" in returns:
            out += b" MAX %d" % numbers[-1]
        if "ALL" in returns:
            out += b" ALL " + ordered_set(numbers).encode()
    if "COUNT" in returns:
        out += b" COUNT %d" % len(numbers)
    if partial is not None:
        low, high = partial
        window = numbers[low - 1 : high]
        shown = ordered_set(window).encode() if window else b"NIL"
        out += b" PARTIAL (%d:%d %s)" % (low, high, shown)
    return out


def correlator(tag: str, uid: bool) -> bytes:
    return b'ESEARCH (TAG "' + tag.encode() + b'")' + (b" UID" if uid else b"")


@dataclass
class UpdateContext:
    """A search whose result the client asked to be kept up to date."""

    tag: str
    uid: bool
    keys: SearchKey
    """The search keys (with ``$`` already resolved)."""
    charset: str | None
    criteria: tuple[tuple[bool, str], ...] | None
    """Sort criteria for a SORT context; None for SEARCH (results in mailbox order)."""
    results: list[int] = field(default_factory=list)
    """UIDs of the result, in result order, as the client last learnt it."""

    @property
    def sorted(self) -> bool:
        return self.criteria is not None


MAX_CONTEXTS = 8
"""Update contexts one session may hold (RFC 5267 4.3.1 asks for at least one)."""


def begin(contexts: list[UpdateContext], context: UpdateContext) -> str | None:
    """Add ``context`` to a session's ``contexts``; None if it was, else why not:
    ``in use`` (its tag names a live context: the command's BAD) or ``full``
    (MAX_CONTEXTS reached: NOUPDATE, the result is still returned)."""
    if any(c.tag == context.tag for c in contexts):
        return "in use"
    if len(contexts) >= MAX_CONTEXTS:
        return "full"
    contexts.append(context)
    return None


def expunge_removals(contexts: Sequence[UpdateContext], gone: Sequence[int],
                     seq_of: Callable[[int], int | None]) -> list[bytes]:
    """REMOVEFROM responses for expunged UIDs, to be sent before the EXPUNGE (or
    VANISHED) responses while the sequence numbers still hold (RFC 5267 4.3.4)."""
    doomed = set(gone)
    out: list[bytes] = []
    for context in contexts:
        if not doomed.intersection(context.results):
            continue
        line = _diff(context, [u for u in context.results if u not in doomed], seq_of)
        if line:
            out.append(line)
    return out


def update(context: UpdateContext, results: Sequence[int],
           seq_of: Callable[[int], int | None]) -> bytes | None:
    """The ESEARCH response telling the change from the context's last result to
    ``results`` (UIDs in result order), or None if nothing changed."""
    return _diff(context, list(results), seq_of) or None


def _number(context: UpdateContext, uid: int, seq_of: Callable[[int], int | None]) -> int:
    if context.uid:
        return uid
    seq = seq_of(uid)
    assert seq is not None, "a result that is no longer in the mailbox"
    return seq


def _diff(context: UpdateContext, new: list[int],
          seq_of: Callable[[int], int | None]) -> bytes:
    old = context.results
    kept = set(new)
    was = set(old)
    removed = [u for u in old if u not in kept]
    added = [u for u in new if u not in was]
    context.results = new
    if not removed and not added:
        return b""
    line = correlator(context.tag, context.uid)
    if removed:
        if context.sorted:
            # One pair per message, last position first, so each position is the one
            # the message has when its pair is applied (RFC 5267 4.3.4).
            index = {u: i for i, u in enumerate(old)}
            pairs = [b"%d %d" % (index[u] + 1, _number(context, u, seq_of))
                     for u in sorted(removed, key=index.__getitem__, reverse=True)]
        else:
            numbers = sorted(_number(context, u, seq_of) for u in removed)
            pairs = [b"0 " + ordered_set(numbers).encode()]
        line += b" REMOVEFROM (" + b" ".join(pairs) + b")"
    if added:
        if context.sorted:
            # In ascending position: each lands where it is in the new result.
            index = {u: i for i, u in enumerate(new)}
            pairs = [b"%d %d" % (index[u] + 1, _number(context, u, seq_of)) for u in added]
        else:
            numbers = sorted(_number(context, u, seq_of) for u in added)
            pairs = [b"0 " + ordered_set(numbers).encode()]
        line += b" ADDTO (" + b" ".join(pairs) + b")"
    return line
