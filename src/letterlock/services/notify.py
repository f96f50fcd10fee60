"""Change notification: a mailbox's watchers are woken after every committed change,
so an IMAP IDLE (or any other front-end) can wait without polling."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager


class ChangeHub:
    def __init__(self) -> None:
        self._watchers: dict[int, set[asyncio.Event]] = {}

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
        for event in self._watchers.get(mailbox_id, ()):
            event.set()
