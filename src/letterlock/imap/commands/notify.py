"""NOTIFY (RFC 5465): unsolicited updates about the selected mailbox and others,
sent while the client is idle between commands as well as in IDLE.

A session with NOTIFY set watches every mailbox of its account on the change hub
(services/mail/notify.py; changes made by other processes arrive through the peer
relay), and the account's list key (notify.list_key: CREATE, SUBSCRIBE,
UNSUBSCRIBE), so a delivery, another session's STORE or EXPUNGE, a mailbox created,
renamed or deleted, or a subscription changed wakes it at once. On waking it sends,
for the selected mailbox, the usual EXISTS / EXPUNGE / FETCH (and the FETCH a
MessageNew with fetch attributes asks for); for the others matched by a filter with
message events, a STATUS (MESSAGES UIDNEXT UIDVALIDITY UNSEEN, and HIGHESTMODSEQ
with CONDSTORE) when it differs from the last one sent; LIST responses for
MailboxName and SubscriptionChange, found by comparing the mailbox list and the
subscriptions with the last look (on every wake-up, and at least every POLL_S
seconds for what no notification reaches, e.g. another host on PostgreSQL).

A client that stops reading gets ``OK [NOTIFICATIONOVERFLOW]`` once its unread
output passes OVERFLOW_BYTES, and NOTIFY is switched off for it (RFC 5465 5.8).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from typing import TypeVar

from letterlock.errors import LetterlockError
from letterlock.imap.commands import fetch as fetch_cmd
from letterlock.imap.commands import updates
from letterlock.imap.commands.mailboxes import _status_line, decoded_name
from letterlock.imap.context import Context
from letterlock.imap.parsing import commands as c
from letterlock.imap.parsing.notify import SELECTED_FILTERS, EventGroup, NotifyNone, NotifySet
from letterlock.imap.parsing.primitives import STAR, SeqSet
from letterlock.imap.reply import Reply, no, ok
from letterlock.services.mail.mailbox_folders import HIERARCHY
from letterlock.services.mail.notify import list_key
from letterlock.services.operations.log_events import LogEvent, event

log = logging.getLogger(__name__)

POLL_S = 30.0
"""Look at the mailbox list (created mailboxes, subscriptions) at least this often."""
OVERFLOW_BYTES = 1024 * 1024
SUPPORTED = ("MessageNew", "MessageExpunge", "FlagChange", "MailboxName",
             "SubscriptionChange")
MESSAGE_EVENTS = frozenset({"MessageNew", "MessageExpunge", "FlagChange"})

T = TypeVar("T")


class _Mark(asyncio.Event):
    """Handed to the change hub for one mailbox: setting it tells the notifier."""

    def __init__(self, notifier: Notifier, box_id: int) -> None:
        super().__init__()
        self._notifier = notifier
        self._box_id = box_id

    def set(self) -> None:
        self._notifier.pending.add(self._box_id)
        self._notifier.wake.set()


class Notifier:
    """One session's NOTIFY SET: its event groups (mailbox names decoded), what it
    watches, and what it last told the client."""

    def __init__(self, groups: list[tuple[EventGroup, tuple[str, ...]]]) -> None:
        self.groups = groups
        self.wake = asyncio.Event()
        self.pending: set[int] = set()
        self._watches: dict[int, AbstractContextManager[asyncio.Event]] = {}
        self._list_watch: AbstractContextManager[asyncio.Event] | None = None
        self._names: dict[int, str] | None = None
        self._subscribed: set[str] | None = None
        self._junk: set[str] = set()
        self._told: dict[int, bytes] = {}

    def close(self) -> None:
        for watch in self._watches.values():
            watch.__exit__(None, None, None)
        self._watches.clear()
        if self._list_watch is not None:
            self._list_watch.__exit__(None, None, None)
            self._list_watch = None

    # -- filters -------------------------------------------------------------------
    def group_for(self, name: str, selected: bool) -> EventGroup | None:
        """The event group that applies to mailbox ``name``: for the selected mailbox
        the SELECTED (or SELECTED-DELAYED) group, None without one (RFC 5465 3.1: as
        SELECTED NONE); for the others the first other filter that matches."""
        if selected:
            for group, _ in self.groups:
                if group.filter in SELECTED_FILTERS:
                    return group
            return None
        for group, names in self.groups:
            if group.filter in SELECTED_FILTERS:
                continue
            if self._matches(group.filter, names, name):
                return group
        return None

    def _matches(self, kind: str, names: tuple[str, ...], name: str) -> bool:
        if kind == "PERSONAL":
            return True
        if kind == "INBOXES":
            # Where delivery puts mail: INBOX, and the Junk mailbox spam is filed in.
            return name == "INBOX" or name in self._junk
        if kind == "SUBSCRIBED":
            return self._subscribed is not None and name in self._subscribed
        if kind == "MAILBOXES":
            return name in names
        return any(name == n or name.startswith(n + HIERARCHY) for n in names)  # SUBTREE

    def _wants(self, name: str, selected: bool, event_name: str) -> bool:
        group = self.group_for(name, selected)
        return group is not None and event_name in group.events

    # -- the mailbox list ----------------------------------------------------------
    async def look(self, ctx: Context) -> list[bytes]:
        """Watch every mailbox of the account; LIST responses for names that came,
        went or changed, and for subscriptions changed, since the last look."""
        assert ctx.user is not None
        svc = ctx.services.mailboxes
        boxes = await svc.list_mailboxes(ctx.user)
        subscribed = set(await svc.subscriptions(ctx.user))
        names = {b.id: b.name for b in boxes}
        if self._list_watch is None:
            key = list_key(ctx.user.ref.record.id)
            self._list_watch = svc.hub.watch(key, _Mark(self, key))
            self._list_watch.__enter__()
        self._junk = {b.name for b in boxes if b.special_use == "\\Junk"}
        for box_id in names.keys() - self._watches.keys():
            watch = svc.hub.watch(box_id, _Mark(self, box_id))
            watch.__enter__()
            self._watches[box_id] = watch
        for box_id in self._watches.keys() - names.keys():
            self._watches.pop(box_id).__exit__(None, None, None)
            self._told.pop(box_id, None)
        before, self._names = self._names, names
        was_subscribed, self._subscribed = self._subscribed, subscribed
        out: list[bytes] = []
        if before is not None:
            out += self._name_changes(ctx, before, names)
        if was_subscribed is not None:
            for name in sorted(subscribed ^ was_subscribed):
                if self._wants(name, False, "SubscriptionChange"):
                    attrs = b"(\\Subscribed)" if name in subscribed else b"()"
                    out.append(_list_line(ctx, attrs, name))
        return out

    def _name_changes(self, ctx: Context, before: dict[int, str],
                      now: dict[int, str]) -> list[bytes]:
        out: list[bytes] = []
        for box_id in sorted(before.keys() | now.keys()):
            old, new = before.get(box_id), now.get(box_id)
            if old == new:
                continue
            if new is None:
                assert old is not None
                if self._wants(old, False, "MailboxName"):
                    out.append(_list_line(ctx, b"(\\NonExistent)", old))
            elif old is None:
                if self._wants(new, False, "MailboxName"):
                    out.append(_list_line(ctx, b"()", new))
            elif self._wants(new, False, "MailboxName") or self._wants(old, False,
                                                                        "MailboxName"):
                out.append(_list_line(ctx, b"()", new) + b' ("OLDNAME" ('
                           + ctx.mailbox_wire(old) + b"))")
        return out

    # -- delivering ------------------------------------------------------------------
    async def statuses(self, ctx: Context, box_ids: set[int] | None) -> list[bytes]:
        """STATUS responses for the mailboxes (all when None) that a non-selected
        filter with message events covers and whose values changed."""
        assert ctx.user is not None and self._names is not None
        sel = ctx.selected
        out: list[bytes] = []
        for box_id in sorted(self._names if box_ids is None else box_ids):
            name = self._names.get(box_id)
            if name is None or (sel is not None and sel.id == box_id):
                continue  # gone, or the selected mailbox (told by EXISTS etc.)
            group = self.group_for(name, False)
            if group is None or not MESSAGE_EVENTS & set(group.events):
                continue
            # RFC 5465 5.1: FlagChange reports carry HIGHESTMODSEQ, CONDSTORE or not.
            items = ("MESSAGES", "UIDNEXT", "UIDVALIDITY", "UNSEEN") + (
                ("HIGHESTMODSEQ",) if ctx.condstore or "FlagChange" in group.events
                else ())
            try:
                box = await ctx.services.mailboxes.get_mailbox(ctx.user, name)
                line = await _status_line(ctx, box, items)
            except LetterlockError:
                continue  # went meanwhile: the next look says so
            if line is not None and self._told.get(box_id) != line:
                self._told[box_id] = line
                out.append(line)
        return out

    async def deliver(self, ctx: Context, *, in_idle: bool = False) -> None:
        """Send what changed since the last delivery (clears :attr:`wake`)."""
        if ctx.user is None:
            return
        transport = ctx.out.writer.transport
        if transport is not None and transport.get_write_buffer_size() > OVERFLOW_BYTES:
            ctx.out.untagged(b"OK [NOTIFICATIONOVERFLOW] Too many changes unread; "
                             b"NOTIFY is off")
            event(LogEvent.IMAP_NOTIFY_OVERFLOW, unread=transport.get_write_buffer_size())
            self.close()
            ctx.notifier = None
            return
        ctx.services.mailboxes.hub.drain()
        self.wake.clear()
        pending, self.pending = self.pending, set()
        try:
            for line in await self.look(ctx):
                ctx.out.untagged(line)
        except LetterlockError:
            return
        await self._selected(ctx, in_idle)
        for line in await self.statuses(ctx, pending):
            ctx.out.untagged(line)

    async def _selected(self, ctx: Context, in_idle: bool) -> None:
        sel = ctx.selected
        if sel is None or ctx.user is None:
            return
        group = self.group_for(sel.name, True)
        wanted = group is not None and bool(MESSAGE_EVENTS & set(group.events))
        if not wanted and not in_idle:
            return  # told at the end of the next command, as without NOTIFY
        delayed = group is not None and group.filter == "SELECTED-DELAYED" and not in_idle
        last = sel.uids.last
        try:
            lines = await sel.refresh(ctx.user, ctx.services.mailboxes,
                                      allow_expunge=not delayed, condstore=ctx.condstore,
                                      qresync=ctx.qresync)
        except LetterlockError:
            return
        for line in lines:
            ctx.out.untagged(line)
        await updates.push(ctx)
        if group is not None and group.fetch and sel.uids.last > last \
                and ctx.selected is sel:
            # MessageNew with fetch attributes: a UID FETCH of the new messages.
            query = c.Fetch("*", SeqSet(((last + 1, STAR),)), group.fetch, uid=True)
            await fetch_cmd.fetch(query, ctx)


def _list_line(ctx: Context, attrs: bytes, name: str) -> bytes:
    return b"LIST " + attrs + b' "' + HIERARCHY.encode() + b'" ' + ctx.mailbox_wire(name)


# -- the command -----------------------------------------------------------------------

async def notify_none(cmd: NotifyNone, ctx: Context) -> Reply:
    if ctx.notifier is not None:
        ctx.notifier.close()
        ctx.notifier = None
    return ok("NOTIFY completed")


async def notify_set(cmd: NotifySet, ctx: Context) -> Reply:
    unsupported = sorted({e for g in cmd.groups for e in g.events if e not in SUPPORTED})
    if unsupported:
        return no(f"Event {unsupported[0]} is not supported",
                  "BADEVENT (" + " ".join(SUPPORTED) + ")")
    groups: list[tuple[EventGroup, tuple[str, ...]]] = []
    for group in cmd.groups:
        names = [decoded_name(ctx, raw) for raw in group.mailboxes]
        # A name no mailbox can have matches nothing (RFC 5465 6: not an error).
        groups.append((group, tuple(n for n in names if isinstance(n, str))))
    notifier = Notifier(groups)
    try:
        await notifier.look(ctx)
        # Only when asked: a STATUS of every covered mailbox reads each one's index.
        lines = await notifier.statuses(ctx, None) if cmd.status else []
    except LetterlockError:
        notifier.close()
        return no("NOTIFY failed", "UNAVAILABLE")
    if ctx.notifier is not None:
        ctx.notifier.close()
    ctx.notifier = notifier
    for line in lines:
        ctx.out.untagged(line)
    return ok("NOTIFY completed")


async def read_between_commands(ctx: Context, read: Awaitable[T],
                                mid_command: Callable[[], bool]) -> T:
    """Wait for ``read`` (the next command) while delivering notifications as changes
    arrive, until the client has started to send a command (``mid_command()``)."""
    task = asyncio.ensure_future(read)
    loop = asyncio.get_running_loop()
    try:
        while ctx.notifier is not None:
            notifier = ctx.notifier
            waiter = asyncio.ensure_future(notifier.wake.wait())
            poll = loop.call_later(POLL_S, notifier.wake.set)
            try:
                await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                poll.cancel()
                waiter.cancel()
            if task.done() or mid_command():
                break
            try:
                await notifier.deliver(ctx)
            except ConnectionError:
                raise
            except Exception:
                # A bug must not end the session: the next command still answers.
                log.exception("NOTIFY delivery failed")
            if mid_command():
                break  # begun meanwhile: what was found goes out with its response
            ctx.out.flush_nowait()  # a client that does not read overflows, see deliver
        return await task
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
