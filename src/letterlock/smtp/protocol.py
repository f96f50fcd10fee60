"""The SMTP and LMTP wire protocol: aiosmtpd's connection handling (reading
commands, STARTTLS, the AUTH exchange) extended with what a mail server needs and
aiosmtpd 1.4 lacks or gets wrong:

- typed handler hooks (:class:`~letterlock.smtp.hooks.SmtpHandler`) instead of untyped
  ``handle_*`` methods, and aiosmtpd set up without its per-connection introspection
  (:mod:`letterlock.smtp.aiosmtpd_base`);
- PIPELINING and ENHANCEDSTATUSCODES advertised, an enhanced code on every reply;
- the null reverse-path ``MAIL FROM:<>`` (bounces) accepted, MAIL/RCPT parameters
  parsed by :mod:`letterlock.smtp.parse`;
- DATA read in large blocks (:mod:`letterlock.smtp.data_reader`), with the size limit
  enforced while reading, lines of any length stored as sent, bare CR/LF normalised so
  smuggling sequences are inert, and no end of data but ``<CRLF>.<CRLF>``;
- per-client limits (connections, errors, AUTH failures) and an idle timeout that
  keeps running during DATA;
- LMTP (RFC 2033) with one reply per accepted recipient after DATA.

The protocol decides nothing about mail: it calls the handler and sends its replies.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from aiosmtpd.smtp import TLSSetupException

from letterlock.services.accounts.accounts import Session
from letterlock.services.operations.log_events import LogEvent, bind, event, new_session_id
from letterlock.smtp import replies
from letterlock.smtp.aiosmtpd_base import NoHooks
from letterlock.smtp.auth import SmtpAuth
from letterlock.smtp.data_reader import DataOverBudget, DataTooBig, read_data
from letterlock.smtp.hooks import Accepted, Envelope, ListenerKind, PeerInfo, SmtpHandler
from letterlock.smtp.limits import ClientLimits
from letterlock.smtp.parse import (
    MailParams,
    PathError,
    decode_data,
    parse_mail_params,
    parse_path_arg,
)
from letterlock.smtp.replies import Reply

log = logging.getLogger("letterlock.smtp")

_PIPELINED = frozenset({"EHLO", "HELO", "LHLO", "MAIL", "RCPT", "RSET", "NOOP"})
"""Commands whose replies may wait for the next write (RFC 2920 3.1: the server
flushes before it would wait for more input)."""
_COMMAND_SIZE_LIMITS = {"MAIL": 1024, "RCPT": 1024, "AUTH": 12288}
"""Longest accepted line per command after EHLO (parameters make them longer);
others get ``command_size_limit`` (512, RFC 5321 4.5.3.1.4)."""
BOGUS_LIMIT = 5
"""Unrecognised commands in one session before it is closed."""

_ERROR_DIGITS = frozenset(b"45")
READ_LIMIT = 64 * 1024
"""StreamReader buffer limit: the longest command line read before it is refused, and
the block size DATA is read in."""


@dataclass
class _Transaction:
    sender: str
    params: MailParams
    recipients: list[Accepted]

    def envelope(self) -> Envelope:
        return Envelope(self.sender, tuple(self.recipients), self.params)


class SmtpListener(SmtpAuth):
    """One SMTP connection (aiosmtpd makes one protocol object per connection)."""

    line_length_limit = READ_LIMIT
    _paused: bool  # asyncio's flow control: the transport's write buffer is full

    def __init__(self, handler: SmtpHandler, *, kind: ListenerKind, limits: ClientLimits,
                 hostname: str, max_message_bytes: int,
                 tls_context: ssl.SSLContext | None, auth: bool,
                 on_close: Callable[[SmtpListener], None] | None = None,
                 local: bool = False) -> None:
        self._lean_init(handler=NoHooks(), max_message_bytes=max_message_bytes,
                        hostname=hostname, tls_context=tls_context, auth=auth,
                        timeout=limits.settings.timeout_s)
        self._handler = handler
        self._kind = kind
        self._limits = limits
        self._offer_auth = auth
        self._txn: _Transaction | None = None
        self._identity: Session | None = None
        self._ip = ""
        self._port = 0
        self._counted = False
        self._refused = False
        self._trusted = False
        """The peer is in smtp.trusted_networks and this is LMTP or submission."""
        self._local = local
        """Connected over a Unix socket: the peer is a process on this machine, with
        no address."""
        self._errors = 0
        self._auth_failures = 0
        self._closing = False
        self._in_ehlo = False
        self._on_close = on_close
        self._out: list[bytes] = []
        """Replies not yet written (see :meth:`_handle_client`)."""
        self._buffering = False
        self._peer: PeerInfo | None = None
        self._deadline = 0.0
        self._quit = False
        self._in_data = False
        """Between the 354 and the reply to the message: never cut off by shutdown."""
        self._shutting_down = False
        self._session = ""
        """The session id of the log lines, once the session started."""
        self._command = ""
        """The command being answered (for the log line of a refusal)."""

    # -- connection lifetime --------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        first = self.transport is None
        super().connection_made(transport)
        self._identity = None
        self._txn = None
        if first:
            if self._local:
                self._ip, self._port = "", 0
                trusted = self._limits.local_trusted()
            else:
                peer = transport.get_extra_info("peername") or ("", 0)
                self._ip, self._port = str(peer[0]), int(peer[1])
                trusted = self._limits.trusted(self._ip)
            # The error budget guards the MX (and LMTP from untrusted peers): a front
            # MTA's unknown recipients or a shared address's broken program must not
            # stop mail that is handed over or sent by authenticated users.
            spared = self._kind is ListenerKind.SUBMISSION or (
                self._kind is ListenerKind.LMTP and trusted)
            self._counted = self._limits.connect(self._ip, error_budget=not spared)
            self._refused = not self._counted
            self._trusted = self._kind is not ListenerKind.MX and trusted

    def connection_lost(self, error: Exception | None) -> None:
        if self._session:
            event(LogEvent.SMTP_DISCONNECTED, ip=self._ip, proto=self._kind.value,
                  s=self._session)
            self._session = ""
        if self._counted:
            self._counted = False
            self._limits.disconnect(self._ip)
        if self._on_close is not None:
            self._on_close(self)
            self._on_close = None
        super().connection_lost(error)

    def _reset_timeout(self, duration: float | None = None) -> None:
        # Called for every command and DATA block: move a deadline instead of
        # cancelling and re-arming a timer each time; one timer per connection
        # re-arms itself until the deadline really passes.
        self._deadline = self.loop.time() + (duration or self._timeout_duration)
        if self._timeout_handle is None:
            self._timeout_handle = self.loop.call_at(self._deadline, self._check_timeout)

    def _check_timeout(self) -> None:
        if self.transport is None:
            return
        if self.loop.time() >= self._deadline:
            log.info("%s: idle timeout", self._ip)
            self.transport.close()
        else:
            self._timeout_handle = self.loop.call_at(self._deadline, self._check_timeout)

    async def _handle_client(self) -> None:
        """The command loop (aiosmtpd's, reduced to what these listeners need): one
        line, one command. Replies to the commands a client may pipeline (RFC 2920)
        are collected and written together when the client has sent nothing more, so
        a pipelined MAIL/RCPT/DATA group or an EHLO costs one send, not one each."""
        self._session = new_session_id()
        bind(s=self._session, proto=self._kind.value)
        event(LogEvent.SMTP_CONNECTED, ip=self._ip, port=self._port)
        if self._refused:
            event(LogEvent.CLIENT_REFUSED, ip=self._ip, limit="connections")
            await self._close_with(replies.TOO_MANY_CONNECTIONS)
            return
        await self._emit(f"220 {self.hostname} {self.__ident__}".encode())
        reader = self._reader
        buffered = reader._buffer  # type: ignore[attr-defined]
        bogus_budget = BOGUS_LIMIT
        while self.transport is not None and not self._quit:
            try:
                if self._out and b"\n" not in buffered:
                    await self._flush()
                try:
                    line: bytes = await reader.readuntil(b"\n")
                except asyncio.LimitOverrunError as error:
                    await self._skip_long_line(error.consumed)
                    await self.push("500 Command line too long")
                    continue
                line = line.rstrip(b"\r\n")
                if not line:
                    await self.push("500 Error: bad syntax")
                    continue
                command_bytes, _, arg_bytes = line.partition(b" ")
                try:
                    command = command_bytes.upper().decode("ascii")
                except UnicodeDecodeError:
                    await self.push("500 Error: bad syntax")
                    continue
                arg = (str(arg_bytes.strip(), "utf-8", "surrogateescape")
                       if arg_bytes else None)
                assert self.session is not None
                limit = (_COMMAND_SIZE_LIMITS.get(command, self.command_size_limit)
                         if self.session.extended_smtp else self.command_size_limit)
                if len(line) > limit:
                    await self.push("500 Command line too long")
                    continue
                if not self._tls_handshake_okay and command != "QUIT":
                    await self.push("554 Command refused due to lack of security")
                    continue
                method = self._smtp_methods.get(command)
                if method is None:
                    bogus_budget -= 1
                    if bogus_budget < 1:
                        await self.push("502 5.5.1 Too many unrecognized commands, goodbye.")
                        await self._close_with(None)
                        continue
                    await self.push(f'500 Error: command "{command}" not recognized')
                    continue
                # A front MTA on a trusted network and an authenticated user are
                # not metered (the MX listener always is: see limits.py).
                if not (self._trusted or self._identity is not None) \
                        and not self._limits.command(self._ip):
                    event(LogEvent.CLIENT_REFUSED, ip=self._ip, limit="commands")
                    await self._close_with(replies.TOO_MANY_COMMANDS)
                    return
                self._reset_timeout()
                self._command = command
                self._buffering = command in _PIPELINED
                try:
                    await method(self, arg)
                finally:
                    self._buffering = False
            except asyncio.CancelledError:
                # QUIT, end of file, or the connection was lost.
                self._write_out()
                self._writer.close()
                raise
            except ConnectionResetError:
                self._writer.close()
                raise
            except Exception as error:
                try:
                    status = await self.handle_exception(error)
                except Exception:
                    log.exception("%s: error describing an error", self._ip)
                    status = "500 Error: Cannot describe error"
                if isinstance(error, TLSSetupException):
                    if self.transport is not None:
                        self.transport.close()
                    self.connection_lost(error)
                else:
                    await self.push(status)

    async def _skip_long_line(self, consumed: int) -> None:
        """Discard the rest of an over-long command line."""
        await self._reader.read(consumed)
        while True:
            try:
                await self._reader.readuntil(b"\n")
                return
            except asyncio.LimitOverrunError as more:
                await self._reader.read(more.consumed)

    async def _close_with(self, reply: Reply | None) -> None:
        self._closing = True
        if self.transport is not None and not self.transport.is_closing():
            if reply is not None:
                self._out.append(str(reply).encode() + b"\r\n")
            self._write_out()
        if self.transport is not None:
            self.transport.close()

    async def close_if_idle(self) -> None:
        """Server shutdown: a session with no transaction open is told 421 and closed.
        A message being received or stored gets its reply first (closing then would
        make the client send it again: a duplicate)."""
        self._shutting_down = True
        if self.transport is not None and self._txn is None and not self._in_data:
            await self._close_with(replies.SHUTTING_DOWN)

    # -- replies ----------------------------------------------------------------------
    def _write_out(self) -> None:
        if self._out:
            data = b"".join(self._out)
            self._out.clear()
            transport = cast(asyncio.WriteTransport | None, self.transport)
            if transport is not None and not transport.is_closing():
                transport.write(data)

    async def _flush(self) -> None:
        self._write_out()
        if self._paused:  # the client is not reading: wait for the buffer to drain
            await self._writer.drain()

    async def push(self, status: Any) -> None:
        if isinstance(status, str):
            if not self._in_ehlo:
                status = replies.with_enhanced_status(status)
            data = replies.printable(status).encode()
        else:
            data = bytes(status)
        await self._emit(data)

    async def reply(self, reply: Reply) -> None:
        await self._emit(replies.printable(str(reply)).encode())

    async def _emit(self, line: bytes) -> None:
        self._out.append(line + b"\r\n")
        if not self._buffering:
            self._write_out()
            if self._paused:
                await self._writer.drain()
        if self._closing:
            return
        if line and line[0] in _ERROR_DIGITS:
            event(LogEvent.SMTP_REJECTED, ip=self._ip, code=line[:3].decode("ascii", "replace"),
                  status=_enhanced(line), command=self._command)
            self._errors += 1
            self._limits.error(self._ip)
            if self._errors >= self._limits.settings.max_errors_per_session:
                event(LogEvent.CLIENT_REFUSED, ip=self._ip, limit="errors")
                await self._close_with(replies.TOO_MANY_ERRORS)

    async def handle_exception(self, error: Exception) -> str:
        if isinstance(error, TLSSetupException):
            # The client's handshake failed (garbage, or it hung up): one line, no
            # traceback; the command loop closes the connection.
            log.info("%s: TLS handshake failed: %r", self._ip, error.__cause__)
        elif not isinstance(error, ConnectionError):
            log.warning("%s: error handling a command: %r", self._ip, error,
                        exc_info=not isinstance(error, OSError))
        return str(replies.reply_for_error(error))

    def peer(self) -> PeerInfo:
        assert self.session is not None
        helo = self.session.host_name or ""
        tls = self._tls_protocol is not None
        cached = self._peer
        if cached is None or cached.helo != helo or cached.tls != tls \
                or cached.identity is not self._identity:
            cached = self._peer = PeerInfo(self._ip, self._port, helo, tls, self._identity,
                                           self._kind)
        return cached

    def _refusal(self) -> str | None:
        """Why MAIL/RCPT/DATA cannot run now (no HELO yet, or AUTH required)."""
        assert self.session is not None
        if not self.session.host_name:
            return "503 Error: send HELO first"
        if self._auth_required and not self.session.authenticated:
            return "530 5.7.0 Authentication required"
        return None

    def _set_rset_state(self) -> None:
        super()._set_rset_state()  # type: ignore[no-untyped-call]
        self._txn = None

    def _set_post_data_state(self) -> None:
        super()._set_post_data_state()  # type: ignore[no-untyped-call]
        self._txn = None

    async def smtp_QUIT(self, arg: str | None) -> None:
        if arg:
            await self.push("501 Syntax: QUIT")
            return
        # Written and closed here; the command loop sees the transport closing and
        # ends without being cancelled (aiosmtpd cancels it, which costs a traceback).
        await self._emit(b"221 2.0.0 Bye")
        self._quit = True
        if self.transport is not None:
            self.transport.close()

    async def smtp_VRFY(self, arg: str | None) -> None:
        """RFC 5321 3.5.3: 252, as for any name, so VRFY tells nobody which users
        exist. An argument that is not printable UTF-8 text is a syntax error
        (aiosmtpd echoed it, and failed to encode it when it was not UTF-8)."""
        if await self.check_auth_needed("VRFY"):
            return
        if not arg or not arg.isprintable():
            await self.push("501 5.5.4 Syntax: VRFY <address>")
            return
        await self.push("252 2.5.0 Cannot VRFY user, but will accept message "
                        "and attempt delivery")

    # -- greeting ---------------------------------------------------------------------
    def _extensions(self) -> list[str]:
        lines = [self.hostname, "PIPELINING"]
        if self.data_size_limit:
            lines.append(f"SIZE {self.data_size_limit}")
        lines += ["8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES"]
        if self.tls_context is not None and self._tls_protocol is None:
            lines.append("STARTTLS")
        if self._offer_auth and self._tls_protocol is not None:
            lines.append("AUTH PLAIN LOGIN")
        return lines

    async def _greet(self, hostname: str | None, verb: str) -> None:
        if not hostname:
            await self.push(f"501 Syntax: {verb} hostname")
            return
        self._set_rset_state()
        assert self.session is not None
        self.session.extended_smtp = True
        self.session.host_name = hostname
        lines = self._extensions()
        self._in_ehlo = True
        try:
            for line in lines[:-1]:
                await self.push(f"250-{line}")
            await self.push(f"250 {lines[-1]}")
        finally:
            self._in_ehlo = False

    async def smtp_EHLO(self, hostname: str | None) -> None:
        await self._greet(hostname, "EHLO")

    async def smtp_HELO(self, hostname: str | None) -> None:
        if not hostname:
            await self.push("501 Syntax: HELO hostname")
            return
        self._set_rset_state()
        assert self.session is not None
        self.session.extended_smtp = False
        self.session.host_name = hostname
        self._in_ehlo = True
        try:
            await self.push(f"250 {self.hostname}")
        finally:
            self._in_ehlo = False

    # -- the transaction ----------------------------------------------------------------
    async def smtp_MAIL(self, arg: str | None) -> None:
        refusal = self._refusal()
        if refusal is not None:
            await self.push(refusal)
            return
        if self._txn is not None:
            await self.reply(replies.NESTED_MAIL)
            return
        try:
            path = parse_path_arg(arg, "FROM:", allow_null=True)
            params = parse_mail_params(path.params, size_limit=self.data_size_limit or 0,
                                       auth=self._offer_auth)
        except PathError as exc:
            await self.reply(exc.reply)
            return
        reply = await self._handler.mail(self.peer(), path.address, params)
        if reply.ok:
            self._txn = _Transaction(path.address, params, [])
        await self.reply(reply)

    async def _open_transaction(self) -> _Transaction | None:
        """The transaction RCPT and DATA work on, or None once the reply why there is
        none (refusal, or no MAIL yet) is sent."""
        refusal = self._refusal()
        if refusal is not None:
            await self.push(refusal)
            return None
        txn = self._txn
        if txn is None:
            await self.reply(replies.NEED_MAIL)
        return txn

    async def smtp_RCPT(self, arg: str | None) -> None:
        txn = await self._open_transaction()
        if txn is None:
            return
        try:
            path = parse_path_arg(arg, "TO:", allow_null=False)
        except PathError as exc:
            await self.reply(exc.reply)
            return
        if path.params:
            await self.reply(Reply(555, "5.5.4", "RCPT parameters not supported"))
            return
        if len(txn.recipients) >= self._limits.settings.max_recipients:
            await self.reply(replies.TOO_MANY_RECIPIENTS)
            return
        reply, recipient = await self._handler.rcpt(self.peer(), txn.envelope(),
                                                    path.address)
        if reply.ok and recipient is not None and self._txn is not None:
            self._txn.recipients.append(Accepted(path.address, recipient))
        await self.reply(reply)

    async def smtp_DATA(self, arg: str | None) -> None:
        txn = await self._open_transaction()
        if txn is None:
            return
        if not txn.recipients:
            await self.reply(replies.NEED_RCPT)
            return
        if arg:
            await self.push("501 5.5.4 Syntax: DATA")
            return
        envelope = txn.envelope()
        self._in_data = True
        try:
            await self._receive_and_store(envelope)
        finally:
            self._in_data = False
        if self._shutting_down:
            await self._close_with(replies.SHUTTING_DOWN)

    async def _receive_and_store(self, envelope: Envelope) -> None:
        await self._emit(b"354 End data with <CR><LF>.<CR><LF>")
        # The message's share of the process's budget for mail in flight, held until
        # it has been stored or refused (limits.DataBudget).
        hold = self._limits.data.hold()
        try:
            wire = await read_data(self._reader, self.data_size_limit or 0,
                                   self._reset_timeout, hold)
        except asyncio.IncompleteReadError:
            # Truncated DATA: the client went away; nothing was accepted.
            hold.release()
            self._set_post_data_state()
            if self.transport is not None:
                self.transport.close()
            return
        except DataTooBig:
            self._set_post_data_state()
            await self.reply(replies.TOO_BIG)
            return
        except DataOverBudget:
            self._set_post_data_state()
            event(LogEvent.CLIENT_REFUSED, ip=self._ip, limit="data-in-flight")
            await self.reply(replies.DATA_IN_FLIGHT)
            return
        except BaseException:  # the session cancelled (the client went away) and such
            hold.release()
            raise
        message = decode_data(wire)
        del wire  # one copy of the message in memory, not two, while it is stored
        self._set_post_data_state()
        # Once the whole message is here, finish storing it even if the client
        # disconnects meanwhile: the work is not wasted and nothing is half-done.
        task = asyncio.ensure_future(self._handler.data(self.peer(), envelope, message))
        task.add_done_callback(_log_orphan_failure)
        task.add_done_callback(lambda _task: hold.release())
        results = await asyncio.shield(task)
        if self._kind is ListenerKind.LMTP:
            for result in results:
                await self.reply(result)
        else:
            await self.reply(results[0])


class LmtpListener(SmtpListener):
    """RFC 2033: LHLO instead of EHLO/HELO, and one reply per recipient after DATA."""

    async def smtp_LHLO(self, hostname: str | None) -> None:
        await self._greet(hostname, "LHLO")

    async def smtp_EHLO(self, hostname: str | None) -> None:
        await self.push('500 5.5.1 Error: command "EHLO" not recognized')

    async def smtp_HELO(self, hostname: str | None) -> None:
        await self.push('500 5.5.1 Error: command "HELO" not recognized')

    def _extensions(self) -> list[str]:
        return [line for line in super()._extensions() if line != "STARTTLS"] \
            if self.tls_context is None else super()._extensions()


def _enhanced(line: bytes) -> str | None:
    """The enhanced status code of a reply line (``5.1.1``), if it has one."""
    status = line[4:].split(b" ", 1)[0]
    return status.decode("ascii") if status[:1] in (b"4", b"5") and status.count(b".") == 2 \
        and status.replace(b".", b"").isdigit() else None


def _log_orphan_failure(task: asyncio.Future[list[Reply]]) -> None:
    # Retrieve the outcome so a failure after the client left is logged, not lost.
    if not task.cancelled() and task.exception() is not None:
        log.warning("storing a message failed: %r", task.exception())

