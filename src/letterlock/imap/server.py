"""The asyncio IMAP server: listeners (STARTTLS on one port, implicit TLS on another),
command framing with literals, limits, autologout timers, and the command loop that
checks state in one place and dispatches to the handlers.

Limits (from :class:`letterlock.config.ImapConfig`): a command line longer than
``max_line_bytes`` is answered BAD and discarded; a literal above
``max_literal_bytes`` is refused (TOOBIG) without buffering it; the whole of one
command is bounded by ``max_literal_bytes`` plus ``max_line_bytes`` per line.

Before login (imap/admission.py): connections not yet logged in are capped per client
address and per process, and ``login_timeout_s`` is a deadline from connecting to a
successful login (not reset by commands: NOOP or a slow AUTHENTICATE keeps no one
in).

Shutdown (:meth:`ImapServer.close`) ends every connection with ``* BYE`` (RFC 9051
7.1.5): at once where it is the client's turn (between commands, in IDLE, while it
sends a literal or answers a challenge), after the command in progress otherwise.
Each step has a deadline, so a client that stops reading cannot hold the server up.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from letterlock.config import ImapConfig
from letterlock.errors import LetterlockError
from letterlock.imap import tls as tls_mod
from letterlock.imap.admission import Admission, trusted_networks
from letterlock.imap.commands import HANDLERS, NO_EXPUNGE_DURING, updates
from letterlock.imap.commands.idle import push_updates
from letterlock.imap.commands.mailboxes import deselect
from letterlock.imap.commands.notify import read_between_commands
from letterlock.imap.context import Context, Output, Services
from letterlock.imap.heap import HeapTrimmer, glibc_malloc_trim
from letterlock.imap.parsing import ParseError, parse_command
from letterlock.imap.parsing import commands as c
from letterlock.imap.parsing.framing import (
    OUT_OF_RANGE,
    normalise_literal_line,
    strip_line_end,
    trailing_literal,
)
from letterlock.imap.reply import Reply, bad, no, ok
from letterlock.imap.selected import RecentClaims
from letterlock.imap.state import State, refusal
from letterlock.services.accounts.accounts import AccountService
from letterlock.services.mail.mailbox import MailboxService
from letterlock.services.operations.log_events import LogEvent, bind, event, new_session_id

log = logging.getLogger(__name__)

MAX_CONCURRENT_LISTINGS = 4
"""Whole-mailbox listings running at once, server-wide (bounds their transient memory)."""
MAX_LINES_PER_COMMAND = 1000
"""Literals per command (each starts a new line); bounds framing work per command."""
COMMAND_GRACE_S = 5.0
"""At shutdown, how long a command in progress may run on before it is cut short."""
BYE_TIMEOUT_S = 2.0
"""At shutdown, how long the BYE (and any response before it) may take to reach a
client; one that does not read by then is disconnected without it."""
BYE = b"BYE Server shutting down"
TOO_MANY = b"* BYE Too many connections\r\n"


class LineTooLong(Exception):
    pass


class ServerStopping(ConnectionError):
    """The server is shutting down: the connection ends with BYE instead of reading
    on (a ConnectionError, so that command handlers let it through)."""


@dataclass(frozen=True)
class Refusal:
    """A command refused while being framed (before parsing)."""

    tag: bytes
    reply: Reply


class ImapServer:
    def __init__(self, accounts: AccountService, mailboxes: MailboxService,
                 config: ImapConfig, ssl_context: ssl.SSLContext | None) -> None:
        self._services = Services(accounts, mailboxes, config,
                                  asyncio.Semaphore(MAX_CONCURRENT_LISTINGS), RecentClaims())
        self._config = config
        self._ssl = ssl_context
        self._heap = HeapTrimmer(glibc_malloc_trim())
        self._servers: list[asyncio.Server] = []
        self._connections: set[Connection] = set()
        self._closing = False
        self._admission = Admission(config.max_unauthenticated_per_address,
                                    config.max_unauthenticated,
                                    trusted_networks(config.trusted_networks))
        self.port: int | None = None
        """The bound STARTTLS/plain port, once started."""
        self.tls_port: int | None = None
        """The bound implicit-TLS port, once started (None without a TLS context)."""

    async def start(self, host: str, port: int, tls_port: int | None = None, *,
                    reuse_port: bool = False) -> None:
        """Listen on ``port`` (STARTTLS offered when a TLS context was given) and, with
        a TLS context, on ``tls_port`` with implicit TLS. Port 0 picks a free port.
        ``reuse_port``: share the ports with the other IMAP processes of this server
        (SO_REUSEPORT; see letterlock/workers.py)."""
        limit = self._config.max_line_bytes
        plain = await asyncio.start_server(
            lambda r, w: self._accept(r, w, tls=False), host, port, limit=limit,
            reuse_port=reuse_port or None)
        self._servers.append(plain)
        self.port = plain.sockets[0].getsockname()[1]
        if self._ssl is not None and tls_port is not None:
            # Our own TLS layer, not asyncio's (ssl=...): see imap/tls.py for why.
            secure = await asyncio.get_running_loop().create_server(
                tls_mod.stream_factory(self._ssl, limit,
                                       lambda r, w: self._accept(r, w, tls=True)),
                host, tls_port, reuse_port=reuse_port or None)
            self._servers.append(secure)
            self.tls_port = secure.sockets[0].getsockname()[1]

    async def close(self) -> int:
        """Stop listening and end every connection with BYE: at once where the client
        has the turn, after its command otherwise (cut short after COMMAND_GRACE_S).
        Returns how many connections were ended."""
        self._closing = True
        for server in self._servers:
            server.close()
        connections = list(self._connections)
        for conn in connections:
            conn.stop()
        tasks = {conn.task for conn in connections if conn.task is not None}
        if tasks:
            _, busy = await asyncio.wait(tasks, timeout=COMMAND_GRACE_S)
            for task in busy:
                task.cancel()  # Connection.run says BYE all the same
            if busy:
                await asyncio.wait(busy, timeout=BYE_TIMEOUT_S + 1)
        for server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 5)
        self._servers.clear()
        self._heap.close()
        return len(connections)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *,
                      tls: bool) -> None:
        if self._closing:
            # A TLS handshake that ended after close(): BYE is a greeting too.
            writer.write(b"* " + BYE + b"\r\n")
            writer.close()
            return
        peer = writer.get_extra_info("peername")
        ip = str(peer[0]) if isinstance(peer, tuple) and peer else ""
        bind(s=new_session_id(), proto="imaps" if tls else "imap")
        over = self._admission.admit(ip)
        if over is not None:
            event(LogEvent.CLIENT_REFUSED, ip=ip, limit=over)
            writer.write(TOO_MANY)
            with contextlib.suppress(Exception):
                writer.close()
            return
        conn = Connection(self._services, reader, writer, tls=tls, ssl_context=self._ssl,
                          heap=self._heap, on_login=lambda: self._admission.release(ip))
        conn.task = asyncio.current_task()
        self._connections.add(conn)
        event(LogEvent.IMAP_CONNECTED, ip=ip)
        try:
            await conn.run()
        finally:
            if conn.before_login:
                self._admission.release(ip)
            event(LogEvent.IMAP_DISCONNECTED, ip=ip)
            self._connections.discard(conn)
            self._heap.note()


def _is_loopback(writer: asyncio.StreamWriter) -> bool:
    peer = writer.get_extra_info("peername")
    if not peer:
        return False
    try:
        return ipaddress.ip_address(peer[0]).is_loopback
    except ValueError:
        return False


class Connection:
    __slots__ = ("_awaiting_client", "_config", "_heap", "_login_deadline", "_mid_command",
                 "_on_login", "_plain_writer", "_ssl", "_stopping", "before_login", "ctx",
                 "reader", "task", "writer")

    def __init__(self, services: Services, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, *, tls: bool,
                 ssl_context: ssl.SSLContext | None, heap: HeapTrimmer,
                 on_login: Callable[[], None] = lambda: None) -> None:
        self.reader = reader
        self.writer = writer
        self.task: asyncio.Task[None] | None = None
        self._plain_writer: asyncio.StreamWriter | None = None
        """After STARTTLS, the writer of the connection in the clear: kept, because
        dropping it would close the transport TLS runs on (StreamWriter.__del__)."""
        self._config = services.config
        self._ssl = ssl_context
        self._heap = heap
        """Told after every command: a burst of them ends with a malloc_trim."""
        self._stopping = False
        self.before_login = True
        """Not logged in yet: held to the login deadline (and counted by Admission)."""
        self._on_login = on_login
        self._login_deadline = (asyncio.get_running_loop().time()
                                + services.config.login_timeout_s)
        self._awaiting_client = 0
        self._mid_command = False
        """The first line of a command has been read, not yet the whole command (NOTIFY
        updates wait until it has been answered)."""
        """Reads of client input under way: while one is, the task may be cancelled
        without cutting a response short."""
        self.ctx = Context(services, Output(writer), tls=tls, loopback=_is_loopback(writer),
                           can_starttls=ssl_context is not None,
                           read_line=self._read_reply_line)

    def stop(self) -> None:
        """Server shutdown: end with BYE now if the client has the turn, else once the
        command in progress is answered (see run)."""
        self._stopping = True
        if self._awaiting_client and self.task is not None:
            self.task.cancel()

    @contextlib.contextmanager
    def _client_turn(self) -> Iterator[None]:
        """Around a wait for client input; refuses to start one once stopping."""
        if self._stopping:
            raise ServerStopping()
        self._awaiting_client += 1
        try:
            yield
        finally:
            self._awaiting_client -= 1

    async def _read_reply_line(self) -> bytes | None:
        """A line a handler waits for (an AUTHENTICATE response, IDLE's DONE)."""
        with self._client_turn():
            return await self._read_line()

    async def _next_command(self, timeout: float) -> bytes | Refusal | None:
        with self._client_turn():
            async with asyncio.timeout(timeout):
                if self.ctx.notifier is not None:
                    return await read_between_commands(self.ctx, self._read_command(),
                                                       lambda: self._mid_command)
                return await self._read_command()

    async def _say_bye(self, text: bytes = BYE) -> None:
        """``* BYE`` after whatever is still buffered; a client that does not take it
        within BYE_TIMEOUT_S is disconnected."""
        if self._plain_writer is self.writer:  # in a STARTTLS handshake: no clear text
            self.writer.transport.abort()
            return
        try:
            async with asyncio.timeout(BYE_TIMEOUT_S):
                self.ctx.out.untagged(text)
                await self.ctx.out.flush()
        except TimeoutError:
            self.writer.transport.abort()
        except (ConnectionError, ssl.SSLError, OSError):
            pass

    # -- framing ---------------------------------------------------------------------
    async def _read_line(self) -> bytes | None:
        """One line including its line break; None at end of input. Raises
        LineTooLong after discarding the rest of an over-long line."""
        too_long = False
        while True:
            try:
                line = await self.reader.readuntil(b"\n")
            except asyncio.IncompleteReadError:
                return None
            except asyncio.LimitOverrunError as exc:
                too_long = True
                await self.reader.readexactly(max(1, exc.consumed))
                continue
            if too_long:
                raise LineTooLong()
            return line

    async def _discard(self, size: int) -> None:
        while size > 0:
            chunk = await self.reader.read(min(size, 65536))
            if not chunk:
                raise ConnectionResetError()
            size -= len(chunk)

    async def _read_command(self) -> bytes | Refusal | None:
        line = await self._read_line()
        if line is None:
            return None
        self._mid_command = True
        try:
            return await self._read_command_rest(line)
        finally:
            self._mid_command = False

    async def _read_command_rest(self, line: bytes) -> bytes | Refusal | None:
        parts: list[bytes] = []
        total = 0
        budget = self._config.max_literal_bytes
        for _ in range(MAX_LINES_PER_COMMAND):
            announced = trailing_literal(line)
            if announced is None:
                parts.append(strip_line_end(line))
                return b"".join(parts)
            tag = (parts[0] if parts else line).split(b" ", 1)[0]
            total += announced.size
            if total > budget:
                if announced.size == OUT_OF_RANGE and not announced.synchronizing:
                    # No literal is that long: what follows can be neither skipped
                    # nor read as commands (it is the client's literal data).
                    self.ctx.out.write(bad("Literal size out of range").encode(
                        tag.decode("ascii", "replace")))
                    self.ctx.out.untagged(b"BYE Cannot find the end of that literal")
                    await self.ctx.out.flush()
                    return None
                if not announced.synchronizing:
                    await self._discard(announced.size)
                    await self._skip_rest_of_command()
                return Refusal(tag, no("Literal too large", "TOOBIG"))
            parts.append(normalise_literal_line(line))
            if announced.synchronizing:
                self.writer.write(b"+ Ready for literal data\r\n")
                await self.writer.drain()
            parts.append(await self.reader.readexactly(announced.size))
            next_line = await self._read_line()
            if next_line is None:
                return None
            line = next_line
        raise LineTooLong()

    async def _skip_rest_of_command(self) -> None:
        while True:
            line = await self._read_line()
            if line is None:
                return
            announced = trailing_literal(line)
            if announced is None:
                return
            if not announced.synchronizing:
                await self._discard(announced.size)
            else:
                return

    # -- the command loop ------------------------------------------------------------
    async def run(self) -> None:
        ctx = self.ctx
        try:
            ctx.out.untagged(b"OK [CAPABILITY " + " ".join(ctx.capabilities()).encode()
                             + b"] letterlock IMAP4rev2 server ready")
            await ctx.out.flush()
            try:
                # The login deadline covers everything before a login (commands,
                # AUTHENTICATE exchanges, the STARTTLS handshake) and is lifted by it.
                async with asyncio.timeout_at(self._login_deadline) as login_limit:
                    await self._commands(login_limit)
            except TimeoutError:
                await self._say_bye(b"BYE Autologout; not logged in in time")
        except ServerStopping:
            await self._say_bye()
        except asyncio.CancelledError:
            # Only ImapServer.close cancels a connection: the server is stopping.
            if self.task is not None:
                self.task.uncancel()
            await self._say_bye()
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError, OSError):
            pass
        finally:
            deselect(ctx)
            if ctx.notifier is not None:
                ctx.notifier.close()
                ctx.notifier = None
            ctx.user = None
            with contextlib.suppress(Exception):
                self.writer.close()

    async def _commands(self, login_limit: asyncio.Timeout) -> None:
        ctx = self.ctx
        while ctx.state is not State.LOGOUT:
            try:
                # Before login the (shorter) login deadline around this governs.
                received = await self._next_command(self._config.idle_timeout_s)
            except TimeoutError:
                ctx.out.untagged(b"BYE Autologout; idle for too long")
                await ctx.out.flush()
                break
            except LineTooLong:
                ctx.out.untagged(b"BAD Command line too long")
                await ctx.out.flush()
                continue
            if received is None:
                break
            if isinstance(received, Refusal):
                ctx.out.write(received.reply.encode(
                    received.tag.decode("ascii", "replace")))
                await ctx.out.flush()
                continue
            self._heap.note()  # also as IDLE starts: the last act of a busy client
            await self._execute(received)
            if self.before_login and ctx.state not in (State.NOT_AUTHENTICATED,
                                                       State.LOGOUT):
                self.before_login = False
                login_limit.reschedule(None)
                self._on_login()
            await ctx.out.flush()
            self._heap.note()

    async def _execute(self, data: bytes) -> None:
        ctx = self.ctx
        try:
            command = parse_command(data)
        except ParseError as exc:
            reply = bad(exc.message, exc.code)
            if exc.tag is None:
                ctx.out.write(b"* " + reply.encode("*")[2:])
            else:
                ctx.out.write(reply.encode(exc.tag))
            return
        why = refusal(command, ctx.state)
        if why is not None:
            ctx.out.write(bad(why).encode(command.tag))
            return
        if isinstance(command, c.StartTls):
            await self._starttls(command)
            return
        handler = HANDLERS[type(command)]
        try:
            reply = await handler(command, ctx)
        except (ConnectionError, asyncio.IncompleteReadError):
            raise
        except Exception:
            log.exception("IMAP %s failed", command.name)
            reply = no(f"{command.name} failed: internal error", "SERVERBUG")
        if ctx.state is State.SELECTED and not (
                isinstance(command, NO_EXPUNGE_DURING) and not getattr(command, "uid", False)):
            await push_updates(ctx)
        elif ctx.state is State.SELECTED and ctx.selected is not None and ctx.user:
            # FETCH/STORE/SEARCH: new messages and flag changes may still be told;
            # expunges wait (refresh defers everything while one is pending).
            try:
                lines = await ctx.selected.refresh(
                    ctx.user, ctx.services.mailboxes, allow_expunge=False,
                    condstore=ctx.condstore, qresync=ctx.qresync)
            except LetterlockError:
                lines = []  # e.g. the mailbox was deleted meanwhile; the next command says so
            for line in lines:
                ctx.out.untagged(line)
            if ctx.selected is not None and not ctx.selected.changed.is_set():
                # Caught up (no expunge waits): searches kept current (RFC 5267 4.3)
                # get their ADDTO/REMOVEFROM now, as after any other command. Their
                # numbers are the ones the client knows: no EXPUNGE was sent.
                await updates.push(ctx)
        ctx.out.write(reply.encode(command.tag))

    async def _starttls(self, command: c.StartTls) -> None:
        ctx = self.ctx
        if self._ssl is None or ctx.tls:
            ctx.out.write(bad("TLS is not available" if self._ssl is None
                              else "TLS is already active").encode(command.tag))
            return
        await ctx.out.flush()
        # Anything the client pipelined after STARTTLS arrived in the clear and must not
        # be executed as if it came over TLS (command injection, CVE-2011-0411 style):
        # start_tls leaves it in the old reader, which is not read again.
        with self._client_turn():  # the handshake waits on the client
            self._plain_writer = self.writer
            self.reader, self.writer = await tls_mod.start_tls(
                self.writer, self._ssl, limit=self._config.max_line_bytes,
                before=ok("Begin TLS negotiation now").encode(command.tag))
        ctx.out.writer = self.writer
        ctx.tls = True
