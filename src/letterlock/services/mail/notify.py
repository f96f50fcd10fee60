"""Change notification: a mailbox's watchers are woken after every committed change,
so an IMAP IDLE (or any other front-end) can wait without polling.

Watchers are keyed by mailbox id alone, and a mailbox id is unique only within its
cell (region): a change in one region also wakes the watchers of the mailbox with
the same id in another. Such a spurious wake-up costs that session one look at its
mailbox, which finds nothing new; carrying the region everywhere would cost more.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager


def list_key(account_id: str) -> int:
    """A watch key for an account's mailbox list and subscriptions (NOTIFY's MailboxName
    and SubscriptionChange): negative, so never a mailbox id; accounts whose keys
    collide only wake each other needlessly."""
    return -1 - zlib.crc32(account_id.encode("utf-8"))


class ChangeHub:
    def __init__(self) -> None:
        self._watchers: dict[int, set[asyncio.Event]] = {}
        self._forwarders: list[Callable[[Sequence[int]], None]] = []
        self._drainers: list[Callable[[], None]] = []

    def add_forwarder(self, forward: Callable[[Sequence[int]], None]) -> None:
        """Also call ``forward(mailbox_ids)`` for every change made in this process
        (to tell other processes, see :mod:`letterlock.services.mail.change_relay`),
        before :meth:`notify` returns. Changes received from elsewhere
        (:meth:`notify_from_elsewhere`) are not forwarded again."""
        self._forwarders.append(forward)

    def add_drainer(self, drain: Callable[[], None]) -> None:
        """Call ``drain()`` from :meth:`drain`: it takes in, now, the changes other
        processes have already sent (e.g. :meth:`letterlock.services.peers.PeerBus.drain`)."""
        self._drainers.append(drain)

    def drain(self) -> None:
        """Take in changes already sent by other processes, so a watcher checked right
        after this sees every change that another process had finished (and told)
        before. Call it before looking at a watch event."""
        for drain in self._drainers:
            drain()

    @contextmanager
    def watch(self, mailbox_id: int,
              event: asyncio.Event | None = None) -> Iterator[asyncio.Event]:
        """An event set whenever ``mailbox_id`` changes (``event`` if given, e.g. one
        whose ``set`` tells a watcher of many mailboxes which one changed); clear it
        before waiting again."""
        event = event if event is not None else asyncio.Event()
        self._watchers.setdefault(mailbox_id, set()).add(event)
        try:
            yield event
        finally:
            watchers = self._watchers.get(mailbox_id)
            if watchers is not None:
                watchers.discard(event)
                if not watchers:
                    del self._watchers[mailbox_id]

    def notify(self, mailbox_id: int) -> None:
        self.notify_many((mailbox_id,))

    def notify_many(self, mailbox_ids: Iterable[int]) -> None:
        """Several mailboxes changed in one commit: told to other processes at once."""
        ids = sorted(set(mailbox_ids))
        if not ids:
            return
        for mailbox_id in ids:
            self.notify_from_elsewhere(mailbox_id)
        for forward in self._forwarders:
            forward(ids)

    def notify_from_elsewhere(self, mailbox_id: int) -> None:
        """Wake this process's watchers of ``mailbox_id`` only."""
        for event in self._watchers.get(mailbox_id, ()):
            event.set()
