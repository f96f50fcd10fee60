"""The ManageSieve listener (RFC 5804): STARTTLS, AUTHENTICATE PLAIN and the script
commands, each a call to the filter service (services/mail/filters/scripts.py).

Logins are held to the same rules as IMAP: connections not yet logged in are capped
per client address (imap/admission.py, the imap.* caps), must log in within
``imap.login_timeout_s``, and passwords are checked through the accounts service
(fair KDF queue, back-off, one log line per outcome). Passwords cross only TLS or
the loopback interface. Domain errors become NO with a response code
(managesieve/replies.py); malformed input gets NO or BYE with a reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import ssl
from collections.abc import Awaitable, Callable, Iterable

from letterlock.config import ImapConfig, SieveConfig
from letterlock.imap import tls as imap_tls
from letterlock.imap.admission import Admission, trusted_networks
from letterlock.managesieve import commands
from letterlock.managesieve.parsing import Atom, SyntaxProblem, literal_text, response, scan
from letterlock.managesieve.session import SieveSession
from letterlock.services.accounts.accounts import AccountService
from letterlock.services.mail.filters.scripts import FilterService
from letterlock.services.operations.log_events import LogEvent, bind, event, new_session_id

log = logging.getLogger("letterlock.managesieve")

MAX_LINE = 8 * 1024
"""Longest command line outside literals, in bytes."""


class Closing(Exception):
    """End the connection after sending ``line``."""

    def __init__(self, line: bytes) -> None:
        super().__init__(line)
        self.line = line


class ManageSieveServer:
    def __init__(self, accounts: AccountService, filters: FilterService,
                 extensions: Iterable[str], config: SieveConfig, limits: ImapConfig,
                 ssl_context: ssl.SSLContext | None) -> None:
        self._accounts = accounts
        self._filters = filters
        self._extensions = " ".join(sorted(extensions))
        self._config = config
        self._limits = limits
        self._ssl = ssl_context
        self._admission = Admission(limits.max_unauthenticated_per_address,
                                    limits.max_unauthenticated,
                                    trusted_networks(limits.trusted_networks))
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    async def start(self, bind_to: str, port: int) -> None:
        self._server = await asyncio.start_server(self._accept, bind_to, port,
                                                  limit=MAX_LINE)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> int:
        if self._server is not None:
            self._server.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        if self._server is not None:
            await self._server.wait_closed()
        return len(tasks)

    def capabilities(self, *, tls: bool, plaintext_ok: bool) -> bytes:
        """RFC 5804 1.7: the capability lines, then OK."""
        lines = [b'"IMPLEMENTATION" "letterlock"',
                 b'"SASL" "PLAIN"' if tls or plaintext_ok else b'"SASL" ""',
                 b'"SIEVE" "' + self._extensions.encode("ascii") + b'"']
        if self._ssl is not None and not tls:
            lines.append(b'"STARTTLS"')
        lines += [b'"MAXREDIRECTS" "%d"' % self._config.max_redirects,
                  b'"VERSION" "1.0"']
        return b"\r\n".join(lines) + b"\r\n" + response("OK")

    async def _accept(self, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        peer = writer.get_extra_info("peername")
        ip = str(peer[0]) if isinstance(peer, tuple) and peer else ""
        bind(s=new_session_id(), proto="managesieve")
        over = self._admission.admit(ip)
        if over is not None:
            event(LogEvent.CLIENT_REFUSED, ip=ip, limit=over)
            writer.write(response("BYE", "Too many connections", "TRYLATER"))
            writer.close()
            self._tasks.discard(task)
            return
        session = SieveSession(self._accounts, self._filters, ip=ip,
                               loopback=_is_loopback(ip))
        event(LogEvent.MANAGESIEVE_CONNECTED, ip=ip)
        kept: list[asyncio.StreamWriter] = []  # the clear-text writer after STARTTLS
        try:
            writer.write(self.capabilities(tls=False, plaintext_ok=session.loopback))
            await writer.drain()
            while True:
                timeout = (self._limits.idle_timeout_s if session.ref is not None
                           else self._limits.login_timeout_s)
                try:
                    words = await asyncio.wait_for(self._read_command(reader), timeout)
                except TimeoutError:
                    raise Closing(response("BYE", "Timed out", "TRYLATER")) from None
                if words is None:
                    return
                bad = next((w for w in words if isinstance(w, SyntaxProblem)), None)
                if bad is not None or not words or not isinstance(words[0], Atom):
                    writer.write(response("NO", str(bad or "Expected a command name")))
                    await writer.drain()
                    continue
                name = words[0].text.upper()
                if name == "STARTTLS" and self._ssl is not None and not session.tls \
                        and session.ref is None:  # RFC 5804 2.2: before logging in
                    if len(words) != 1:
                        writer.write(response("NO", "STARTTLS takes no arguments"))
                        continue
                    kept.append(writer)
                    reader, writer = await imap_tls.start_tls(
                        writer, self._ssl, limit=MAX_LINE, before=response("OK", "Begin TLS"))
                    session.tls = True
                    writer.write(self.capabilities(tls=True, plaintext_ok=True))
                    await writer.drain()
                    continue
                was_anonymous = session.ref is None
                try:
                    out = await commands.run(session, name, words[1:],
                                             _Io(reader, writer, self._read_command), self)
                except (Closing, ConnectionError, asyncio.IncompleteReadError, TimeoutError):
                    raise
                except Exception:  # a bug: the client gets a reason, the log the trace
                    log.exception("managesieve %s failed", name)
                    out = response("NO", "Internal error", "TRYLATER")
                writer.write(out)
                await writer.drain()
                if was_anonymous and session.ref is not None:
                    self._admission.release(ip)
                elif not was_anonymous and session.ref is None:
                    self._admission.admit(ip)  # UNAUTHENTICATE: counted again
                if session.ended:
                    return
        except Closing as closing:
            with contextlib.suppress(Exception):
                writer.write(closing.line)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            if session.ref is None:
                self._admission.release(ip)
            event(LogEvent.MANAGESIEVE_DISCONNECTED, ip=ip)
            with contextlib.suppress(Exception):
                writer.close()
            del kept
            self._tasks.discard(task)

    async def _read_command(self, reader: asyncio.StreamReader) -> list[object] | None:
        """One command's words (atoms, strings, numbers; literals read in), or None
        at end of input. Raises Closing for input that cannot be followed."""
        words: list[object] = []
        limit = self._config.max_script_bytes * 2 + 4096
        while True:
            try:
                line = await reader.readuntil(b"\n")
            except asyncio.LimitOverrunError:
                raise Closing(response("BYE", "Line too long")) from None
            except asyncio.IncompleteReadError as exc:
                if exc.partial or words:
                    raise Closing(response("BYE", "Incomplete command")) from None
                return None
            try:
                tokens, literal = scan(line.rstrip(b"\r\n"))
            except SyntaxProblem as exc:
                return [exc]  # the bad line is dropped; the client may go on
            words += tokens
            if literal is None:
                return words
            if literal.size > limit:
                raise Closing(response("BYE", f"Literal too large (at most {limit} octets)",
                                       "QUOTA/MAXSIZE"))
            data = await reader.readexactly(literal.size)
            try:
                words.append(literal_text(data))
            except SyntaxProblem as exc:
                words.append(exc)


class _Io:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 read: Callable[[asyncio.StreamReader], Awaitable[list[object] | None]],
                 ) -> None:
        self._reader = reader
        self._writer = writer
        self._read = read

    async def send(self, data: bytes) -> None:
        self._writer.write(data)
        await self._writer.drain()

    async def read(self) -> list[object] | None:
        return await self._read(self._reader)


def _is_loopback(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False


async def start_managesieve(accounts: AccountService, filters: FilterService,
                            extensions: Iterable[str], config: SieveConfig,
                            limits: ImapConfig, ssl_context: ssl.SSLContext | None,
                            bind_to: str) -> ManageSieveServer:
    server = ManageSieveServer(accounts, filters, extensions, config, limits, ssl_context)
    await server.start(bind_to, config.port)
    return server
