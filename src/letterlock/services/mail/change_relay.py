"""Mailbox changes between the processes of one server, over the peer bus.

Every process of ``letterlock serve`` (the main one and the front-end workers of
:mod:`letterlock.workers`) may change a mailbox that sessions in another process
watch (IDLE, or just the next NOOP). A :class:`ChangeRelay` joins a process's
:class:`~letterlock.services.mail.notify.ChangeHub` to its
:class:`~letterlock.services.peers.PeerBus`: each change made here is broadcast at
once as one ``chg`` datagram (a group commit of many deliveries is one change of
each mailbox it touched, so one datagram), and changes broadcast by the others wake
the watchers here. The hub's :meth:`~ChangeHub.drain` reads datagrams already
waiting, so a session that looks for changes right after another process answered
its client sees them.

Payload: the mailbox ids in ASCII, separated by spaces, split into several
datagrams past ``MAX_PAYLOAD``. The region is not sent: a mailbox id is unique only
within its region, so a change may wake a session watching the same id in another
region, which then finds nothing new (see :mod:`letterlock.services.mail.notify`).

A lost datagram delays a session's news until its next look (IDLE also looks every
``POLL_S`` seconds); it never loses mail, which is durable in its cell before anyone
is told. Cells on PostgreSQL also tell every process on every host through the
database (LISTEN/NOTIFY).
"""

from __future__ import annotations

from collections.abc import Sequence

from letterlock.services.mail.notify import ChangeHub
from letterlock.services.peers import MAX_PAYLOAD, PeerBus

KIND = b"chg"


def encode(ids: Sequence[int]) -> list[bytes]:
    """Payloads of at most MAX_PAYLOAD bytes naming ``ids``."""
    out: list[bytes] = []
    part: list[bytes] = []
    size = 0
    for mailbox_id in ids:
        text = str(mailbox_id).encode()
        if part and size + len(text) > MAX_PAYLOAD:
            out.append(b" ".join(part))
            part, size = [], 0
        part.append(text)
        size += len(text) + 1
    if part:
        out.append(b" ".join(part))
    return out


def decode(payload: bytes) -> list[int]:
    # Negative ids are the account-list keys (notify.list_key).
    return [int(field) for field in payload.split() if field.lstrip(b"-").isdigit()]


class ChangeRelay:
    """Changes made in this process go to the bus; changes from the bus wake the hub."""

    def __init__(self, hub: ChangeHub, bus: PeerBus) -> None:
        self._hub = hub
        self._bus = bus
        bus.subscribe(KIND, self._received)
        hub.add_forwarder(self._forward)
        hub.add_drainer(bus.drain)

    def _forward(self, ids: Sequence[int]) -> None:
        for payload in encode(ids):
            self._bus.broadcast(KIND, payload)

    def _received(self, payload: bytes) -> None:
        for mailbox_id in decode(payload):
            self._hub.notify_from_elsewhere(mailbox_id)
