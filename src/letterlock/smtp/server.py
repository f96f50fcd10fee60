"""The SMTP front-end as one object: MX, submission and (optionally) LMTP listeners,
LMTP on a TCP port and/or a Unix socket, built from services and configuration by the
composition root.

    server = SmtpServer(delivery, accounts, outbound, config.smtp,
                        hostname=config.server.hostname, ssl_context=ctx,
                        bind=config.server.bind)
    await server.start()      # listening; server.ports tells where
    ...
    await server.close()      # stops accepting, lets sessions finish briefly
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import dns.asyncresolver

from letterlock.app import App
from letterlock.config import Config, SmtpConfig
from letterlock.services.accounts.accounts import AccountService
from letterlock.services.mail import dkim_keys
from letterlock.services.mail.dane import Dane
from letterlock.services.mail.delivery import DeliveryService
from letterlock.services.mail.inbound_auth import InboundChecks
from letterlock.services.mail.mta_sts import MtaSts
from letterlock.services.mail.outbound import OutboundQueue, OutboundSettings
from letterlock.services.mail.rspamd import SpamFilter
from letterlock.services.mail.screening import InboundScreen
from letterlock.services.operations.tls_reports import TlsReporting, TlsReportIntake
from letterlock.smtp import lmtp_socket
from letterlock.smtp.handlers import LmtpHandler, MxHandler, Outbound, SubmissionHandler
from letterlock.smtp.hooks import ListenerKind, SmtpHandler
from letterlock.smtp.limits import ClientLimits, LimitSettings, parse_networks
from letterlock.smtp.protocol import LmtpListener, SmtpListener
from letterlock.smtp.tls_report_tap import TlsReportTap

log = logging.getLogger("letterlock.smtp")


@dataclass(frozen=True)
class Ports:
    mx: int
    submission: int
    lmtp: int | None
    lmtp_socket: Path | None = None


class SmtpServer:
    def __init__(self, delivery: DeliveryService, accounts: AccountService,
                 outbound: Outbound | None, config: SmtpConfig, hostname: str,
                 ssl_context: ssl.SSLContext | None, *, bind: str = "127.0.0.1",
                 lmtp: bool | None = None, limits: LimitSettings | None = None,
                 grace_s: float = 5.0, mx_only: bool = False,
                 reuse_port: bool = False,
                 dns_resolver: dns.asyncresolver.Resolver | None = None,
                 lmtp_socket: Path | None = None,
                 spam: SpamFilter | None = None,
                 tls_reports: TlsReportIntake | None = None) -> None:
        self._config = config
        self._hostname = hostname
        self._ssl = ssl_context
        self._bind = bind
        self._lmtp = config.lmtp_port != 0 if lmtp is None else lmtp
        self._lmtp_socket = lmtp_socket
        """Where to listen for LMTP on a Unix socket as well (None: nowhere)."""
        self._socket_inode: int | None = None
        self._limits = ClientLimits(limits or LimitSettings(
            max_connections_per_ip=config.max_connections_per_ip,
            trusted_networks=parse_networks(config.trusted_networks),
            max_data_in_flight=config.max_data_in_flight_bytes))
        self._grace = grace_s
        self._mx_only = mx_only
        self._reuse_port = reuse_port
        checks = InboundChecks(hostname, dns_resolver, check_dmarc=config.dmarc,
                               trusted_sealers=config.arc_trusted_sealers.split(",")
                               ) if config.sender_checks else None
        self._mx: SmtpHandler = MxHandler(delivery, hostname, screen=InboundScreen(
            checks, spam, hostname) if checks is not None or spam is not None else None)
        if tls_reports is not None:  # smtp.tls_report_inbox: reports, not a mailbox
            self._mx = TlsReportTap(self._mx, tls_reports)
        self._submission = SubmissionHandler(delivery, accounts, outbound, hostname)
        self._lmtp_handler = LmtpHandler(delivery, hostname)
        self._servers: list[asyncio.AbstractServer] = []
        self._sessions: set[SmtpListener] = set()
        self.ports: Ports | None = None

    def _factory(self, kind: ListenerKind, handler: SmtpHandler, *, auth: bool,
                 tls: bool, local: bool = False) -> Callable[[], SmtpListener]:
        cls = LmtpListener if kind is ListenerKind.LMTP else SmtpListener

        def make() -> SmtpListener:
            listener = cls(handler, kind=kind, limits=self._limits, hostname=self._hostname,
                           max_message_bytes=self._config.max_message_bytes,
                           tls_context=self._ssl if tls else None, auth=auth,
                           on_close=self._sessions.discard, local=local)
            self._sessions.add(listener)
            return listener

        return make

    async def _listen(self, kind: ListenerKind, handler: SmtpHandler, port: int, *,
                      auth: bool, tls: bool) -> int:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            self._factory(kind, handler, auth=auth, tls=tls),
            host=self._bind, port=port, reuse_address=True,
            # Worker processes share the MX port; the kernel spreads connections.
            reuse_port=self._reuse_port and kind is ListenerKind.MX)
        self._servers.append(server)
        bound: int = server.sockets[0].getsockname()[1]
        log.info("%s listening on %s:%d", kind.value, self._bind, bound)
        return bound

    async def start(self) -> Ports:
        mx = await self._listen(ListenerKind.MX, self._mx, self._config.port,
                                auth=False, tls=self._ssl is not None)
        if self._mx_only:
            self.ports = Ports(mx, 0, None)
            return self.ports
        sub = await self._listen(ListenerKind.SUBMISSION, self._submission,
                                 self._config.submission_port, auth=True,
                                 tls=self._ssl is not None)
        lmtp = None
        if self._lmtp:
            lmtp = await self._listen(ListenerKind.LMTP, self._lmtp_handler,
                                      self._config.lmtp_port, auth=False, tls=False)
        if self._lmtp_socket is not None:
            await self._listen_unix(self._lmtp_socket)
        self.ports = Ports(mx, sub, lmtp, self._lmtp_socket)
        return self.ports

    async def _listen_unix(self, path: Path) -> None:
        loop = asyncio.get_running_loop()
        sock = await loop.run_in_executor(None, lmtp_socket.open_socket, path)
        try:
            self._socket_inode = os.lstat(path).st_ino  # the file's, not the socket's
            server = await loop.create_unix_server(
                self._factory(ListenerKind.LMTP, self._lmtp_handler, auth=False, tls=False,
                              local=True), sock=sock)
        except BaseException:
            sock.close()
            lmtp_socket.remove_socket(path, self._socket_inode or -1)
            raise
        self._servers.append(server)
        log.info("lmtp listening on unix:%s", path)

    async def close(self) -> int:
        """Stop listening and end every session (see below); returns how many."""
        for server in self._servers:
            server.close()
        ended = len(self._sessions)
        deadline = asyncio.get_running_loop().time() + self._grace
        # Sessions between commands are told to go away; a DATA being stored finishes.
        for session in list(self._sessions):
            await session.close_if_idle()
        while self._sessions and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        for session in list(self._sessions):
            if session.transport is not None:
                session.transport.close()
        self._servers.clear()
        if self._lmtp_socket is not None and self._socket_inode is not None:
            lmtp_socket.remove_socket(self._lmtp_socket, self._socket_inode)
            self._socket_inode = None
        return ended


async def start_smtp(app: App, ssl_context: ssl.SSLContext | None, *,
                     reuse_port: bool = False) -> Callable[[], Awaitable[int]]:
    """Composition-root entry point (``letterlock serve``): DKIM keys for every hosted
    domain, the outbound queue (resumed from its spool) and the listeners. Returns the
    coroutine function that stops them and says how many sessions it ended.
    ``reuse_port``: the MX port is shared with worker processes (``smtp.workers``, see
    letterlock/workers.py)."""
    config = app.config
    loop = asyncio.get_running_loop()
    for domain in await app.control.list_domains():
        await loop.run_in_executor(None, dkim_keys.ensure_key, config.control_dir, domain.name)
    # TLS reports (RFC 8460): counts of outbound TLS, the daily reports, the inbox.
    reporting = TlsReporting(config.smtp, config.control_dir, config.server.hostname,
                             app.delivery, fsync=config.storage.fsync)
    counts = reporting.results
    queue = OutboundQueue(config.home, app.delivery, app.accounts,
                          dkim_keys.DkimKeys(config.control_dir),
                          OutboundSettings.from_config(config.smtp, config.server.hostname),
                          peers=app.peers,  # news from `letterlock queue`
                          mta_sts=MtaSts(on_failure=counts.policy_failure if counts else None)
                          if config.smtp.mta_sts else None,
                          dane=Dane() if config.smtp.dane else None, tls_results=counts)
    await queue.start()
    reporting.start(queue)
    if app.delivery.filters is not None:  # filters' redirects and replies go out here
        app.delivery.filters.attach_outbound(queue)
    spam = SpamFilter.from_config(config.spam)
    if spam is not None:
        await spam.probe()  # one warning line if rspamd is not there; mail flows anyway
    server = SmtpServer(app.delivery, app.accounts, queue, config.smtp,
                        config.server.hostname, ssl_context, bind=config.server.bind,
                        reuse_port=reuse_port, lmtp_socket=lmtp_socket_of(app.config),
                        spam=spam, tls_reports=reporting.intake)
    try:
        await server.start()
    except BaseException:
        await server.close()
        await reporting.close(queue)
        raise

    async def stop() -> int:
        ended = await server.close()
        await reporting.close(queue)
        return ended

    return stop


def lmtp_socket_of(config: Config) -> Path | None:
    """Where ``serve`` listens for LMTP on a Unix socket (``smtp.lmtp_socket``), or
    None. The default path, under HOME, is skipped with a warning where HOME's own
    path leaves no room for it; a path the operator chose must work."""
    path = lmtp_socket.socket_path(config.home, config.smtp.lmtp_socket)
    if path is not None and not lmtp_socket.fits(path) \
            and config.smtp.lmtp_socket == SmtpConfig.lmtp_socket:
        log.warning("no LMTP socket: %s is too long for a Unix socket path; set "
                    "smtp.lmtp_socket to a shorter path", path)
        return None
    return path
