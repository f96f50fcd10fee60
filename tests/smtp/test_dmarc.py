"""DMARC (RFC 7489) and ARC (RFC 8617) on the MX listener: policies, keys and SPF
records come from a DNS server on loopback, signatures and ARC seals are made with
dkimpy, messages are sent with smtplib, and what was stored is read back with the
account key."""

from __future__ import annotations

import asyncio
import logging
import smtplib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import dkim
import dns.asyncresolver
import pytest

from letterlock.app import App
from letterlock.config import SmtpConfig
from letterlock.mime.headers import split_fields
from letterlock.mime.structure import header_end
from letterlock.services.mail import dkim_keys
from letterlock.services.operations.log_events import EVENTS_LOGGER, LogEvent
from letterlock.smtp.server import SmtpServer
from smtp.conftest import ALICE, server_tls
from support.dns_server import dns_server
from support.env import PASSWORD


def message(author: str, subject: str = "Your statement", mid: str = "m1") -> bytes:
    return (f"From: Bank <{author}>\r\nTo: {ALICE}\r\nSubject: {subject}\r\n"
            f"Date: Sat, 05 Dec 2026 09:00:00 +0000\r\nMessage-ID: <{mid}@bank.test>\r\n"
            f"\r\nYour statement is ready.\r\n").encode()


def sign(key: dkim_keys.DkimKey, msg: bytes, domain: str, selector: str = "s1") -> bytes:
    return bytes(dkim.sign(msg, selector.encode(), domain.encode(), key.private_pem,
                           include_headers=[b"From", b"To", b"Subject", b"Date"])) + msg


def txt(value: str) -> str:
    return " ".join(f'"{value[i:i + 255]}"' for i in range(0, len(value), 255))


@dataclass
class Mx:
    port: int
    app: App
    server: SmtpServer
    bank_key: dkim_keys.DkimKey
    list_key: dkim_keys.DkimKey

    def send(self, msg: bytes, sender: str) -> None:
        with smtplib.SMTP("127.0.0.1", self.port, timeout=10) as client:
            client.sendmail(sender, [ALICE], msg)

    async def folder(self, name: str) -> list[bytes]:
        session = await self.app.accounts.authenticate(ALICE, PASSWORD)
        box = await self.app.mailboxes.get_mailbox(session, name)
        msgs = await self.app.mailboxes.messages(session, box.id)
        bodies = await self.app.mailboxes.bodies(session, msgs)
        return [bodies[m.uid] for m in msgs]


async def start_mx(app: App, tmp: Path, resolver: dns.asyncresolver.Resolver,
                   **options: object) -> tuple[SmtpServer, int]:
    config = SmtpConfig(port=0, submission_port=0, **options)  # type: ignore[arg-type]
    server = SmtpServer(app.delivery, app.accounts, None, config, "mx.example.test",
                        server_tls(tmp), lmtp=False, dns_resolver=resolver)
    ports = await server.start()
    return server, ports.mx


@pytest.fixture
async def keys(tmp_path: Path) -> tuple[dkim_keys.DkimKey, dkim_keys.DkimKey]:
    bank = await asyncio.to_thread(dkim_keys.create_key, tmp_path / "bank", "bank.test",
                                   selector="s1")
    lists = await asyncio.to_thread(dkim_keys.create_key, tmp_path / "lists", "lists.test",
                                    selector="s1")
    return bank, lists


def zone(bank: dkim_keys.DkimKey, lists: dkim_keys.DkimKey) -> dict[tuple[str, str], list[str]]:
    return {
        ("s1._domainkey.bank.test.", "TXT"): [txt(bank.txt_value())],
        ("s1._domainkey.lists.test.", "TXT"): [txt(lists.txt_value())],
        ("_dmarc.bank.test.", "TXT"): ['"v=DMARC1; p=reject; sp=quarantine"'],
        ("_dmarc.soft.test.", "TXT"): ['"v=DMARC1; p=quarantine"'],
        ("_dmarc.sample.test.", "TXT"): ['"v=DMARC1; p=reject; pct=0"'],
        ("_dmarc.strict.test.", "TXT"): ['"v=DMARC1; p=reject; aspf=s"'],
        ("_dmarc.lists.test.", "TXT"): ['"v=DMARC1; p=none"'],
        # SPF: this host (127.0.0.1) may send for these; remote.test for nobody.
        ("lists.test.", "TXT"): ['"v=spf1 ip4:127.0.0.0/8 -all"'],
        ("mail.strict.test.", "TXT"): ['"v=spf1 ip4:127.0.0.0/8 -all"'],
        ("bank.test.", "TXT"): ['"v=spf1 ip4:127.0.0.0/8 -all"'],
        ("remote.test.", "TXT"): ['"v=spf1 -all"'],
    }


@pytest.fixture
async def mx(accounts: App, tmp_path: Path,
             keys: tuple[dkim_keys.DkimKey, dkim_keys.DkimKey]) -> AsyncIterator[Mx]:
    async with dns_server(zone(*keys)) as resolver:
        server, port = await start_mx(accounts, tmp_path, resolver,
                                      arc_trusted_sealers="lists.test, other.test")
        try:
            yield Mx(port, accounts, server, *keys)
        finally:
            await server.close()


def auth_results(stored: bytes) -> bytes:
    fields = split_fields(stored[:header_end(stored)])
    return next(f.raw for f in fields if f.key == "authentication-results")


def dmarc_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    return [dict(r.ll_fields) for r in caplog.records  # type: ignore[attr-defined]
            if getattr(r, "ll_event", None) is LogEvent.DMARC_EVALUATED]


async def test_p_reject_refuses_a_forged_author_after_data(
        mx: Mx, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=EVENTS_LOGGER)
    with pytest.raises(smtplib.SMTPDataError) as refused:
        await asyncio.to_thread(mx.send, message("alerts@bank.test"), "crook@remote.test")
    assert refused.value.smtp_code == 550
    assert refused.value.smtp_error.startswith(b"5.7.1 ")
    assert await mx.folder("INBOX") == [] and await mx.folder("Junk") == []
    [line] = dmarc_lines(caplog)
    assert line["domain"] == "bank.test" and line["result"] == "fail"
    assert line["policy"] == "reject" and line["disposition"] == "reject"


async def test_aligned_dkim_or_spf_passes(mx: Mx) -> None:
    # Relaxed alignment: a signature by bank.test covers a From: of a subdomain (whose
    # policy is found at the organisational domain, sp= applying).
    await asyncio.to_thread(mx.send, sign(mx.bank_key, message("news@mail.bank.test"),
                                          "bank.test"), "bounces@remote.test")
    # SPF alone: MAIL FROM in bank.test, sent from an address it allows.
    await asyncio.to_thread(mx.send, message("alerts@bank.test", mid="m2"),
                            "bounces@bank.test")
    first, second = await mx.folder("INBOX")
    assert b"dkim=pass header.d=bank.test" in auth_results(first)
    assert b"dmarc=pass (p=quarantine dis=none) header.from=mail.bank.test" \
        in auth_results(first)
    assert b"spf=pass smtp.mailfrom=bounces@bank.test" in auth_results(second)
    assert b"dmarc=pass (p=reject dis=none) header.from=bank.test" in auth_results(second)


async def test_strict_spf_alignment_wants_the_same_domain(mx: Mx) -> None:
    with pytest.raises(smtplib.SMTPDataError):  # mail.strict.test passes SPF, but aspf=s
        await asyncio.to_thread(mx.send, message("ceo@strict.test"), "x@mail.strict.test")


async def test_quarantine_and_a_sampled_out_reject_go_to_junk(mx: Mx) -> None:
    await asyncio.to_thread(mx.send, message("offers@soft.test"), "crook@remote.test")
    # pct=0: no message is in the sample, so reject steps down to quarantine.
    await asyncio.to_thread(mx.send, message("offers@sample.test", mid="m2"),
                            "crook@remote.test")
    assert await mx.folder("INBOX") == []
    soft, sampled = await mx.folder("Junk")
    assert b"dmarc=fail (p=quarantine dis=quarantine) header.from=soft.test" \
        in auth_results(soft)
    assert b"dmarc=fail (p=reject dis=quarantine) header.from=sample.test" \
        in auth_results(sampled)


async def test_a_second_author_cannot_dilute_a_reject(mx: Mx) -> None:
    two = message("alerts@bank.test").replace(
        b"From: Bank <alerts@bank.test>", b"From: Bank <alerts@bank.test>, <me@lists.test>")
    with pytest.raises(smtplib.SMTPDataError):
        await asyncio.to_thread(mx.send, two, "crook@remote.test")


def forwarded_by_list(mx: Mx) -> bytes:
    """bank.test's signed message as a mailing list passes it on: it tags the subject
    (breaking the signature), records what it saw and ARC-seals it."""
    original = sign(mx.bank_key, message("alerts@bank.test"), "bank.test")
    changed = original.replace(b"Subject: Your statement", b"Subject: [list] Your statement")
    seen = (b"Authentication-Results: lists.test; dkim=pass header.d=bank.test;"
            b" spf=pass smtp.mailfrom=bounces@bank.test; dmarc=pass header.from=bank.test\r\n")
    arc_set = dkim.arc_sign(seen + changed, b"s1", b"lists.test", mx.list_key.private_pem,
                            b"lists.test")
    assert arc_set, "dkimpy made no ARC set"
    return b"".join(arc_set) + seen + changed


async def test_a_trusted_arc_chain_overrides_a_dmarc_failure(
        mx: Mx, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=EVENTS_LOGGER)
    await asyncio.to_thread(mx.send, forwarded_by_list(mx), "list-bounces@lists.test")
    [stored] = await mx.folder("INBOX")
    results = auth_results(stored)
    assert b"dkim=fail header.d=bank.test" in results
    assert b"dmarc=fail (p=reject dis=reject; overridden by ARC from lists.test)" in results
    assert b"arc=pass (i=1 as.d=lists.test)" in results
    [line] = dmarc_lines(caplog)
    assert line["disposition"] == "none" and line["sealer"] == "lists.test"
    assert line["arc"] == "pass"


async def test_an_untrusted_or_broken_arc_chain_does_not(
        mx: Mx, accounts: App, tmp_path: Path) -> None:
    forwarded = forwarded_by_list(mx)
    # The same chain, but lists.test is not trusted by this server.
    async with dns_server(zone(mx.bank_key, mx.list_key)) as resolver:
        server, port = await start_mx(accounts, tmp_path / "b", resolver)
        untrusting = Mx(port, accounts, server, mx.bank_key, mx.list_key)
        try:
            with pytest.raises(smtplib.SMTPDataError) as refused:
                await asyncio.to_thread(untrusting.send, forwarded, "list-bounces@lists.test")
            assert refused.value.smtp_code == 550
        finally:
            await server.close()
    # Trusted, but the sealed message was changed after sealing: the chain fails.
    tampered = forwarded.replace(b"Your statement is ready.", b"Send us your password.")
    with pytest.raises(smtplib.SMTPDataError):
        await asyncio.to_thread(mx.send, tampered, "list-bounces@lists.test")
    assert await mx.folder("INBOX") == []


async def test_dmarc_off_only_reports_spf_and_dkim(
        accounts: App, tmp_path: Path,
        keys: tuple[dkim_keys.DkimKey, dkim_keys.DkimKey]) -> None:
    async with dns_server(zone(*keys)) as resolver:
        server, port = await start_mx(accounts, tmp_path, resolver, dmarc=False)
        plain = Mx(port, accounts, server, *keys)
        try:
            await asyncio.to_thread(plain.send, message("alerts@bank.test"),
                                    "crook@remote.test")
        finally:
            await server.close()
    [stored] = await plain.folder("INBOX")
    assert b"dmarc=" not in auth_results(stored)
