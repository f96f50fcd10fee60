"""How a queued message reaches one recipient domain: its MX hosts (or the
smarthost), tried in turn, each under the domain's TLS policy: DANE where DNSSEC
vouches for TLSA records (services/mail/dane.py), else MTA-STS
(services/mail/mta_sts.py), else STARTTLS as ``smtp.outbound_tls`` says; every TLS
attempt is counted for the daily TLS reports (RFC 8460,
services/operations/tls_reports.py). One SMTP transaction is
services/mail/outbound_session.py; retries and notices are the queue's
(services/mail/outbound.py).
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import aiosmtplib
import dns.asyncresolver
import dns.exception
import dns.resolver

from letterlock.services.mail import tls_rpt
from letterlock.services.mail.dane import Dane, DaneLookupError
from letterlock.services.mail.mta_sts import MtaSts, failure
from letterlock.services.mail.outbound_session import (
    AddressLookup,
    Outcome,
    Seen,
    TlsPolicyFailure,
    direct_address,
    transaction,
)
from letterlock.services.mail.outbound_session import (
    TlsRequired as _TlsRequired,
)
from letterlock.services.mail.outbound_settings import OutboundSettings
from letterlock.services.mail.queue_entry import FAILED, PENDING

if TYPE_CHECKING:
    from letterlock.services.operations.tls_reports import TlsResults

MxLookup = Callable[[str], Awaitable[list[str]]]


class NoMailHost(Exception):
    """The domain cannot receive mail (NXDOMAIN or null MX): a permanent failure."""


async def dns_mx_lookup(domain: str,
                        resolver: dns.asyncresolver.Resolver | None = None) -> list[str]:
    """MX hosts of ``domain`` by preference; the domain itself when it has no MX
    (RFC 5321 5.1). Raises NoMailHost for NXDOMAIN or a null MX (RFC 7505)."""
    try:
        if resolver is None:
            answer = await dns.asyncresolver.resolve(domain, "MX")
        else:
            answer = await resolver.resolve(domain, "MX")
    except dns.resolver.NXDOMAIN as exc:
        raise NoMailHost(f"domain {domain} does not exist") from exc
    except dns.resolver.NoAnswer:
        return [domain]
    records = sorted(answer, key=lambda r: (r.preference, secrets.randbelow(1000)))
    hosts = [str(r.exchange).rstrip(".") for r in records]
    if hosts == [""]:
        raise NoMailHost(f"domain {domain} accepts no mail (null MX)")
    return [h for h in hosts if h]


class DomainRoutes:
    """Delivery attempts to recipient domains, as the queue's settings say."""

    def __init__(self, settings: OutboundSettings, *, mx_lookup: MxLookup = dns_mx_lookup,
                 mta_sts: MtaSts | None = None, dane: Dane | None = None,
                 address_lookup: AddressLookup = direct_address,
                 tls_results: TlsResults | None = None) -> None:
        self.settings = settings
        self._mx_lookup = mx_lookup
        self._sts = mta_sts
        """Policies of recipient domains (None: MTA-STS off, or a smarthost)."""
        self._dane = dane
        """TLSA lookups with DNSSEC (None: DANE off, or a smarthost)."""
        self._address_lookup = address_lookup
        self._tls_results = tls_results
        """Where each TLS attempt to an MX is counted (TLS reports); None: nowhere."""

    async def _hosts(self, domain: str) -> list[tuple[str, int]]:
        if self.settings.smarthost:
            host, _, port = self.settings.smarthost.rpartition(":")
            return [(host or self.settings.smarthost, int(port) if port.isdigit() else 25)]
        return [(h, self.settings.port) for h in await self._mx_lookup(domain)]

    async def send(self, domain: str, addresses: list[str], mail_from: str,
                   message: bytes) -> dict[str, Outcome]:
        """One attempt to deliver ``message`` to ``addresses`` of ``domain`` (the
        empty domain: through the smarthost): each host in turn until one answers;
        every recipient's outcome (the last host's failure if none took it)."""
        try:
            hosts = await self._hosts(domain)
        except NoMailHost as exc:
            return {a: Outcome(FAILED, "5.1.2", str(exc)) for a in addresses}
        except (dns.exception.DNSException, OSError) as exc:
            return {a: Outcome(PENDING, "4.4.3", f"DNS lookup failed: {exc!r}")
                    for a in addresses}
        policy = None
        if self._sts is not None and not self.settings.smarthost:
            policy = await self._sts.policy(domain)
        last = Outcome(PENDING, "4.4.1", "no host to try")
        for host, port in hosts:
            if self._dane is not None and not self.settings.smarthost:
                # DANE, where DNSSEC vouches for TLSA records, comes before MTA-STS.
                try:
                    pinned = await self._dane.records(domain, host)  # _25._tcp
                except DaneLookupError as exc:
                    failure(domain, "tlsa", "tlsa-invalid", host, str(exc))
                    await self._tls(tls_rpt.tlsa_policy(domain, ()), "tlsa-invalid", host)
                    last = Outcome(PENDING, "4.7.5", f"DANE: {exc}", host)
                    continue
                if pinned is not None:
                    info = tls_rpt.tlsa_policy(domain, ((r.usage, r.selector, r.mtype, r.data)
                                                        for r in pinned.records))
                    seen = Seen()
                    try:
                        sent = await transaction(host, port, addresses, mail_from, message,
                                                 self.settings, dane=pinned,
                                                 address_lookup=self._address_lookup,
                                                 seen=seen)
                    except TlsPolicyFailure as exc:
                        failure(domain, "tlsa", exc.result, host, exc.reason)
                        await self._tls(info, exc.result, host, seen)
                        last = Outcome(PENDING, "4.7.5", f"DANE: {exc.reason}", host)
                    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                        last = Outcome(PENDING, "4.4.1", f"{host}:{port}: {exc!r}"[:300], host)
                    else:
                        # No usable record (RFC 7672 3.1.3): TLS was required, but it
                        # authenticated nothing: counted as tlsa-invalid (RFC 8460 4.3.2.2).
                        result = tls_rpt.SUCCESS if pinned.usable else "tlsa-invalid"
                        if not pinned.usable:
                            failure(domain, "tlsa", result, host, "no usable TLSA record: "
                                    "delivered over TLS without authentication")
                        await self._tls(info, result, host, seen)
                        return sent
                    continue
            verify = policy is not None and policy.mode in ("enforce", "testing")
            info = tls_rpt.no_policy(domain) if policy is None or not verify else \
                tls_rpt.sts_policy(domain, policy.mode, policy.mx, policy.max_age_s)
            counted = False
            if policy is not None and verify and not policy.allows(host):
                failure(domain, "sts", "validation-failure", host, "MX not in the policy")
                await self._tls(info, "validation-failure", host)
                if policy.mode == "enforce":
                    last = Outcome(PENDING, "4.7.5", f"MTA-STS: {host} is not an MX named by "
                                   f"the enforced policy of {domain}", host)
                    continue
                verify, counted = False, True
            seen = Seen()
            try:
                try:
                    sent = await transaction(host, port, addresses, mail_from, message,
                                             self.settings, verify=verify,
                                             address_lookup=self._address_lookup, seen=seen)
                    if not counted and (verify or self.settings.tls_policy != "none"):
                        await self._tls(info, tls_rpt.SUCCESS if seen.tls
                                        else "starttls-not-supported", host, seen)
                    return sent
                except TlsPolicyFailure as exc:
                    assert policy is not None
                    failure(domain, "sts", exc.result, host, exc.reason)
                    await self._tls(info, exc.result, host, seen)
                    if policy.mode == "enforce":
                        raise
                    # testing: as without a policy, after the failure is recorded
                    return await transaction(host, port, addresses, mail_from, message,
                                             self.settings, verify=False,
                                             address_lookup=self._address_lookup)
            except TlsPolicyFailure as exc:
                last = Outcome(PENDING, "4.7.5", f"MTA-STS: {exc.reason}", host)
            except _TlsRequired as exc:
                await self._tls(info, "starttls-not-supported", host, seen)
                last = Outcome(PENDING, "4.7.4", str(exc), host)
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                last = Outcome(PENDING, "4.4.1", f"{host}:{port}: {exc!r}"[:300], host)
        return dict.fromkeys(addresses, last)

    async def _tls(self, policy: tls_rpt.PolicyInfo, result: str, host: str,
                   seen: Seen | None = None) -> None:
        """Count one TLS attempt for the recipient domain's daily TLS report."""
        if self._tls_results is not None:
            await self._tls_results.record(
                policy, result, mx=host, sending_ip=seen.sending_ip if seen else "",
                receiving_ip=seen.receiving_ip if seen else "")
