"""DANE for outbound SMTP (RFC 7672), end to end: TLSA and MX answers from a loopback
DNS server that marks them authentic (the AD bit) or not, and a receiving MX
(aiosmtpd with STARTTLS) whose certificate the records pin, or do not."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from letterlock.app import App
from letterlock.services.mail.dane import Dane, Tlsa, matches
from letterlock.services.mail.dkim_keys import DkimKeys
from letterlock.services.mail.outbound import OutboundQueue, OutboundSettings
from letterlock.services.operations.log_events import LogEvent
from letterlock.services.operations.tls_reports import TlsResults
from smtp.test_mta_sts import start_receiver
from smtp.test_smtp_outbound import submit, submitting_through
from support.dns_server import dns_server
from support.test_ca import TestCa

MX = "mx1.other.test"


def spki_sha256(pem: Path) -> str:
    cert = x509.load_pem_x509_certificate(pem.read_bytes())
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).hexdigest()


def test_dane_ee_matching() -> None:
    ca = TestCa(Path(__import__("tempfile").mkdtemp()))
    ca.server_context(MX)
    der = x509.load_pem_x509_certificate(ca.path.parent.joinpath(f"{MX}.pem").read_bytes()
                                         ).public_bytes(serialization.Encoding.DER)
    full = hashlib.sha512(der).digest()
    assert matches((Tlsa(3, 0, 2, full),), der)
    assert matches((Tlsa(3, 0, 0, der),), der)
    assert not matches((Tlsa(3, 0, 1, full[:32]),), der)
    assert not matches((Tlsa(2, 0, 2, full),), der)  # DANE-TA is not matched here


@contextlib.asynccontextmanager
async def dane_queue(app: App, mx_port: int, tlsa: str | list[str], *, secure: bool = True,
                     more: dict[tuple[str, str], list[str]] | None = None,
                     tls_results: TlsResults | None = None,
                     ) -> AsyncIterator[OutboundQueue]:
    """A queue whose MX for other.test is ``MX`` at ``mx_port`` with the TLSA records
    ``tlsa`` (and the records of ``more``), all signed where ``secure``; TLS sessions
    counted in ``tls_results``."""
    zone = {("other.test.", "MX"): [f"10 {MX}."],
            (f"_25._tcp.{MX}.", "TLSA"): [tlsa] if isinstance(tlsa, str) else tlsa,
            **(more or {})}
    signed = [name for name, _ in zone] if secure else []
    async with dns_server(zone, secure=signed) as resolver:
        settings = OutboundSettings(hostname="mx.example.test", port=mx_port,
                                    retry_base_s=0.2, retry_max_s=0.5, timeout_s=5)

        async def mx(domain: str) -> list[str]:
            return [MX]

        async def loopback(host: str) -> str:
            return "127.0.0.1"

        yield OutboundQueue(app.config.home, app.delivery, app.accounts,
                            DkimKeys(app.config.control_dir), settings, mx_lookup=mx,
                            dane=Dane(resolver), address_lookup=loopback,
                            tls_results=tls_results)


async def _deliver(app: App, tmp_path: Path, tlsa: str | None, *, secure: bool = True,
                   ) -> tuple[list[list[str]], OutboundQueue]:
    ca = TestCa(tmp_path / "ca")  # nobody trusts this CA: only DANE can vouch
    receiver, controller, port = start_receiver(ca.server_context(MX))
    record = tlsa or f"3 1 1 {spki_sha256(tmp_path / 'ca' / f'{MX}.pem')}"
    try:
        async with dane_queue(app, port, record, secure=secure) as queue, \
                submitting_through(app, tmp_path, queue) as world:
            assert await asyncio.to_thread(submit, world, ["carol@other.test"]) == {}
            await queue.wait_until(lambda es: not es or es[0].attempts >= 1)
    finally:
        controller.stop()
    return receiver.delivered, queue


async def test_certificate_pinned_by_a_dnssec_tlsa_record_is_delivered_to(
        accounts: App, tmp_path: Path) -> None:
    delivered, queue = await _deliver(accounts, tmp_path, None)
    assert delivered == [["carol@other.test"]] and queue.entries() == []


async def test_certificate_not_matching_the_tlsa_record_is_a_deferral(
        accounts: App, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="letterlock.events")
    delivered, queue = await _deliver(accounts, tmp_path, "3 1 1 " + "ab" * 32)
    assert delivered == []
    [entry] = queue.entries()
    assert entry.recipients[0].status == "4.7.5"
    assert entry.recipients[0].diagnostic == (
        f"DANE: the certificate of {MX} matches none of its TLSA records")
    fields: list[dict[str, Any]] = [
        r.ll_fields for r in caplog.records  # type: ignore[attr-defined]
        if getattr(r, "ll_event", None) == LogEvent.TLS_POLICY_FAILURE]
    assert [(f["policy"], f["result"], f["mx"]) for f in fields] == [
        ("tlsa", "validation-failure", MX)]


async def test_without_dnssec_dane_does_not_apply(accounts: App, tmp_path: Path) -> None:
    # The same wrong record, but not marked authentic: it is ignored.
    delivered, _ = await _deliver(accounts, tmp_path, "3 1 1 " + "ab" * 32, secure=False)
    assert delivered == [["carol@other.test"]]
