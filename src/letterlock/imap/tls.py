"""Server-side TLS for asyncio streams that keeps an idle connection small.

asyncio's own TLS (``asyncio.sslproto``, Python 3.11) costs an idle IMAPS connection
about 264 KiB where a plain one costs 6-14: each connection gets a zero-filled
receive buffer of 256 KiB for its whole life. Its two ``ssl.MemoryBIO`` (ciphertext in
and out) also keep, for the connection's life, the largest amount they ever held at
once (OpenSSL's memory BIO never shrinks), and asyncio hands them whole socket reads
(up to 256 KiB) and whole writes (a FETCH response of megabytes).

Here a connection is a :class:`TlsProtocol` on the socket transport, which gives the
application protocol (an ``asyncio.StreamReaderProtocol``) a :class:`TlsTransport`.
It has no receive buffer of its own (the socket transport's read hands over a fresh
``bytes``), and it moves data through the engine in pieces of at most ``PIECE`` bytes,
emptying the BIO after each, so neither BIO ever holds more than about one piece.
With OpenSSL's record buffers released between records (CPython sets
SSL_MODE_RELEASE_BUFFERS on every context), an idle TLS connection keeps the SSL
object (~14 KiB in OpenSSL 3.0, most of it allocated by SSL_new) and a few small
Python objects.

Outgoing data is encrypted only as fast as the socket takes it: while the socket
transport's buffer is over its high-water mark, what the application wrote waits as
plaintext (a view of the application's own bytes, no copy), and the application is
paused (``drain``). Encrypting a large response at once would copy all of it, as
ciphertext, into the socket transport's buffer of a slow reader.

Closing sends close_notify, after whatever is still waiting, and closes the socket
without waiting for the peer's (RFC 8446 6.1 lets the closer go). Only the server
side is implemented.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import ssl
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

PIECE = 4096
"""Bytes moved through the TLS engine at once, each way: outgoing data becomes records
of this much plaintext, incoming ciphertext is fed in pieces this big. Bounds what
each MemoryBIO ever holds; at 4 KiB the engine still encrypts over 1 GB/s, and each
record costs 22 bytes (0.5%)."""
BATCH_BYTES = 16384
"""Ciphertext handed to the socket transport at once when a large write is sent (one
system call per batch, not per record)."""
READ_BYTES = 16384
"""Plaintext taken from the engine per read (one TLS record carries at most 16 KiB)."""
HANDSHAKE_TIMEOUT_S = 60.0
"""A client that has not finished the handshake by then is disconnected (asyncio's
default for its own TLS)."""
CLOSE_TIMEOUT_S = 30.0
"""A connection closed with data still waiting for the client is aborted if the
client has not taken it by then (asyncio's default for its own TLS shutdown)."""


class _State(enum.Enum):
    HANDSHAKE = "handshake"
    OPEN = "open"
    CLOSED = "closed"


class TlsProtocol(asyncio.Protocol):
    """Server-side TLS on a socket transport, for one connection.

    ``app`` is connected (``connection_made`` with a :class:`TlsTransport`) once the
    handshake completes; ``handshake_done``, when given, is resolved then, or fails
    with the reason the connection ended before. Use as the protocol of a listener
    (implicit TLS) or through :func:`start_tls` (STARTTLS).
    """

    __slots__ = ("_app", "_app_paused", "_app_writes_paused", "_close_pending", "_context",
                 "_done", "_eof", "_error", "_incoming", "_loop", "_outgoing", "_pending",
                 "_raw", "_raw_paused", "_ssl", "_state", "_timer", "_transport", "_unsent",
                 "closing")

    def __init__(self, context: ssl.SSLContext, app: asyncio.Protocol, *,
                 handshake_done: asyncio.Future[None] | None = None,
                 handshake_timeout: float | None = None) -> None:
        self._context = context
        self._app = app
        self._done = handshake_done
        self._loop = asyncio.get_running_loop()
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._ssl = context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        self._state = _State.HANDSHAKE
        self._raw: asyncio.Transport | None = None
        self._transport: TlsTransport | None = None
        self._timer = self._loop.call_later(
            HANDSHAKE_TIMEOUT_S if handshake_timeout is None else handshake_timeout,
            self._handshake_timed_out)
        self._pending = b""
        """Ciphertext received while the application had paused reading."""
        self._unsent: list[memoryview] = []  # (a deque would cost 760 bytes idle)
        """Plaintext written by the application and not encrypted yet: the socket
        transport is full (sent when it drains), or the engine waits for the peer
        (a TLS 1.2 renegotiation; sent after the next input)."""
        self._app_paused = False
        """The application paused reading."""
        self._raw_paused = False
        """The socket transport asked us to stop writing."""
        self._app_writes_paused = False
        """We asked the application to stop writing."""
        self._close_pending = False
        self._eof = False
        self._error: BaseException | None = None
        self.closing = False

    # -- the socket transport's side ---------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._raw = transport

    def data_received(self, data: bytes) -> None:
        if self._pending or (self._app_paused and self._state is _State.OPEN):
            self._pending += data
            self._pause_raw_reading()
            return
        self._consume(memoryview(data))

    def eof_received(self) -> bool:
        self._eof = True
        if not self._pending and not (self._app_paused and self._state is _State.OPEN):
            self._end_of_input()
        # Else once the application has taken what came before (_resume). Either way
        # close() ends the connection, after sending close_notify.
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        was = self._state
        self._state = _State.CLOSED
        self.closing = True
        self._timer.cancel()
        self._pending = b""
        self._unsent.clear()
        error = self._error or exc
        if was is _State.OPEN:
            self._app.connection_lost(error if isinstance(error, Exception) else None)
        elif self._done is not None and not self._done.done():
            self._done.set_exception(ConnectionResetError(
                f"TLS handshake failed: {error}" if error is not None
                else "connection closed during the TLS handshake"))

    def pause_writing(self) -> None:
        self._raw_paused = True
        self._pause_app_writes()

    def resume_writing(self) -> None:
        self._raw_paused = False
        self._send_unsent()

    # -- input -----------------------------------------------------------------------
    def _consume(self, view: memoryview) -> None:
        """Feed ciphertext to the engine a piece at a time, passing plaintext on after
        each piece; what the application has no room for yet waits in _pending."""
        pos = 0
        while pos < len(view) and not self.closing:
            if self._app_paused and self._state is _State.OPEN:
                self._pending = bytes(view[pos:])
                self._pause_raw_reading()
                return
            self._incoming.write(view[pos:pos + PIECE])
            pos += PIECE
            if self._state is _State.HANDSHAKE:
                self._handshake()
            if self._state is _State.OPEN:
                self._read_plaintext()
        if self._eof and not self.closing:
            self._end_of_input()

    def _handshake(self) -> None:
        try:
            self._ssl.do_handshake()
        except ssl.SSLWantReadError:
            self._flush()
            return
        except (ssl.SSLError, OSError, ValueError) as exc:
            self._flush()  # the alert, if any
            self._fail(exc)
            return
        self._flush()
        self._timer.cancel()
        self._state = _State.OPEN
        self._transport = TlsTransport(self)
        self._app.connection_made(self._transport)
        if self._raw_paused:
            self._pause_app_writes()
        if self._done is not None and not self._done.done():
            self._done.set_result(None)

    def _read_plaintext(self) -> None:
        while self._state is _State.OPEN and not self._app_paused:
            try:
                data = self._ssl.read(READ_BYTES)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                data = b""
            except (ssl.SSLError, OSError) as exc:
                self._flush()
                self._fail(exc)
                return
            if not data:  # close_notify: the client is done
                self._end_of_input()
                return
            self._app.data_received(data)
        self._flush()  # the engine may answer by itself (key update, alert)
        if self._unsent:
            self._send_unsent()  # it may have waited for this input

    def _end_of_input(self) -> None:
        """The client closed its side (close_notify or a bare TCP FIN)."""
        # StreamReaderProtocol answers False over TLS (no half-close): close.
        if self._state is _State.OPEN:
            self._app.eof_received()
        self.close()

    # -- the application's side --------------------------------------------------------
    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Encrypt and send ``data`` (in records of at most PIECE bytes) as far as the
        socket takes it; the rest waits, and the application is paused meanwhile."""
        if self.closing or self._state is not _State.OPEN or not data:
            return  # after close, like the socket transport, drop quietly
        # Bytes cannot change while they wait; anything else is copied once.
        self._unsent.append(memoryview(data if isinstance(data, bytes) else bytes(data)))
        self._send_unsent()

    def _send_unsent(self) -> None:
        while (self._unsent and not self._raw_paused and self._state is _State.OPEN
               and self._error is None):
            rest = self._encrypt(self._unsent[0])
            if rest is not None:
                self._unsent[0] = rest
                break  # the socket transport is full, or the engine waits for input
            del self._unsent[0]
        if self._unsent and self._state is _State.OPEN:
            self._pause_app_writes()
            return
        if not self._raw_paused:
            self._resume_app_writes()
        if self._close_pending:
            self._finish_close()

    def _encrypt(self, view: memoryview) -> memoryview | None:
        """Encrypt and send ``view`` until done (None) or until the socket transport
        is full or the engine needs input first (the part not encrypted)."""
        assert self._raw is not None
        batch: list[bytes] = []
        batched = 0
        pos = 0
        try:
            while pos < len(view) and not self._raw_paused:
                self._ssl.write(view[pos:pos + PIECE])
                pos += PIECE
                # The BIO is emptied after every record; the socket transport gets a
                # batch at a time (and may pause us: _raw_paused, at once).
                record = self._outgoing.read()
                batch.append(record)
                batched += len(record)
                if batched >= BATCH_BYTES:
                    self._raw.write(b"".join(batch))
                    batch.clear()
                    batched = 0
        except ssl.SSLWantReadError:
            pass
        except (ssl.SSLError, OSError) as exc:
            self._fail(exc)
            return None
        if batch:
            self._raw.write(b"".join(batch))
        return view[pos:] if pos < len(view) else None

    def _pause_app_writes(self) -> None:
        if self._state is _State.OPEN and not self._app_writes_paused:
            self._app_writes_paused = True
            self._app.pause_writing()

    def _resume_app_writes(self) -> None:
        if self._app_writes_paused and self._state is _State.OPEN:
            self._app_writes_paused = False
            self._app.resume_writing()

    def pause_reading(self) -> None:
        self._app_paused = True
        self._pause_raw_reading()

    def resume_reading(self) -> None:
        if self._app_paused:
            self._app_paused = False
            # Later, as a socket transport would: the reader is in the middle of
            # taking data out of its buffer.
            self._loop.call_soon(self._resume)

    def _resume(self) -> None:
        if self._state is not _State.OPEN or self._app_paused:
            return
        self._read_plaintext()  # what the engine decrypted before the pause
        pending, self._pending = self._pending, b""
        if pending:
            self._consume(memoryview(pending))
        elif self._eof:
            self._end_of_input()
        if not self._app_paused and not self._pending and self._raw is not None:
            self._raw.resume_reading()

    def close(self) -> None:
        """Send what is still waiting, then close_notify, and close the socket."""
        if self.closing:
            return
        self.closing = True
        if self._unsent and self._state is _State.OPEN:
            self._close_pending = True  # _send_unsent finishes it
            self._timer = self._loop.call_later(CLOSE_TIMEOUT_S, self.abort)
            return
        self._finish_close()

    def _finish_close(self) -> None:
        self._close_pending = False
        self._timer.cancel()
        if self._state is _State.OPEN:
            # SSLWantReadError: the peer's close_notify, which is not awaited.
            with contextlib.suppress(ssl.SSLError, OSError):
                self._ssl.unwrap()
            self._flush()
        if self._raw is not None:
            self._raw.close()

    def abort(self) -> None:
        self.closing = True
        if self._raw is not None:
            self._raw.abort()

    def extra_info(self, name: str, default: Any = None) -> Any:
        if name == "sslcontext":
            return self._context
        if name == "ssl_object":
            return self._ssl
        if name == "peercert":
            return self._ssl.getpeercert()
        if name == "cipher":
            return self._ssl.cipher()
        if name == "compression":
            return self._ssl.compression()
        return default if self._raw is None else self._raw.get_extra_info(name, default)

    def app_transport(self) -> TlsTransport:
        """The application's transport (once the handshake is done)."""
        if self._transport is None:
            raise ConnectionResetError("TLS is not established")
        return self._transport

    @property
    def app(self) -> asyncio.Protocol:
        return self._app

    @app.setter
    def app(self, protocol: asyncio.Protocol) -> None:
        self._app = protocol

    def write_buffer_size(self) -> int:
        waiting = sum(len(view) for view in self._unsent)
        return waiting + (0 if self._raw is None else self._raw.get_write_buffer_size())

    @property
    def raw(self) -> asyncio.Transport | None:
        return self._raw

    @property
    def reading(self) -> bool:
        return not self._app_paused and self._state is _State.OPEN

    # -- helpers ---------------------------------------------------------------------
    def _flush(self) -> None:
        if self._outgoing.pending and self._raw is not None:
            self._raw.write(self._outgoing.read())

    def _pause_raw_reading(self) -> None:
        if self._raw is not None and not self.closing:
            self._raw.pause_reading()

    def _fail(self, exc: BaseException) -> None:
        log.debug("TLS connection failed: %s", exc)
        self._error = exc
        self._unsent.clear()
        self.abort()

    def _handshake_timed_out(self) -> None:
        if self._state is _State.HANDSHAKE:
            self._fail(ConnectionAbortedError("TLS handshake timed out"))


class TlsTransport(asyncio.Transport):
    """The application's view of a :class:`TlsProtocol`: plaintext in and out."""

    __slots__ = ("_tls",)

    def __init__(self, tls: TlsProtocol) -> None:
        super().__init__()
        self._tls = tls

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._tls.extra_info(name, default)

    def is_closing(self) -> bool:
        return self._tls.closing

    def close(self) -> None:
        self._tls.close()

    def abort(self) -> None:
        self._tls.abort()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        assert isinstance(protocol, asyncio.Protocol)
        self._tls.app = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._tls.app

    def is_reading(self) -> bool:
        return self._tls.reading

    def pause_reading(self) -> None:
        self._tls.pause_reading()

    def resume_reading(self) -> None:
        self._tls.resume_reading()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._tls.write(data)

    def can_write_eof(self) -> bool:
        return False  # TLS has no half-close

    def write_eof(self) -> None:
        raise NotImplementedError("TLS connections cannot be half-closed")

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None,
                                ) -> None:
        if self._tls.raw is not None:
            self._tls.raw.set_write_buffer_limits(high, low)

    def get_write_buffer_size(self) -> int:
        return self._tls.write_buffer_size()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return (0, 0) if self._tls.raw is None else self._tls.raw.get_write_buffer_limits()


def stream_factory(context: ssl.SSLContext, limit: int,
                   accept: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Any],
                   ) -> Callable[[], TlsProtocol]:
    """A protocol factory for ``loop.create_server`` that serves implicit TLS with
    ``accept(reader, writer)`` called once the handshake is done, as
    ``asyncio.start_server(accept, ..., ssl=context, limit=limit)`` would."""

    def factory() -> TlsProtocol:
        reader = asyncio.StreamReader(limit=limit)
        return TlsProtocol(context, asyncio.StreamReaderProtocol(reader, accept))

    return factory


async def start_tls(writer: asyncio.StreamWriter, context: ssl.SSLContext, *,
                    limit: int, before: bytes = b"",
                    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """STARTTLS, server side: send ``before`` (the command's OK) in the clear, then
    run TLS on the connection of ``writer``. Returns a new reader and writer; what the
    old reader holds or would still receive in the clear is dropped (no command
    pipelined before the handshake can run as if it came over TLS).

    The old writer must stay referenced for as long as the connection is used:
    ``StreamWriter.__del__`` closes its transport, which TLS now runs on.
    """
    loop = asyncio.get_running_loop()
    raw = writer.transport
    assert isinstance(raw, asyncio.Transport)
    raw.pause_reading()  # nothing more reaches the old reader
    if before:
        raw.write(before)
    reader = asyncio.StreamReader(limit=limit)
    done: asyncio.Future[None] = loop.create_future()
    tls = TlsProtocol(context, asyncio.StreamReaderProtocol(reader), handshake_done=done)
    raw.set_protocol(tls)
    tls.connection_made(raw)
    raw.resume_reading()
    await done
    transport = tls.app_transport()
    return reader, asyncio.StreamWriter(transport, tls.app, reader, loop)
