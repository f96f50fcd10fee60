"""Change notification: a mailbox's watchers are woken after every committed change,
so an IMAP IDLE (or any other front-end) can wait without polling."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class ChangeHub:
    def __init__(self) -> None:
        self._watchers: dict[int, set[asyncio.Event]] = {}
        self._forwarders: list[Callable[[int], None]] = []

    def add_forwarder(self, forward: Callable[[int], None]) -> None:
        """Also call ``forward(mailbox_id)`` for every change made in this process
        (e.g. to tell other processes, see :mod:`letterlock.services.mail.change_relay`).
        Changes received from elsewhere (:meth:`notify_from_elsewhere`) are not
        forwarded again."""
        self._forwarders.append(forward)

    @contextmanager
    def watch(self, mailbox_id: int) -> Iterator[asyncio.Event]:
        """An event set whenever ``mailbox_id`` changes; clear it before waiting again."""
        event = asyncio.Event()
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
        self.notify_from_elsewhere(mailbox_id)
        for forward in self._forwarders:
            forward(mailbox_id)

    def notify_from_elsewhere(self, mailbox_id: int) -> None:
        """Wake this process's watchers of ``mailbox_id`` only."""
        for event in self._watchers.get(mailbox_id, ()):
            event.set()
