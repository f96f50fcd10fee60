"""The owner filing messages: what a hook on the mailbox service is told when its owner
copies, moves or appends messages into a mailbox (spam learning listens for moves
into and out of Junk, services/mail/spam_learning.py).

Hooks run after the change is durable and must not block: one that needs to do
something slow starts a task of its own, so the client's reply never waits for it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from letterlock.services.accounts.accounts import AccountRef, Session
from letterlock.storage.models import MailboxRecord

JUNK = "Junk"
"""The name of the Junk mailbox made where an account has none (special use \\Junk,
RFC 6154); accounts get one when they are created."""


@dataclass(frozen=True)
class Filing:
    """Messages put into ``target`` by its owner: copied or moved from ``source``
    (``session`` can read them), or appended (``source`` None, ``raw`` holds them)."""

    ref: AccountRef
    session: Session | None
    source: MailboxRecord | None
    target: MailboxRecord
    uids: tuple[int, ...]
    """The messages' UIDs in ``target``."""
    raw: tuple[bytes, ...] = ()


FilingHook = Callable[[Filing], None]


def is_junk(box: MailboxRecord | None) -> bool:
    return box is not None and (box.special_use == "\\Junk" or box.name.lower() == "junk")


def is_trash(box: MailboxRecord | None) -> bool:
    return box is not None and (box.special_use == "\\Trash"
                                or box.name.lower() == "trash")
