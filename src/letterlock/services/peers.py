"""The peer bus: short messages between the processes of one server on one machine.

``letterlock serve`` runs a main process and front-end worker processes (MX and
IMAP on every core, see :mod:`letterlock.workers`), each with its own event loop
and caches. They tell each other what changed (a mailbox, an account's key) through
a :class:`PeerBus`: every process that :meth:`~PeerBus.start`\\ s binds one Unix
datagram socket in ``HOME/control/run/peers/`` (directory 0700, sockets 0600),
named after its process id; a broadcast sends one datagram to every other socket
found there. A process that is not a member (a command such as ``letterlock mail
import`` run beside ``serve``) can still broadcast, to every member.

Delivery is immediate and ordered per pair of processes: :meth:`PeerBus.broadcast`
returns only once the datagram is in each receiver's socket queue, so a receiver
that calls :meth:`PeerBus.drain` after that handles it, whatever its event loop was
doing. A client that got an answer from one process and then asks another is
answered with the news (IMAP: a STORE's OK on one process, then NOOP on another).

A datagram can still be late or lost: a receiver whose queue is full (it is busy)
gets it from a retry timer a little later; one that is stopped, or a backlog that
outgrows ``MAX_BACKLOG``, loses it. So nothing may depend on the bus for
correctness of stored data: it carries news about data that is already durable
elsewhere (a mailbox changed, a cached key is stale), never the data itself. A lost
change notification delays an IDLE client's news until its next command or the
IDLE poll; it never loses mail.

Wire format of a datagram: ``u8 n | n bytes of kind | payload`` (payload at most
``MAX_PAYLOAD`` bytes; callers split larger news). Kinds starting with ``peer-``
belong to the bus itself (a process announcing its arrival and departure).

Peers are found by listing the directory; the list is cached and read again when a
peer announces itself or leaves, or when a send fails. A socket whose process is
gone (a send is refused) is removed. Where the directory's path is too long for a
Unix socket address (108 bytes), sockets live in Linux's abstract namespace under a
name derived from that path, and the directory holds an empty marker file per
process instead, so listing works the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import logging
import os
import socket
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

log = logging.getLogger("letterlock.peers")

MAX_PAYLOAD = 8192
"""Largest payload of one broadcast, in bytes."""
MAX_KIND = 32
"""Longest kind tag, in bytes."""
MAX_BACKLOG = 256
"""Datagrams kept per peer whose queue is full, waiting to be sent again; beyond
this the oldest are dropped (and a warning logged)."""
RETRY_S = (0.002, 0.01, 0.05, 0.2, 1.0)
"""Delays before sending a backlog again, growing while the peer stays full."""

_HELLO = b"peer-hello"
_BYE = b"peer-bye"
_SUFFIX = ".sock"
_LONGEST_NAME = "4194304" + _SUFFIX  # the largest Linux pid
_PATH_LIMIT = 100  # sun_path holds 108 bytes, with the terminating NUL


def _encode(kind: bytes, payload: bytes) -> bytes:
    if not kind or len(kind) > MAX_KIND:
        raise ValueError(f"a peer bus kind is 1 to {MAX_KIND} bytes, got {kind!r}")
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"peer bus payload of {len(payload)} bytes: at most "
                         f"{MAX_PAYLOAD}, split it")
    return bytes((len(kind),)) + kind + payload


def _decode(datagram: bytes) -> tuple[bytes, bytes] | None:
    if not datagram:
        return None
    n = datagram[0]
    if n == 0 or len(datagram) < 1 + n:
        return None
    return datagram[1 : 1 + n], datagram[1 + n :]


@dataclass(frozen=True)
class _Peer:
    pid: int
    address: str
    entry: Path
    inode: int
    """Of the directory entry when listed: a new process reusing the pid is not
    mistaken for the dead one when its entry is removed."""


class PeerBus:
    def __init__(self, run_dir: Path) -> None:
        self._dir = run_dir / "peers"
        self._abstract = len(str((self._dir / _LONGEST_NAME).absolute()).encode()) \
            >= _PATH_LIMIT
        self._tag = hashlib.sha256(str(self._dir.absolute()).encode()).hexdigest()[:32]
        self._pid = os.getpid()
        self._sock: socket.socket | None = None
        self._sender: socket.socket | None = None
        """Unbound socket for broadcasts of a process that is not a member."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handlers: dict[bytes, list[Callable[[bytes], None]]] = {}
        self._peers: list[_Peer] | None = None
        self._backlog: dict[int, deque[bytes]] = {}
        self._retries: dict[int, tuple[asyncio.TimerHandle, int]] = {}

    # -- addresses -------------------------------------------------------------------
    def _address(self, pid: int) -> str:
        if self._abstract:
            return f"\0letterlock-peer-{self._tag}-{pid}"
        return str((self._dir / f"{pid}{_SUFFIX}").absolute())

    def _entry(self, pid: int) -> Path:
        return self._dir / f"{pid}{_SUFFIX}"

    @property
    def started(self) -> bool:
        return self._sock is not None

    @property
    def peer_pids(self) -> list[int]:
        """Process ids of the other members, as last listed."""
        return [p.pid for p in self._list()]

    # -- membership ------------------------------------------------------------------
    def start(self) -> None:
        """Bind this process's socket, add the reader to the running loop and
        announce this process to the others."""
        if self._sock is not None:
            return
        loop = asyncio.get_running_loop()
        self._dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self._dir, 0o700)
        self._pid = os.getpid()
        entry = self._entry(self._pid)
        with contextlib.suppress(FileNotFoundError):
            entry.unlink()  # left by an earlier process with this pid that was killed
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.bind(self._address(self._pid))
            if self._abstract:
                entry.touch(mode=0o600)
            os.chmod(entry, 0o600)
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        self._loop = loop
        loop.add_reader(sock.fileno(), self.drain)
        self._peers = None
        self._send_all(_encode(_HELLO, str(self._pid).encode()))

    def subscribe(self, kind: bytes, handler: Callable[[bytes], None]) -> None:
        """Call ``handler(payload)`` for every datagram of ``kind`` another process
        sends (from the event loop's reader, or from :meth:`drain`)."""
        if kind.startswith(b"peer-"):
            raise ValueError(f"kind {kind!r} is reserved for the bus itself")
        _encode(kind, b"")  # checks the kind
        self._handlers.setdefault(kind, []).append(handler)

    def broadcast(self, kind: bytes, payload: bytes) -> None:
        """Send ``payload`` to every other live process of this server, now: when this
        returns, each datagram is in its receiver's queue (or, for a receiver whose
        queue is full, in this process's backlog for a retry). Never to this process.
        Call it from the event loop's thread (the bus is not thread-safe). Raises
        ValueError for a payload above ``MAX_PAYLOAD`` bytes."""
        if kind.startswith(b"peer-"):
            raise ValueError(f"kind {kind!r} is reserved for the bus itself")
        self._send_all(_encode(kind, payload))

    def drain(self) -> None:
        """Handle every datagram already waiting, now, without blocking."""
        sock = self._sock
        if sock is None:
            return
        while True:
            try:
                datagram = sock.recv(MAX_PAYLOAD + MAX_KIND + 1)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("peer bus: %r", exc)
                return
            decoded = _decode(datagram)
            if decoded is None:
                continue
            kind, payload = decoded
            if kind in (_HELLO, _BYE):
                self._peers = None  # list again at the next send
                if kind == _BYE and payload.isdigit():
                    self._forget(int(payload))
                continue
            for handler in self._handlers.get(kind, ()):
                try:
                    handler(payload)
                except Exception:
                    log.exception("peer bus handler for %r failed", kind)

    def close(self) -> None:
        """Tell the others this process leaves, and remove its socket."""
        sock, self._sock = self._sock, None
        if sock is not None:
            self._send_all(_encode(_BYE, str(self._pid).encode()), via=sock)
        for timer, _ in self._retries.values():
            timer.cancel()
        self._retries.clear()
        self._backlog.clear()
        if sock is not None:
            if self._loop is not None and not self._loop.is_closed():
                with contextlib.suppress(Exception):
                    self._loop.remove_reader(sock.fileno())
            sock.close()
            with contextlib.suppress(FileNotFoundError):
                self._entry(self._pid).unlink()
        if self._sender is not None:
            self._sender.close()
            self._sender = None
        self._loop = None

    # -- sending ---------------------------------------------------------------------
    def _list(self) -> list[_Peer]:
        """Other members, from the cache, or listed again when a member that joined
        or left made it stale (and always when this process is not a member: it
        hears no announcements)."""
        if self._peers is not None and self._sock is not None:
            return self._peers
        peers = []
        try:
            entries = list(os.scandir(self._dir))
        except (FileNotFoundError, NotADirectoryError):
            entries = []
        for entry in entries:
            stem = entry.name.removesuffix(_SUFFIX)
            if entry.name == stem or not stem.isdigit() or int(stem) == self._pid:
                continue
            with contextlib.suppress(OSError):
                peers.append(_Peer(int(stem), self._address(int(stem)), Path(entry.path),
                                   entry.inode()))
        self._peers = peers
        return peers

    def _forget(self, pid: int) -> None:
        self._backlog.pop(pid, None)
        retry = self._retries.pop(pid, None)
        if retry is not None:
            retry[0].cancel()

    def _socket_for_sending(self) -> socket.socket:
        if self._sock is not None:
            return self._sock
        if self._sender is None:
            self._sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._sender.setblocking(False)
        return self._sender

    def _send_all(self, datagram: bytes, via: socket.socket | None = None) -> None:
        sock = via or self._socket_for_sending()
        stale = False
        for peer in self._list():
            if peer.pid in self._backlog:
                self._queue(peer, datagram)  # behind what waits: order is kept
                continue
            outcome = self._send(sock, peer, datagram)
            if outcome == "full":
                self._queue(peer, datagram)
            elif outcome == "gone":
                stale = True
        if stale:
            self._peers = None

    def _send(self, sock: socket.socket, peer: _Peer,
              datagram: bytes) -> Literal["sent", "full", "gone"]:
        try:
            sock.sendto(datagram, peer.address)
        except (BlockingIOError, InterruptedError):
            return "full"
        except OSError as exc:
            if exc.errno == errno.EAGAIN:
                return "full"
            if exc.errno in (errno.ECONNREFUSED, errno.ENOENT, errno.ENOTSOCK):
                self._remove_dead(peer)
            else:
                log.debug("peer bus: sending to %d: %r", peer.pid, exc)
            return "gone"
        return "sent"

    def _remove_dead(self, peer: _Peer) -> None:
        """The process is gone (nobody holds its socket): remove its entry, unless a
        new process of the same pid replaced it since the listing."""
        self._forget(peer.pid)
        try:
            if os.lstat(peer.entry).st_ino == peer.inode:
                peer.entry.unlink()
        except OSError:
            pass

    def _queue(self, peer: _Peer, datagram: bytes) -> None:
        waiting = self._backlog.setdefault(peer.pid, deque())
        if datagram in waiting:
            return  # the same news is already on its way
        if len(waiting) >= MAX_BACKLOG:
            waiting.popleft()
            log.warning("peer bus: process %d does not keep up; news dropped", peer.pid)
        waiting.append(datagram)
        if peer.pid not in self._retries:
            self._schedule(peer, 0)

    def _schedule(self, peer: _Peer, attempt: int) -> None:
        try:
            loop = self._loop or asyncio.get_running_loop()
        except RuntimeError:
            self._backlog.pop(peer.pid, None)  # no loop to retry from: news is lost
            return
        delay = RETRY_S[min(attempt, len(RETRY_S) - 1)]
        self._retries[peer.pid] = (loop.call_later(delay, self._retry, peer, attempt), attempt)

    def _retry(self, peer: _Peer, attempt: int) -> None:
        self._retries.pop(peer.pid, None)
        waiting = self._backlog.get(peer.pid)
        if not waiting:
            self._backlog.pop(peer.pid, None)
            return
        sock = self._socket_for_sending()
        while waiting:
            outcome = self._send(sock, peer, waiting[0])
            if outcome == "full":
                self._schedule(peer, attempt + 1)
                return
            if outcome == "gone":
                self._backlog.pop(peer.pid, None)
                self._peers = None
                return
            waiting.popleft()
        self._backlog.pop(peer.pid, None)
