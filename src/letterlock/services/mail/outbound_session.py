"""One SMTP client transaction of the outbound queue: connect to a receiving host,
STARTTLS as the TLS policy asks, send one message to some recipients and turn each
answer into an :class:`Outcome`. No decisions about retries or notices here
(services/mail/outbound.py makes those)."""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiosmtplib

from letterlock.services.mail.dane import DaneMismatch, DaneRecords, authenticate, peer_chain
from letterlock.services.mail.outbound_settings import OutboundSettings
from letterlock.services.mail.queue_entry import FAILED, PENDING, SENT

AddressLookup = Callable[[str], Awaitable[str]]
"""Where to connect for a host name (the default lets the system resolve it)."""


async def direct_address(host: str) -> str:
    return host


@dataclass(frozen=True)
class Outcome:
    state: str
    status: str = ""
    diagnostic: str = ""
    remote: str = ""


@dataclass
class Seen:
    """What a transaction learnt of its connection, filled in as it goes (for TLS
    reports, RFC 8460): both ends' IP addresses, and whether TLS was negotiated."""

    sending_ip: str = ""
    receiving_ip: str = ""
    tls: bool = False


def _ends(client: aiosmtplib.SMTP, seen: Seen) -> None:
    transport = client.transport
    if transport is not None:
        local, peer = transport.get_extra_info("sockname"), transport.get_extra_info("peername")
        seen.sending_ip = str(local[0]) if local else ""
        seen.receiving_ip = str(peer[0]) if peer else ""


class TlsRequired(Exception):
    """``smtp.outbound_tls = required`` and the host offers no STARTTLS."""


class TlsPolicyFailure(Exception):
    """A recipient domain's policy (MTA-STS) asked for verified TLS and this host
    did not give it. ``result`` is the RFC 8460 result type."""

    def __init__(self, result: str, reason: str) -> None:
        super().__init__(reason)
        self.result = result
        self.reason = reason


def _verified(settings: OutboundSettings) -> ssl.SSLContext:
    return settings.tls_context or ssl.create_default_context()


async def transaction(host: str, port: int, addresses: list[str], mail_from: str,
                      message: bytes, settings: OutboundSettings, *, verify: bool = False,
                      dane: DaneRecords | None = None,
                      address_lookup: AddressLookup = direct_address,
                      seen: Seen | None = None) -> dict[str, Outcome]:
    """Deliver ``message`` to ``addresses`` at ``host``. ``verify``: STARTTLS with a
    certificate valid for ``host`` is required (MTA-STS), else TlsPolicyFailure;
    ``dane``: STARTTLS is required and the certificate must match a usable record
    (none usable: TLS unauthenticated, RFC 7672 3.1). ``seen`` is told the
    connection's addresses and whether TLS was used."""
    policy = settings.tls_policy
    client = aiosmtplib.SMTP(hostname=await address_lookup(host), port=port,
                             timeout=settings.timeout_s, start_tls=False,
                             local_hostname=settings.hostname)
    await client.connect()
    seen = seen if seen is not None else Seen()
    _ends(client, seen)
    try:
        await client.ehlo()
        if dane is not None:
            await _dane_starttls(client, host, dane)
        elif verify:
            if not client.supports_extension("starttls"):
                raise TlsPolicyFailure("starttls-not-supported",
                                       f"{host} does not offer STARTTLS")
            try:
                await client.starttls(tls_context=_verified(settings), server_hostname=host)
            except (ssl.SSLError, aiosmtplib.SMTPException, OSError) as exc:
                cause = exc.__cause__ or exc.__context__ or exc
                raise TlsPolicyFailure(_result_of(cause), f"TLS with {host} failed: "
                                       f"{str(cause)[:200]}") from exc
        elif policy != "none" and client.supports_extension("starttls"):
            if policy == "required":
                await client.starttls(tls_context=_verified(settings), server_hostname=host)
            else:
                ctx = ssl.create_default_context()
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
                await client.starttls(tls_context=ctx, validate_certs=False)
        elif policy == "required":
            raise TlsRequired(f"{host} does not offer STARTTLS")
        seen.tls = client.transport is not None and \
            client.transport.get_extra_info("ssl_object") is not None
        options = []
        if not message.isascii() and client.supports_extension("8bitmime"):
            options.append("BODY=8BITMIME")
        if not all(a.isascii() for a in [mail_from, *addresses]) \
                and client.supports_extension("smtputf8"):
            options.append("SMTPUTF8")
        # No SIZE here: aiosmtplib's sendmail adds it when the server offers SIZE,
        # and a second one makes strict receivers refuse MAIL.
        return await _send(client, host, addresses, mail_from, message, options)
    finally:
        with contextlib.suppress(aiosmtplib.SMTPException, OSError):
            await client.quit()
        client.close()


CERT_HAS_EXPIRED = 10
"""OpenSSL's X509_V_ERR_CERT_HAS_EXPIRED (``SSLCertVerificationError.verify_code``)."""


def _result_of(cause: BaseException) -> str:
    """The RFC 8460 result type of a failed verified STARTTLS."""
    if "match" in str(cause):
        return "certificate-host-mismatch"
    if isinstance(cause, ssl.SSLCertVerificationError):
        return ("certificate-expired" if cause.verify_code == CERT_HAS_EXPIRED
                else "certificate-not-trusted")
    return "validation-failure"


async def _dane_starttls(client: aiosmtplib.SMTP, host: str, dane: DaneRecords) -> None:
    if not client.supports_extension("starttls"):
        raise TlsPolicyFailure("starttls-not-supported", f"{host} does not offer STARTTLS")
    ctx = ssl.create_default_context()  # the TLSA records authenticate, not the roots
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:  # SNI: the TLSA base domain (RFC 7672 8.1)
        await client.starttls(tls_context=ctx, validate_certs=False,
                              server_hostname=dane.base or host)
    except (ssl.SSLError, aiosmtplib.SMTPException, OSError) as exc:
        raise TlsPolicyFailure("validation-failure",
                               f"TLS with {host} failed: {str(exc)[:200]}") from exc
    transport = client.transport
    tls = transport.get_extra_info("ssl_object") if transport is not None else None
    der = tls.getpeercert(binary_form=True) if tls is not None else None
    try:
        authenticate(dane, der or b"", lambda: peer_chain(tls) if tls is not None else [])
    except DaneMismatch as exc:
        raise TlsPolicyFailure(exc.result, exc.reason) from exc


async def _send(client: aiosmtplib.SMTP, host: str, addresses: list[str],
                mail_from: str, message: bytes, options: list[str]) -> dict[str, Outcome]:
    def from_code(code: int, text: str) -> Outcome:
        status = text.split(" ", 1)[0] if text[:2] in ("4.", "5.") else \
            ("5.0.0" if code >= 500 else "4.0.0")
        return Outcome(FAILED if code >= 500 else PENDING, status, f"{code} {text}"[:500],
                       host)

    try:
        refused, _ = await client.sendmail(mail_from, addresses, message,
                                           mail_options=options)
    except aiosmtplib.SMTPRecipientsRefused as exc:
        return {r.recipient: from_code(r.code, r.message) for r in exc.recipients}
    except aiosmtplib.SMTPResponseException as exc:
        return dict.fromkeys(addresses, from_code(exc.code, exc.message))
    out = {a: Outcome(SENT, "2.0.0", "delivered", host) for a in addresses}
    for address, response in refused.items():
        out[address] = from_code(response.code, response.message)
    return out
