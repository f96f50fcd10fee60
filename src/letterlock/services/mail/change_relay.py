"""Change notification between processes of one server on one machine.

MX worker processes (``smtp.workers``) deliver into the same cells whose mailboxes
the main process's IMAP sessions watch (IDLE). A worker's :class:`ChangeSender` sends
the ids of mailboxes it changed as one datagram to the main process's
:class:`ChangeListener` (a Unix datagram socket under ``HOME/control/run/``), which
wakes the watchers in its :class:`~letterlock.services.mail.notify.ChangeHub`. Changes are
gathered for up to ``COALESCE_S`` so a burst of deliveries costs one datagram.

A lost datagram (the listener restarting, a full socket buffer) delays an IDLE
client's news until its next command; it never loses mail, which is durable in the
cell before anything is sent here. Cells on PostgreSQL do not need this: their
changes reach every process through the database (LISTEN/NOTIFY).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import socket
from pathlib import Path

from letterlock.services.mail.notify import ChangeHub

log = logging.getLogger("letterlock.notify")

COALESCE_S = 0.05
"""Seconds changes are gathered before they are sent (well under IDLE's 1 s)."""
MAX_DATAGRAM = 8192


def socket_path(run_dir: Path) -> Path:
    return run_dir / "changes.sock"


def _address(run_dir: Path) -> str:
    """The socket's address: its path, or (for a HOME too deep for the 108-byte
    limit of Unix socket paths) a Linux abstract name derived from that path."""
    path = str(socket_path(run_dir).absolute())
    if len(path.encode()) < 100:
        return path
    return "\0letterlock-changes-" + hashlib.sha256(path.encode()).hexdigest()[:32]


def _encode(ids: list[int]) -> list[bytes]:
    out: list[bytes] = []
    part: list[bytes] = []
    size = 0
    for mailbox_id in ids:
        text = str(mailbox_id).encode()
        if part and size + len(text) + 1 > MAX_DATAGRAM:
            out.append(b" ".join(part))
            part, size = [], 0
        part.append(text)
        size += len(text) + 1
    if part:
        out.append(b" ".join(part))
    return out


def _decode(datagram: bytes) -> list[int]:
    ids = []
    for field in datagram.split():
        if field.isdigit():
            ids.append(int(field))
    return ids


class ChangeListener:
    """The receiving end, in the main process."""

    def __init__(self, run_dir: Path, hub: ChangeHub) -> None:
        self._path = socket_path(run_dir)
        self._hub = hub
        self._sock: socket.socket | None = None

    def start(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with contextlib.suppress(FileNotFoundError):
            self._path.unlink()  # left by a process that did not stop cleanly
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.setblocking(False)
        address = _address(self._path.parent)
        sock.bind(address)
        if not address.startswith("\0"):
            os.chmod(self._path, 0o600)
        self._sock = sock
        asyncio.get_running_loop().add_reader(sock.fileno(), self._readable)

    def _readable(self) -> None:
        assert self._sock is not None
        while True:
            try:
                datagram = self._sock.recv(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("change relay: %r", exc)
                return
            for mailbox_id in _decode(datagram):
                self._hub.notify_from_elsewhere(mailbox_id)

    def close(self) -> None:
        if self._sock is not None:
            asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
            with contextlib.suppress(FileNotFoundError):
                self._path.unlink()


class ChangeSender:
    """The sending end, in a worker: register with ``hub.add_forwarder(sender)``."""

    def __init__(self, run_dir: Path) -> None:
        self._path = _address(run_dir)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.setblocking(False)
        self._pending: set[int] = set()
        self._timer: asyncio.TimerHandle | None = None

    def __call__(self, mailbox_id: int) -> None:
        self._pending.add(mailbox_id)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(COALESCE_S, self.flush)

    def flush(self) -> None:
        self._timer = None
        ids, self._pending = sorted(self._pending), set()
        for datagram in _encode(ids):
            try:
                self._sock.sendto(datagram, self._path)
            except (FileNotFoundError, ConnectionRefusedError):
                return  # no listener (the main process is restarting): nothing to wake
            except (BlockingIOError, OSError) as exc:
                log.debug("change relay: %r", exc)
                return

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self.flush()
        self._sock.close()
