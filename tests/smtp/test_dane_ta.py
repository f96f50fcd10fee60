"""DANE-TA (RFC 7672 3.1.2, usage 2) for outbound SMTP, end to end: a receiving MX
(aiosmtpd with STARTTLS) presents a chain from a local root through an intermediate
to its own certificate, and DNSSEC-validated TLSA records (the loopback DNS server of
test_dane) name one of those CAs as the trust anchor. Nobody trusts these CAs
otherwise: only the records can vouch."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import ssl
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from letterlock.app import App
from letterlock.services.mail.dane import (
    DaneMismatch,
    DaneRecords,
    Tlsa,
    authenticate,
    name_matches,
    peer_chain,
)
from letterlock.services.operations.log_events import LogEvent
from letterlock.services.operations.tls_reports import TlsResults
from letterlock.storage.tls_reports_sqlite import TlsReportStore
from smtp.test_dane import MX, dane_queue
from smtp.test_mta_sts import start_receiver
from smtp.test_smtp_outbound import submit, submitting_through
from support.test_ca import TestCa


def spki_sha256(ca: TestCa) -> str:
    spki = ca.cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).hexdigest()


def cert_sha256(ca: TestCa) -> str:
    return hashlib.sha256(ca.cert.public_bytes(serialization.Encoding.DER)).hexdigest()


class Cas:
    """A root, an intermediate it signed (the usual DANE-TA anchor) and a second
    intermediate of the same root that the records do not name."""

    def __init__(self, directory: Path) -> None:
        self.root = TestCa(directory / "root", name="test root")
        self.inter = TestCa(directory / "inter", issuer=self.root, name="test intermediate")
        self.other = TestCa(directory / "other", issuer=self.root, name="other intermediate")


async def _deliver(app: App, tmp_path: Path, server: ssl.SSLContext, *tlsa: str,
                   caplog: pytest.LogCaptureFixture,
                   more: dict[tuple[str, str], list[str]] | None = None,
                   tls_results: TlsResults | None = None,
                   ) -> tuple[list[list[str]], list[Any], list[tuple[str, str]]]:
    """Submit one message to carol@other.test, whose MX presents ``server``'s chain
    under the TLSA records ``tlsa`` (``more``: other DNS records): what the MX
    received, the queue left, and the (result, reason) of each tls:policy:failure
    line."""
    caplog.set_level(logging.INFO, logger="letterlock.events")
    receiver, controller, port = start_receiver(server)
    try:
        async with dane_queue(app, port, list(tlsa), more=more,
                              tls_results=tls_results) as queue, \
                submitting_through(app, tmp_path, queue) as world:
            assert await asyncio.to_thread(submit, world, ["carol@other.test"]) == {}
            await queue.wait_until(lambda es: not es or es[0].attempts >= 1)
    finally:
        controller.stop()
    failures = [(r.ll_fields["result"], r.ll_fields["reason"])  # type: ignore[attr-defined]
                for r in caplog.records
                if getattr(r, "ll_event", None) == LogEvent.TLS_POLICY_FAILURE]
    return receiver.delivered, queue.entries(), failures


def _deferred(entries: list[Any], reason: str) -> None:
    [entry] = entries
    assert entry.recipients[0].status == "4.7.5"
    assert entry.recipients[0].diagnostic == f"DANE: {reason}"


async def test_leaf_under_the_intermediate_named_by_spki_is_delivered_to(
        accounts: App, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cas = Cas(tmp_path / "ca")
    delivered, left, failures = await _deliver(
        accounts, tmp_path, cas.inter.server_context(MX, chain=[cas.inter]),
        f"2 1 1 {spki_sha256(cas.inter)}", caplog=caplog)
    assert delivered == [["carol@other.test"]] and left == [] and failures == []


async def test_chain_without_the_trust_anchor_is_a_deferral(
        accounts: App, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cas = Cas(tmp_path / "ca")  # the leaf alone: the anchor's key is not shown
    delivered, left, failures = await _deliver(
        accounts, tmp_path, cas.inter.server_context(MX),
        f"2 1 1 {spki_sha256(cas.inter)}", caplog=caplog)
    reason = (f"no certificate in the chain {MX} presented matches its DANE-TA "
              "records (the server must send the trust anchor)")
    assert delivered == []
    _deferred(left, reason)
    assert failures == [("validation-failure", reason)]


async def test_leaf_without_the_mx_name_is_a_deferral(
        accounts: App, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cas = Cas(tmp_path / "ca")
    delivered, left, failures = await _deliver(
        accounts, tmp_path, cas.inter.server_context("mx9.elsewhere.test", chain=[cas.inter]),
        f"2 1 1 {spki_sha256(cas.inter)}", caplog=caplog)
    reason = f"the certificate of {MX} names none of {MX}"
    assert delivered == []
    _deferred(left, reason)
    assert failures == [("certificate-host-mismatch", reason)]


async def test_leaf_not_signed_by_the_trust_anchor_is_a_deferral(
        accounts: App, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cas = Cas(tmp_path / "ca")  # issued by the other intermediate, shown with the anchor
    delivered, left, failures = await _deliver(
        accounts, tmp_path, cas.other.server_context(MX, chain=[cas.inter]),
        f"2 1 1 {spki_sha256(cas.inter)}", caplog=caplog)
    reason = (f"the chain of {MX} does not lead to its DANE-TA anchor: the leaf is not "
              "signed by another certificate the server sent")
    assert delivered == []
    _deferred(left, reason)
    assert failures == [("validation-failure", reason)]


async def test_root_named_by_full_certificate_is_delivered_to(
        accounts: App, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cas = Cas(tmp_path / "ca")  # leaf -> intermediate -> root, the root the anchor
    delivered, left, failures = await _deliver(
        accounts, tmp_path, cas.inter.server_context(MX, chain=[cas.inter, cas.root]),
        f"2 0 1 {cert_sha256(cas.root)}", caplog=caplog)
    assert delivered == [["carol@other.test"]] and left == [] and failures == []


async def test_chain_out_of_order_with_an_extra_certificate_is_delivered_to(
        accounts: App, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cas = Cas(tmp_path / "ca")  # TLS 1.3 lets the server send its CAs in any order
    delivered, left, failures = await _deliver(
        accounts, tmp_path,
        cas.inter.server_context(MX, chain=[cas.root, cas.other, cas.inter]),
        f"2 0 1 {cert_sha256(cas.root)}", caplog=caplog)
    assert delivered == [["carol@other.test"]] and left == [] and failures == []


async def test_mixed_rrset_is_satisfied_by_any_usable_record(
        accounts: App, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cas = Cas(tmp_path / "ca")  # a stale DANE-EE record and a PKIX one beside the anchor
    delivered, left, failures = await _deliver(
        accounts, tmp_path, cas.inter.server_context(MX, chain=[cas.inter]),
        "3 1 1 " + "ab" * 32, f"0 1 1 {spki_sha256(cas.root)}",
        f"2 1 1 {spki_sha256(cas.inter)}", caplog=caplog)
    assert delivered == [["carol@other.test"]] and left == [] and failures == []


async def test_expired_leaf_under_the_anchor_is_a_deferral(
        accounts: App, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cas = Cas(tmp_path / "ca")
    delivered, left, failures = await _deliver(
        accounts, tmp_path, cas.inter.server_context(MX, expired=True, chain=[cas.inter]),
        f"2 1 1 {spki_sha256(cas.inter)}", caplog=caplog)
    reason = f"a certificate of {MX} below its DANE-TA anchor is expired"
    assert delivered == []
    _deferred(left, reason)
    assert failures == [("certificate-expired", reason)]


async def test_only_unusable_records_mean_tls_without_authentication(
        accounts: App, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # PKIX-TA and PKIX-EE (RFC 7672 3.1.3) and an unknown selector: none usable. The
    # certificate is nobody's, yet delivery goes on over TLS, counted as tlsa-invalid.
    cas = Cas(tmp_path / "ca")
    delivered, left, failures = await _deliver(
        accounts, tmp_path, cas.other.server_context("nobody.test"),
        f"0 1 1 {spki_sha256(cas.root)}", "1 1 1 " + "cd" * 32, "3 7 1 " + "ef" * 32,
        caplog=caplog)
    assert delivered == [["carol@other.test"]] and left == []
    assert failures == [("tlsa-invalid", "no usable TLSA record: delivered over TLS "
                         "without authentication")]


def test_no_chain_accessor_fails_closed(tmp_path: Path) -> None:
    class OldSsl:  # an ssl object that cannot show the chain
        _sslobj = object()

    with pytest.raises(DaneMismatch) as caught:
        peer_chain(OldSsl())  # type: ignore[arg-type]
    assert caught.value.result == "validation-failure"
    assert "cannot be checked" in caught.value.reason
    # and a DANE-TA record is then not satisfied, though the leaf is fine
    cas = Cas(tmp_path / "ca")
    cas.inter.server_context(MX, chain=[cas.inter])
    leaf = ssl.PEM_cert_to_DER_cert((tmp_path / "ca" / "inter" / f"{MX}.pem")
                                    .read_text().split("-----END CERTIFICATE-----")[0]
                                    + "-----END CERTIFICATE-----\n")
    records = DaneRecords(MX, (Tlsa(2, 1, 1, bytes.fromhex(spki_sha256(cas.inter))),))
    with pytest.raises(DaneMismatch):
        authenticate(records, leaf, lambda: peer_chain(OldSsl()))  # type: ignore[arg-type]


def test_reference_identifier_matching() -> None:
    assert name_matches("*.other.test", "mx1.other.test")
    assert name_matches("MX1.Other.Test.", "mx1.other.test")
    assert not name_matches("*.other.test", "a.mx1.other.test")
    assert not name_matches("*.test", "other.test")  # no wildcard over a bare TLD
    assert not name_matches("mx*.other.test", "mx1.other.test")
    assert DaneRecords("MX1.other.test.", (), "mail.example.test").names == (
        "mail.example.test", "mx1.other.test")


async def test_tlsa_base_domain_after_a_cname_is_a_reference_identifier(
        accounts: App, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # The MX host is a (DNSSEC-validated) alias of a hoster's name; the TLSA records
    # are at the hoster's name and the leaf carries only that name (RFC 7672 2.2.2,
    # 3.2.2). The records at the MX's own name would refuse it: they are not used.
    cas = Cas(tmp_path / "ca")
    more = {(f"{MX}.", "CNAME"): ["smtp.hoster.test."],
            ("smtp.hoster.test.", "A"): ["127.0.0.1"],
            ("_25._tcp.smtp.hoster.test.", "TLSA"): [f"2 1 1 {spki_sha256(cas.inter)}"]}
    delivered, left, failures = await _deliver(
        accounts, tmp_path, cas.inter.server_context("smtp.hoster.test", chain=[cas.inter]),
        "3 1 1 " + "ab" * 32, caplog=caplog, more=more)
    assert delivered == [["carol@other.test"]] and left == [] and failures == []


@pytest.mark.parametrize(("case", "result"), [
    ("anchored", ""), ("other-name", "certificate-host-mismatch"),
    ("unusable", "tlsa-invalid")])
async def test_sessions_are_counted_for_tls_reports_by_their_result(
        accounts: App, tmp_path: Path, caplog: pytest.LogCaptureFixture,
        case: str, result: str) -> None:
    cas = Cas(tmp_path / "ca")
    name = "mx9.elsewhere.test" if case == "other-name" else MX
    record = f"{'0' if case == 'unusable' else '2'} 1 1 {spki_sha256(cas.inter)}"
    store = TlsReportStore(accounts.config.control_dir)
    try:
        await _deliver(accounts, tmp_path, cas.inter.server_context(name, chain=[cas.inter]),
                       record, caplog=caplog, tls_results=TlsResults(store))
        [counted] = await store.sessions(dt.datetime.now(dt.UTC).date(), "other.test")
    finally:
        await store.close()
    assert (counted.policy_type, counted.strings, counted.result, counted.receiving_mx,
            counted.count) == ("tlsa", (record,), result, MX, 1)


def test_a_server_certificate_cannot_issue_and_garbage_is_no_certificate(
        tmp_path: Path) -> None:
    # root (the anchor) -> a server certificate (no CA) -> a leaf that one signed
    cas = Cas(tmp_path / "ca")
    cas.root.server_context("not-a-ca.test")
    pem = (tmp_path / "ca" / "root")
    issuer = x509.load_pem_x509_certificate((pem / "not-a-ca.test.pem").read_bytes())
    issuer_key = serialization.load_pem_private_key(
        (pem / "not-a-ca.test.key").read_bytes(), None)
    assert isinstance(issuer_key, ec.EllipticCurvePrivateKey)
    now = dt.datetime.now(dt.UTC)
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, MX)]))
            .issuer_name(issuer.subject)
            .public_key(ec.generate_private_key(ec.SECP256R1()).public_key())
            .serial_number(1).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .sign(issuer_key, hashes.SHA256()))
    chain = [c.public_bytes(serialization.Encoding.DER) for c in (leaf, issuer, cas.root.cert)]
    records = DaneRecords(MX, (Tlsa(2, 0, 1, bytes.fromhex(cert_sha256(cas.root))),), MX)
    with pytest.raises(DaneMismatch) as caught:
        authenticate(records, chain[0], lambda: chain)
    assert (caught.value.result, caught.value.reason) == (
        "validation-failure",
        f"the chain of {MX} does not lead to its DANE-TA anchor: certificate 1 is not a CA")
    with pytest.raises(DaneMismatch) as caught:
        authenticate(records, b"\x30\x03junk", lambda: chain)
    assert caught.value.reason == f"{MX} showed no certificate that parses"
