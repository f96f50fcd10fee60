"""Sealing incoming mail in helper processes, beside the event loop.

Sealing one message means parsing its summary (envelope, part tree), one X25519 key
agreement and AES-GCM over the content: a few hundred microseconds of work that holds
the interpreter lock. Done in the server process, it takes turns on one core with
the event loop and with the storage threads that flush to disk (each flush waits for
the lock to come back), so a burst of deliveries used one core while the others
idled. A :class:`SealPool` hands this work to ``crypto.seal_processes`` helper
processes (``python -m letterlock.services.mail.sealing FD``) over socket pairs, and the
server process keeps the event loop and the disk.

The helpers get a message and its account's public key, nothing secret: like the
delivery path itself, they can seal but never open. They also make the message's text
posting (services/mail/text_postings.py: what SEARCH BODY/TEXT compare), whose
plaintext the server process seals under the account's posting key.

Requests queued during one turn of the event loop travel together in one frame.
A helper that dies is not an error anyone sees: what it had in hand is sealed in the
server process, and a new helper is started on a later request.

Wire format (integers big-endian), both directions ``u32 length | body``:

- request body: ``u32 count``, then per message ``u32 chunk | 32 public key |
  16 key id | u8 a | a bytes of account id | u32 n | n bytes of message``;
- reply body (one per message, in request order): ``u32 count`` (1), then ``u8 status
  | u32 n | n bytes | u32 m | m bytes | u32 p | p bytes``: status 0 carries the sealed
  message, the sealed summary and the text posting's plaintext (possibly empty),
  status 1 an error's name, its text and nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import struct
import sys
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

from letterlock.crypto import seal
from letterlock.errors import CryptoError
from letterlock.mime import summary as summaries
from letterlock.services.mail import text_index, text_postings
from letterlock.services.operations import logs

log = logging.getLogger("letterlock.sealing")

FRAME_BYTES = 8 * 1024 * 1024
"""Requests are cut into frames of at most about this many message bytes."""
RESTART_DELAY_S = 5.0
"""After a helper dies, requests are sealed in the server process this long."""
STOP_TIMEOUT_S = 5.0
STALL_S = 30.0
"""A helper that has not answered its oldest request for this long is killed (what
it held is then sealed in the server process): a stuck helper must not hold up
delivery."""

_U32 = struct.Struct(">I")
_ITEM = struct.Struct(">I32s16sB")
_REPLY_HEAD = struct.Struct(">BI")


Sealed = tuple[bytes, bytes, bytes]
"""(sealed message, sealed summary, text posting plaintext or b"")."""


def seal_with_summary(raw: bytes, public_key: bytes, key_id: bytes, chunk: int,
                      account_id: str,
                      header_view: text_postings.HeaderView | None = None) -> Sealed:
    """(sealed message, sealed summary, posting) of ``raw`` for the account key
    ``public_key``; the first two under one key agreement, each bound to account
    ``account_id``, a fresh message id and its part (see seal.seal_parts); the third
    is the plaintext of its text posting (text_postings.make, with the front-end's
    ``header_view`` of the header if given), sealed by the caller."""
    summary = summaries.summarize(raw)
    blob, sealed_summary = seal.seal_parts(
        [("body", raw), ("summary", summaries.encode(summary))],
        public_key, key_id, account_id, chunk)
    try:
        posting = text_postings.make(raw, summary.header, summaries.structure_of(summary),
                                     text_index.body_text_of, header_view)
    except Exception as exc:  # an odd message: indexed from its body instead
        log.info("no text posting for a message: %s: %s", type(exc).__name__, exc)
        posting = b""
    return blob, sealed_summary, posting


Item = tuple[bytes, bytes, bytes, int, str]
"""(raw message, public key, key id, chunk size, account id): one request."""


# -- wire format -------------------------------------------------------------------
def encode_request(items: list[Item]) -> bytes:
    """Frame for ``(raw, public key, key id, chunk, account id)`` items."""
    parts = [b"", _U32.pack(len(items))]
    for raw, public_key, key_id, chunk, account_id in items:
        account = account_id.encode("utf-8")
        parts += [_ITEM.pack(chunk, public_key, key_id, len(account)), account,
                  _U32.pack(len(raw)), raw]
    body_len = sum(len(p) for p in parts)
    parts[0] = _U32.pack(body_len)
    return b"".join(parts)


def decode_request(body: bytes) -> list[Item]:
    (count,) = _U32.unpack_from(body)
    pos = _U32.size
    out = []
    view = memoryview(body)
    for _ in range(count):
        chunk, public_key, key_id, a = _ITEM.unpack_from(body, pos)
        pos += _ITEM.size
        account_id = bytes(view[pos : pos + a]).decode("utf-8")
        (n,) = _U32.unpack_from(body, pos + a)
        pos += a + _U32.size
        out.append((bytes(view[pos : pos + n]), public_key, key_id, chunk, account_id))
        pos += n
    return out


def encode_reply(results: list[tuple[int, bytes, bytes, bytes]]) -> bytes:
    parts = [b"", _U32.pack(len(results))]
    for status, first, second, third in results:
        parts += [_REPLY_HEAD.pack(status, len(first)), first, _U32.pack(len(second)),
                  second, _U32.pack(len(third)), third]
    parts[0] = _U32.pack(sum(len(p) for p in parts))
    return b"".join(parts)


def decode_reply(body: bytes) -> list[tuple[int, bytes, bytes, bytes]]:
    (count,) = _U32.unpack_from(body)
    pos = _U32.size
    view = memoryview(body)
    out = []
    for _ in range(count):
        status, n = _REPLY_HEAD.unpack_from(body, pos)
        pos += _REPLY_HEAD.size
        first = bytes(view[pos : pos + n])
        pos += n
        (m,) = _U32.unpack_from(body, pos)
        pos += _U32.size
        second = bytes(view[pos : pos + m])
        pos += m
        (p,) = _U32.unpack_from(body, pos)
        pos += _U32.size
        out.append((status, first, second, bytes(view[pos : pos + p])))
        pos += p
    return out


def _seal_one(raw: bytes, public_key: bytes, key_id: bytes, chunk: int,
              account_id: str, header_view: text_postings.HeaderView | None) -> bytes:
    try:
        sealed = seal_with_summary(raw, public_key, key_id, chunk, account_id, header_view)
    except Exception as exc:  # reported to the requester, who raises it
        return encode_reply([(1, type(exc).__name__.encode(), str(exc).encode(), b"")])
    return encode_reply([(0, *sealed)])


def main(argv: list[str] | None = None) -> int:
    """Helper process: seal what arrives on socket FD until it closes; with VIEW and
    VERSION (text_postings.reference), postings carry that header view."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (1, 3) or not args[0].isdigit():
        print("usage: python -m letterlock.services.mail.sealing FD [VIEW VERSION]",
              file=sys.stderr)
        return 2
    header_view = text_postings.resolve(args[1:])
    # Ctrl-C in a terminal, or a service manager stopping the whole group, reaches
    # this process too; the server decides when helpers stop (it closes the socket,
    # after the work in hand is done), and a server that dies closes it as well.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logs.keep_dependency_warnings_out()  # its stderr is the server's log
    sock = socket.socket(fileno=int(args[0]))
    with sock, sock.makefile("rb", buffering=1 << 20) as incoming:
        while True:
            head = incoming.read(_U32.size)
            if len(head) < _U32.size:
                return 0
            (n,) = _U32.unpack(head)
            body = incoming.read(n)
            if len(body) < n:
                return 0
            # One reply per message, sent as soon as it is sealed: the requests of a
            # frame then reach the disk one by one, overlapping with the sealing of
            # the rest, instead of moving through the server in lock-step.
            for raw, public_key, key_id, chunk, account_id in decode_request(body):
                sock.sendall(_seal_one(raw, public_key, key_id, chunk, account_id,
                                       header_view))


# -- the server side -----------------------------------------------------------------
@dataclass
class _Job:
    raw: bytes
    public_key: bytes
    key_id: bytes
    account_id: str
    future: asyncio.Future[Sealed] = field(repr=False)
    sent_at: float = 0.0


@dataclass
class _Helper:
    process: asyncio.subprocess.Process
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    in_flight: deque[_Job] = field(default_factory=deque)
    task: asyncio.Task[None] | None = None
    watchdog: asyncio.Task[None] | None = None


class SealPool:
    """``processes`` helper processes sealing messages up to ``max_bytes``.

    :meth:`seal` returns None when no helper can take the message (none started yet,
    one restarting, or the message is larger than ``max_bytes``): the caller then
    seals it itself. The first call starts the helpers in the background.
    """

    def __init__(self, processes: int, chunk: int, *, max_bytes: int = 4 * 1024 * 1024,
                 ) -> None:
        self.processes = processes
        self.max_bytes = max_bytes
        self._chunk = chunk
        self._helpers: list[_Helper] = []
        self._queue: list[_Job] = []
        self._flush_scheduled = False
        self._starting: asyncio.Task[None] | None = None
        self._retry_after = 0.0
        self._closed = False
        self.header_view: text_postings.HeaderView | None = None
        """The front-end's header view postings carry (set before the first seal)."""

    @property
    def helper_pids(self) -> list[int]:
        return [h.process.pid for h in self._helpers]

    def seal(self, raw: bytes, public_key: bytes, key_id: bytes,
             account_id: str) -> asyncio.Future[Sealed] | None:
        """A future of (sealed message, sealed summary, posting plaintext), or None
        (seal it yourself)."""
        if self.processes <= 0 or self._closed or len(raw) > self.max_bytes:
            return None
        if len(self._helpers) < self.processes:
            self._start_soon()
            if not self._helpers:
                return None
        loop = asyncio.get_running_loop()
        job = _Job(raw, public_key, key_id, account_id, loop.create_future())
        self._queue.append(job)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        return job.future

    async def start(self) -> None:
        """Start the helpers now (and wait until they run)."""
        if self.processes <= 0 or self._closed:
            return
        self._start_soon(now=True)
        if self._starting is not None:
            await asyncio.shield(self._starting)

    def _start_soon(self, *, now: bool = False) -> None:
        if self._starting is not None and not self._starting.done():
            return
        if not now and time.monotonic() < self._retry_after:
            return
        self._starting = asyncio.get_running_loop().create_task(self._start_missing())

    async def _start_missing(self) -> None:
        while len(self._helpers) < self.processes and not self._closed:
            try:
                helper = await self._spawn()
            except OSError as exc:
                log.error("cannot start a sealing helper (sealing in-process): %s", exc)
                self._retry_after = time.monotonic() + RESTART_DELAY_S
                return
            if self._closed:
                await self._stop(helper)
                return
            loop = asyncio.get_running_loop()
            helper.task = loop.create_task(self._read_replies(helper))
            helper.watchdog = loop.create_task(self._watch(helper))
            self._helpers.append(helper)

    async def _spawn(self) -> _Helper:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "letterlock.services.mail.sealing", str(theirs.fileno()),
                *(text_postings.reference(self.header_view) if self.header_view else ()),
                pass_fds=(theirs.fileno(),), stdin=asyncio.subprocess.DEVNULL)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        reader, writer = await asyncio.open_unix_connection(sock=ours, limit=1 << 20)
        return _Helper(process, reader, writer)

    def _flush(self) -> None:
        self._flush_scheduled = False
        queue, self._queue = self._queue, []
        helpers = [h for h in self._helpers if h.task is not None and not h.task.done()]
        if not helpers:
            self._seal_here(queue)
            return
        for frame in _frames(queue):
            helper = min(helpers, key=lambda h: len(h.in_flight))
            helper.writer.write(encode_request(
                [(j.raw, j.public_key, j.key_id, self._chunk, j.account_id)
                 for j in frame]))
            now = time.monotonic()
            for job in frame:
                job.sent_at = now
            helper.in_flight.extend(frame)

    async def _read_replies(self, helper: _Helper) -> None:
        try:
            while True:
                head = await helper.reader.readexactly(_U32.size)
                (n,) = _U32.unpack(head)
                [(status, first, second, third)] = decode_reply(
                    await helper.reader.readexactly(n))
                job = helper.in_flight.popleft()
                if job.future.done():
                    continue
                if status == 0:
                    job.future.set_result((first, second, third))
                else:
                    job.future.set_exception(CryptoError(
                        f"sealing failed: {first.decode()}: {second.decode()}"))
        except (asyncio.IncompleteReadError, ConnectionError, IndexError, ValueError,
                struct.error) as exc:
            if not self._closed:
                log.warning("sealing helper %d stopped (%s); sealing in-process for now",
                            helper.process.pid, exc)
        finally:
            if helper in self._helpers:
                self._helpers.remove(helper)
            self._retry_after = time.monotonic() + RESTART_DELAY_S
            orphans = list(helper.in_flight)
            helper.in_flight.clear()
            self._seal_here(orphans)
            if not self._closed:
                await self._stop(helper)

    async def _watch(self, helper: _Helper) -> None:
        while helper.task is not None and not helper.task.done():
            await asyncio.sleep(min(STALL_S / 4, 5.0))
            if helper.in_flight and time.monotonic() - helper.in_flight[0].sent_at > STALL_S:
                log.error("sealing helper %d has not answered for %.0f s: stopping it",
                          helper.process.pid, STALL_S)
                with contextlib.suppress(ProcessLookupError):
                    helper.process.kill()
                return

    def _seal_here(self, jobs: list[_Job]) -> None:
        for job in jobs:
            if job.future.done():
                continue
            try:
                job.future.set_result(seal_with_summary(job.raw, job.public_key,
                                                        job.key_id, self._chunk,
                                                        job.account_id, self.header_view))
            except Exception as exc:
                job.future.set_exception(exc)

    async def _stop(self, helper: _Helper) -> None:
        helper.writer.close()
        with contextlib.suppress(ConnectionError):
            await helper.writer.wait_closed()
        try:
            await asyncio.wait_for(helper.process.wait(), STOP_TIMEOUT_S)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                helper.process.kill()
            await helper.process.wait()

    async def close(self) -> None:
        """Stop the helpers; what they still hold is sealed here first."""
        self._closed = True
        if self._starting is not None:
            with contextlib.suppress(Exception):
                await self._starting
        helpers, self._helpers = self._helpers, []
        for helper in helpers:
            if helper.watchdog is not None:
                helper.watchdog.cancel()
            if helper.task is not None:
                helper.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await helper.task
            self._seal_here(list(helper.in_flight))
            await self._stop(helper)
        self._seal_here(self._queue)
        self._queue = []


def _frames(jobs: list[_Job]) -> Iterator[list[_Job]]:
    """``jobs`` cut into frames of at most about FRAME_BYTES of messages (a larger
    message travels alone)."""
    frame: list[_Job] = []
    size = 0
    for job in jobs:
        if frame and size + len(job.raw) > FRAME_BYTES:
            yield frame
            frame, size = [], 0
        frame.append(job)
        size += len(job.raw)
    if frame:
        yield frame


def default_processes(configured: int, event_loops: int = 1) -> int:
    """``crypto.seal_processes`` resolved: -1 means one per CPU that the server's
    ``event_loops`` processes leave free (at most four), among the CPUs this process
    may run on (its affinity)."""
    if configured >= 0:
        return configured
    return max(0, min(4, len(os.sched_getaffinity(0)) - max(1, event_loops)))


if __name__ == "__main__":
    sys.exit(main())
