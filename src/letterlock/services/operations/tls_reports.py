"""SMTP TLS Reporting (RFC 8460) in the running server.

- :class:`TlsResults`: the outbound queue tells it how each TLS attempt to a
  recipient domain's MX went (policy, result, the two servers' addresses); it
  counts them per UTC day (storage/tls_reports_sqlite.py).
- :class:`TlsReporter`: the daily job (services/operations/periodic.py runs it every
  hour; it reports each finished day once): for every domain mail was sent to, the
  ``_smtp._tls`` TXT record says where reports go; the report (gzipped JSON) is
  queued as a mail from the reporting address (``smtp.tls_report_from``) through the
  normal outbound queue, and POSTed to ``https:`` destinations.
- :class:`TlsReportIntake`: reports other servers send about ours, by mail to
  ``smtp.tls_report_inbox`` or by HTTPS POST, checked and stored for
  `letterlock tls-reports`.

The vocabulary, the report's JSON and mail, and the checks of received reports are
pure (services/mail/tls_rpt.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import dns.asyncresolver
import dns.exception
import dns.resolver

from letterlock.config import SmtpConfig
from letterlock.errors import ConfigError, InvalidInput, LetterlockError
from letterlock.services.accounts.accounts import AccountRef
from letterlock.services.accounts.addresses import normalise_address
from letterlock.services.mail import tls_rpt
from letterlock.services.mail.delivery import DeliveryService
from letterlock.services.mail.mta_sts import system_resolver
from letterlock.services.mail.tls_rpt import (
    PolicyInfo,
    ReportError,
    SessionCount,
    check_report,
)
from letterlock.services.operations.log_events import LogEvent, event
from letterlock.services.operations.periodic import start_periodic
from letterlock.storage.tls_reports_sqlite import (
    TLS_REPORTS_DB,
    ReceivedRow,
    SentRow,
    SessionRow,
    TlsReportStore,
)

log = logging.getLogger("letterlock.tls_reports")

REPORT_INTERVAL_S = 3600.0
"""How often the job looks for finished days to report (each is reported once)."""
SENT_RETAIN_DAYS = 90
"""Days `letterlock tls-reports sent` remembers a report sent."""
GIVE_UP_DAYS = 3
"""A day whose report could not be sent (DNS failing) is retried this many days."""
HTTPS_TIMEOUT_S = 30.0

Clock = Callable[[], datetime]


def _now() -> datetime:
    return datetime.now(UTC)


class TlsResults:
    """Counts outbound TLS sessions per day, policy domain, policy and result."""

    def __init__(self, store: TlsReportStore, clock: Clock = _now) -> None:
        self._store = store
        self._clock = clock

    async def record(
        self,
        policy: PolicyInfo,
        result: str = tls_rpt.SUCCESS,
        *,
        mx: str = "",
        sending_ip: str = "",
        receiving_ip: str = "",
    ) -> None:
        """One session to ``mx`` under ``policy``: ``result`` is SUCCESS or an RFC 8460
        result type. Never raises: a count lost is not worth a delivery."""
        row = SessionRow(
            self._clock().astimezone(UTC).date(),
            policy.domain.rstrip(".").lower(),
            policy.type,
            policy.strings,
            policy.mx_hosts,
            result,
            sending_ip,
            mx.rstrip(".").lower(),
            receiving_ip,
            1,
        )
        try:
            await self._store.count_session(row)
        except LetterlockError as exc:
            log.warning("TLS session count for %s not kept: %s", row.domain, exc)

    async def policy_failure(self, domain: str, result: str) -> None:
        """A recipient domain's MTA-STS policy could not be had (MtaSts tells)."""
        await self.record(PolicyInfo("sts", domain), result)


# -- sending reports ------------------------------------------------------------------


class ReportQueue(Protocol):
    """The part of the outbound queue the reporter needs."""

    async def submit(
        self,
        sender: AccountRef,
        mail_from: str,
        recipients: Sequence[str],
        message: bytes,
        *,
        sign_for: str | None = None,
    ) -> str:
        """Queue ``message`` durably; returns its queue id."""
        ...


class Closable(Protocol):
    async def close(self) -> None:
        """Stop, waiting for work under way."""
        ...


TxtLookup = Callable[[str], Awaitable[list[str]]]
HttpsPost = Callable[[str, bytes], Awaitable[None]]


@dataclass(frozen=True)
class ReporterSettings:
    sender: str
    """The reporting address (From, MAIL FROM, contact-info): an account or alias."""
    submitter: str
    """This server's host name (TLS-Report-Submitter)."""

    @property
    def organization(self) -> str:
        return self.sender.rpartition("@")[2]


class TlsReporter:
    """The daily reports of outbound TLS, one per recipient domain that asks."""

    def __init__(
        self,
        store: TlsReportStore,
        queue: ReportQueue,
        sender_account: Callable[[], Awaitable[AccountRef | None]],
        settings: ReporterSettings,
        *,
        txt: TxtLookup,
        https: HttpsPost | None = None,
        clock: Clock = _now,
    ) -> None:
        self._store = store
        self._queue = queue
        self._sender_account = sender_account
        self._settings = settings
        self._txt = txt
        self._https = https
        self._clock = clock

    async def run(self) -> int:
        """Report every finished day not reported yet; returns how many reports went
        out. A day that cannot be reported now (DNS failing) is tried again at the
        next run, for GIVE_UP_DAYS. A day's counts are deleted once its report is
        made, or at once for a domain that publishes no rua."""
        today = self._clock().astimezone(UTC).date()
        sent = 0
        pending = await self._store.unreported(before=today)
        sender = await self._sender_account() if pending else None
        if pending and sender is None:
            log.warning(
                "TLS reports not sent: smtp.tls_report_from %s is no account or alias here",
                self._settings.sender,
            )
            return 0
        for day, domain in pending:
            assert sender is not None
            try:
                sent += await self._report(sender, day, domain)
            except (dns.exception.DNSException, OSError, LetterlockError) as exc:
                if (today - day).days > GIVE_UP_DAYS:
                    await self._done(day, domain, "", "failed", (), 0, 0)
                log.warning("TLS report for %s (%s) not sent: %s", domain, day, exc)
        await self._store.forget_sent(before=today - timedelta(days=SENT_RETAIN_DAYS))
        return sent

    async def _done(
        self,
        day: date,
        domain: str,
        report_id: str,
        outcome: str,
        destinations: Sequence[str],
        successes: int,
        failures: int,
    ) -> None:
        await self._store.mark_reported(
            SentRow(
                day,
                domain,
                report_id,
                self._clock(),
                outcome,
                ",".join(destinations),
                successes,
                failures,
            )
        )

    async def _report(self, sender: AccountRef, day: date, domain: str) -> int:
        rua = tls_rpt.parse_txt(await self._txt(f"_smtp._tls.{domain}"))
        rows = await self._store.sessions(day, domain)
        counts = [
            SessionCount(
                PolicyInfo(r.policy_type, r.domain, r.strings, r.mx_hosts),
                r.result,
                r.sending_ip,
                r.receiving_mx,
                r.receiving_ip,
                r.count,
            )
            for r in rows
        ]
        successes = sum(c.count for c in counts if c.result == tls_rpt.SUCCESS)
        failures = sum(c.count for c in counts) - successes
        mailto = [
            a
            for u in rua
            if u.lower().startswith("mailto:") and (a := tls_rpt.mailto_address(u)) is not None
        ]
        https = (
            [u for u in rua if u.lower().startswith("https:")] if self._https is not None else []
        )
        if not mailto and not https:  # no report wanted: the counts go at once
            await self._store.forget_day(day, domain)
            return 0
        report_id = f"{day.isoformat()}.{secrets.token_hex(6)}@{self._settings.submitter}"
        report = tls_rpt.build_report(
            organization=self._settings.organization,
            contact=self._settings.sender,
            report_id=report_id,
            day=day,
            sessions=counts,
        )
        if mailto:
            message = tls_rpt.report_mail(
                report=report,
                domain=domain,
                submitter=self._settings.submitter,
                sender=self._settings.sender,
                recipients=mailto,
                now=self._clock(),
            )
            await self._queue.submit(
                sender, self._settings.sender, mailto, message, sign_for=self._settings.organization
            )
        posted = []
        for url in https:
            assert self._https is not None
            try:
                await self._https(url, tls_rpt.gzip_report(report))
                posted.append(url)
            except (OSError, TimeoutError, ssl.SSLError, LetterlockError) as exc:
                log.warning("TLS report for %s not posted to %s: %s", domain, url, exc)
        destinations = [*(f"mailto:{a}" for a in mailto), *posted]
        if not destinations:
            raise OSError("no destination took the report")
        await self._done(day, domain, report_id, "sent", destinations, successes, failures)
        event(
            LogEvent.TLS_REPORT_SENT,
            domain=domain,
            day=day.isoformat(),
            report_id=report_id,
            via="+".join(v for v, on in (("mailto", mailto), ("https", posted)) if on),
            destinations=len(destinations),
            successes=successes,
            failures=failures,
        )
        return 1


def dns_txt(resolver: dns.asyncresolver.Resolver) -> TxtLookup:
    """TXT lookups with ``resolver``: [] where the name or record does not exist."""

    async def lookup(name: str) -> list[str]:
        try:
            answer = await resolver.resolve(name, "TXT")
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        return [b"".join(r.strings).decode("ascii", "replace") for r in answer]

    return lookup


def https_poster(
    tls: ssl.SSLContext | None = None, *, address: Callable[[str], Awaitable[str]] | None = None
) -> HttpsPost:
    """POST a gzipped report (RFC 8460 5.4: ``application/tlsrpt+gzip``), with a
    certificate valid for the URL's host; any 2xx answer is success. ``address``:
    where to connect for a host name (tests); by default the system resolves it."""

    async def post(url: str, body: bytes) -> None:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if parts.scheme.lower() != "https" or not host:
            raise OSError(f"not an https URL: {url[:100]}")
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        connect_to = await address(host) if address is not None else host
        async with asyncio.timeout(HTTPS_TIMEOUT_S):
            reader, writer = await asyncio.open_connection(
                connect_to,
                parts.port or 443,
                ssl=tls or ssl.create_default_context(),
                server_hostname=host,
            )
            try:
                writer.write(
                    f"POST {target} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                    f"Content-Type: {tls_rpt.MEDIA_GZIP}\r\n"
                    f"Content-Length: {len(body)}\r\nUser-Agent: letterlock\r\n"
                    "Connection: close\r\n\r\n".encode("ascii")
                    + body
                )
                await writer.drain()
                status = (await reader.readline()).decode("latin-1").split(" ")
            finally:
                writer.close()
                with contextlib.suppress(OSError, ssl.SSLError):
                    await writer.wait_closed()
        if len(status) < 2 or not status[1].startswith("2"):
            raise OSError(f"HTTP status {' '.join(status[1:]).strip()[:40] or 'missing'}")

    return post


# -- receiving reports ----------------------------------------------------------------


class TlsReportIntake:
    """Reports about our servers, sent by mail to the report inbox or POSTed."""

    def __init__(
        self,
        store: TlsReportStore,
        inbox: str,
        hosted: Callable[[], Awaitable[set[str]]],
        clock: Clock = _now,
    ) -> None:
        self._store = store
        self.inbox = normalise_address(inbox) if inbox else ""
        self._hosted = hosted
        self._clock = clock

    def takes(self, address: str) -> bool:
        """Whether mail to ``address`` is a report for this intake."""
        if not self.inbox:
            return False
        try:
            return normalise_address(address) == self.inbox
        except InvalidInput:
            return False

    async def receive(self, data: bytes, *, via: str, media_type: str | None = None) -> ReceivedRow:
        """Check and store one report: a report mail (``via`` smtp) or a POST's body
        of ``media_type``. Raises ReportError (logged) when it cannot be taken."""
        try:
            body = (
                tls_rpt.report_from_mail(data)
                if media_type is None
                else tls_rpt.report_body(data, media_type)
            )
            report = check_report(body, via=via, received=self._clock())
            hosted = await self._hosted()
            if not any(d in hosted for d in report.domains):
                raise ReportError(
                    f"the report is about no domain hosted here ({', '.join(report.domains)[:120]})"
                )
        except ReportError as exc:
            event(LogEvent.TLS_REPORT_REFUSED, via=via, reason=str(exc))
            raise
        number, new = await self._store.add_received(report)
        event(
            LogEvent.TLS_REPORT_RECEIVED,
            via=via,
            report=number,
            organization=report.organization[:100],
            report_id=report.report_id[:200],
            domains=",".join(report.domains)[:200],
            successes=report.successes,
            failures=report.failures,
            again=None if new else True,
        )
        return replace(report, id=number)


# -- wiring ---------------------------------------------------------------------------


class TlsReporting:
    """What the SMTP front-end wires (smtp/server.py): the counts the outbound queue
    keeps (None when reports are not sent), the daily job, and the report inbox
    (None when ``smtp.tls_report_inbox`` is empty)."""

    def __init__(
        self,
        config: SmtpConfig,
        control_dir: Path,
        hostname: str,
        delivery: DeliveryService,
        *,
        fsync: bool = True,
    ) -> None:
        for option in ("tls_report_from", "tls_report_inbox"):
            value = getattr(config, option)
            try:
                if value:
                    normalise_address(value)
            except InvalidInput as exc:
                raise ConfigError(f"smtp.{option}: {exc}") from None
        self.store = TlsReportStore(control_dir, fsync=fsync)
        self._config = config
        self._hostname = hostname
        self._delivery = delivery
        sending = config.tls_reports and bool(config.tls_report_from) and not config.smarthost
        self.results = TlsResults(self.store) if sending else None
        self.intake = (
            TlsReportIntake(self.store, config.tls_report_inbox, delivery.hosted_domains)
            if config.tls_report_inbox
            else None
        )
        self._stop: Callable[[], Awaitable[None]] | None = None

    def reporter(
        self,
        queue: ReportQueue,
        *,
        txt: TxtLookup | None = None,
        https: HttpsPost | None = None,
        clock: Clock = _now,
    ) -> TlsReporter:
        """The daily job, sending through ``queue`` (system DNS and HTTPS unless
        given)."""
        address = self._config.tls_report_from

        async def sender() -> AccountRef | None:
            return (await self._delivery.classify(address)).account

        return TlsReporter(
            self.store,
            queue,
            sender,
            ReporterSettings(address, self._hostname),
            txt=txt or dns_txt(system_resolver()),
            https=https or https_poster(),
            clock=clock,
        )

    def start(self, queue: ReportQueue) -> None:
        """Run the daily job every REPORT_INTERVAL_S (when reports are sent)."""
        if self.results is not None:
            self._stop = start_periodic(self.reporter(queue).run, REPORT_INTERVAL_S, "tls reports")

    async def close(self, queue: Closable) -> None:
        """Stop the daily job, then ``queue`` (which counts into the store until it
        stops), then the store."""
        if self._stop is not None:
            await self._stop()
            self._stop = None
        await queue.close()
        await self.store.close()


async def recent_reports(
    control_dir: Path, *, fsync: bool, limit: int = 10
) -> tuple[list[ReceivedRow], list[SentRow]]:
    """The latest reports received and sent (for the console's queue page); nothing
    is created where no report was ever counted or received."""
    if not (control_dir / TLS_REPORTS_DB).exists():
        return [], []
    store = TlsReportStore(control_dir, fsync=fsync)
    try:
        return await store.received(limit), await store.sent(limit)
    finally:
        await store.close()
