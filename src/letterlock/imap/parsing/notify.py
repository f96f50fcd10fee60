"""The NOTIFY command (RFC 5465 8): ``NOTIFY NONE`` and ``NOTIFY SET [STATUS]`` with
event groups, each a mailbox filter and the events wanted for it.

Syntax errors (and fetch attributes for other than the selected mailbox) are
ParseErrors, the command's BAD. RFC 5465 5 has clients name MessageNew and
MessageExpunge together, and FlagChange only with both; like Dovecot (and as
imaptest's notify script expects) a lone one is accepted and reported on its own.
Events this server does not offer parse; the handler answers them with
``NO [BADEVENT]``.
"""

from __future__ import annotations

from dataclasses import dataclass

from letterlock.imap.parsing.commands import AuthCommand, Command
from letterlock.imap.parsing.fetch import FetchItem, fetch_item
from letterlock.imap.parsing.primitives import (
    ParseError,
    astring,
    atom,
    expect,
    paren_list,
    peek,
    peek_ci,
    sp,
)

SELECTED_FILTERS = frozenset({"SELECTED", "SELECTED-DELAYED"})
OTHER_FILTERS = frozenset({"INBOXES", "PERSONAL", "SUBSCRIBED", "SUBTREE", "MAILBOXES"})
EVENT_NAMES = {name.upper(): name for name in (
    "MessageNew", "MessageExpunge", "FlagChange", "AnnotationChange", "MailboxName",
    "SubscriptionChange", "MailboxMetadataChange", "ServerMetadataChange")}
"""Events RFC 5465 and RFC 5464 define, by upper-case name -> the spelling used in
responses; any other atom is kept as written (an unknown event)."""
MAX_GROUPS = 64
MAX_MAILBOXES = 1000


@dataclass(frozen=True)
class EventGroup:
    filter: str
    """Upper case: SELECTED, SELECTED-DELAYED, INBOXES, PERSONAL, SUBSCRIBED, SUBTREE,
    MAILBOXES."""
    mailboxes: tuple[bytes, ...]
    """The names given to SUBTREE and MAILBOXES (as sent; empty for the others)."""
    events: tuple[str, ...]
    """Event names (empty for NONE)."""
    fetch: tuple[FetchItem, ...] = ()
    """Fetch attributes MessageNew asks for (selected filters only)."""


@dataclass(frozen=True)
class NotifyNone(AuthCommand):
    @property
    def name(self) -> str:
        return "NOTIFY"


@dataclass(frozen=True)
class NotifySet(AuthCommand):
    status: bool
    groups: tuple[EventGroup, ...]

    @property
    def name(self) -> str:
        return "NOTIFY"


def _mailboxes(buf: bytes, pos: int) -> tuple[tuple[bytes, ...], int]:
    """one-or-more-mailbox: a mailbox, or a parenthesised list of them."""
    if peek(buf, pos, b"("):
        names, pos = paren_list(buf, pos, astring, empty=False)
        if len(names) > MAX_MAILBOXES:
            raise ParseError("too many mailboxes in NOTIFY")
        return tuple(names), pos
    name, pos = astring(buf, pos)
    return (name,), pos


def _events(buf: bytes, pos: int, selected: bool,
            ) -> tuple[tuple[str, ...], tuple[FetchItem, ...], int]:
    if peek_ci(buf, pos, b"NONE)"):
        return (), (), pos + 4
    pos = expect(buf, pos, b"(")
    events: list[str] = []
    fetch: tuple[FetchItem, ...] = ()
    while True:
        word, pos = atom(buf, pos)
        event = EVENT_NAMES.get(word.upper(), word)
        if event in events:
            raise ParseError(f"{event} given twice")
        events.append(event)
        if event == "MessageNew" and peek(buf, pos, b" ("):
            if not selected:
                raise ParseError("fetch attributes are for the selected mailbox only")
            items, pos = paren_list(buf, pos + 1, fetch_item, empty=False)
            fetch = tuple(items)
        if peek(buf, pos, b")"):
            pos += 1
            break
        pos = sp(buf, pos)
    return tuple(events), fetch, pos


def _group(buf: bytes, pos: int) -> tuple[EventGroup, int]:
    pos = expect(buf, pos, b"(")
    word, pos = atom(buf, pos)
    kind = word.upper()
    if kind not in SELECTED_FILTERS | OTHER_FILTERS:
        raise ParseError(f"unknown NOTIFY filter {word}")
    names: tuple[bytes, ...] = ()
    if kind in ("SUBTREE", "MAILBOXES"):
        names, pos = _mailboxes(buf, sp(buf, pos))
    events, fetch, pos = _events(buf, sp(buf, pos), kind in SELECTED_FILTERS)
    return EventGroup(kind, names, events, fetch), expect(buf, pos, b")")


def notify_command(buf: bytes, pos: int, tag: str) -> tuple[Command, int]:
    """NOTIFY's arguments at ``pos``; returns the command and the end of what it read."""
    word, pos = atom(buf, pos)
    if word.upper() == "NONE":
        return NotifyNone(tag), pos
    if word.upper() != "SET":
        raise ParseError("NOTIFY needs SET or NONE")
    status = False
    if peek_ci(buf, pos, b" STATUS "):
        status, pos = True, pos + 7
    groups: list[EventGroup] = []
    while peek(buf, pos, b" ("):
        group, pos = _group(buf, pos + 1)
        groups.append(group)
        if len(groups) > MAX_GROUPS:
            raise ParseError("too many NOTIFY event groups")
    if not groups:
        raise ParseError("NOTIFY SET needs at least one event group")
    if sum(g.filter in SELECTED_FILTERS for g in groups) > 1:
        raise ParseError("only one of SELECTED and SELECTED-DELAYED")
    return NotifySet(tag, status, tuple(groups)), pos
