"""Inbound sender checks on the MX listener: DKIM (RFC 6376) and SPF (RFC 7208),
results in RFC 8601's Authentication-Results. Keys and policies come from a DNS
server on loopback, signatures are made with dkimpy, messages sent with smtplib."""

from __future__ import annotations

import asyncio
import smtplib
from collections.abc import AsyncIterator
from pathlib import Path

import dkim
import pytest

from letterlock.app import App
from letterlock.mime.headers import split_fields
from letterlock.mime.structure import header_end
from letterlock.services.mail import dkim_keys
from smtp.conftest import ALICE, World, start_world
from support.dns_server import dns_server

MESSAGE = (b"From: Carol <carol@remote.test>\r\nTo: alice@example.test\r\n"
           b"Subject: signed\r\nDate: Sat, 28 Nov 2026 05:00:00 +0000\r\n"
           b"Message-ID: <dkim1@remote.test>\r\n\r\nSigned by remote.test.\r\n")


def signed(key: dkim_keys.DkimKey, message: bytes = MESSAGE, selector: str = "s1",
           ) -> bytes:
    return bytes(dkim.sign(message, selector.encode(), b"remote.test", key.private_pem,
                           include_headers=[b"From", b"To", b"Subject", b"Date"])) + message


@pytest.fixture
async def signer_world(accounts: App, tmp_path: Path) -> AsyncIterator[tuple[World,
                                                                           dkim_keys.DkimKey]]:
    key = await asyncio.to_thread(dkim_keys.create_key, tmp_path / "remote", "remote.test",
                                  selector="s1")
    value = key.txt_value()
    chunks = " ".join(f'"{value[i:i + 255]}"' for i in range(0, len(value), 255))
    zone = {("s1._domainkey.remote.test.", "TXT"): [chunks],
            ("remote.test.", "TXT"): ['"v=spf1 ip4:127.0.0.0/8 -all"'],
            ("elsewhere.test.", "TXT"): ['"v=spf1 ip4:192.0.2.0/24 -all"']}
    async with dns_server(zone) as resolver:
        world = await start_world(accounts, tmp_path, dns_resolver=resolver)
        try:
            yield world, key
        finally:
            await world.server.close()


async def deliver(world: World, message: bytes,
                  sender: str = "carol@remote.test") -> list[bytes]:
    """Send ``message`` to alice; the Authentication-Results fields she got."""
    def send() -> None:
        with smtplib.SMTP("127.0.0.1", world.mx_port, timeout=10) as client:
            client.sendmail(sender, [ALICE], message)

    before = len(await world.inbox(ALICE))
    await asyncio.to_thread(send)
    stored = (await world.inbox(ALICE))[before]
    fields = split_fields(stored[:header_end(stored)])
    return [f.raw for f in fields if f.key == "authentication-results"]


async def test_results_for_good_bad_and_keyless_signatures(
        signer_world: tuple[World, dkim_keys.DkimKey]) -> None:
    world, key = signer_world
    [good] = await deliver(world, signed(key))
    assert good.startswith(b"Authentication-Results: mx.example.test;\r\n\t"
                           b"spf=pass smtp.mailfrom=carol@remote.test;\r\n\t")
    assert b"dkim=pass header.d=remote.test header.s=s1 header.b=" in good

    tampered = signed(key).replace(b"Signed by remote.test.", b"Signed by somebody else.")
    [bad] = await deliver(world, tampered)
    assert b"dkim=fail header.d=remote.test" in bad

    [keyless] = await deliver(world, signed(key, selector="gone"))  # NXDOMAIN
    assert b"dkim=permerror header.d=remote.test header.s=gone" in keyless

    # Two signatures, each reported.
    [both] = await deliver(world, signed(key, signed(key, selector="gone")))
    assert b"dkim=pass" in both and b"dkim=permerror" in both


async def test_unsigned_mail_and_forged_results(
        signer_world: tuple[World, dkim_keys.DkimKey]) -> None:
    world, _ = signer_world
    forged = (b"Authentication-Results: mx.example.test; dkim=pass header.d=bank.test\r\n"
              b"Authentication-Results: other.example;\r\n dkim=pass header.d=x.test\r\n"
              + MESSAGE)
    results = await deliver(world, forged, sender="carol@elsewhere.test")
    # Ours says none; the forged one in our name is gone; another server's is kept.
    assert results[0] == (b"Authentication-Results: mx.example.test;\r\n\t"
                          b"spf=fail smtp.mailfrom=carol@elsewhere.test;\r\n\tdkim=none;"
                          b"\r\n\tdmarc=none header.from=remote.test\r\n")
    assert not any(b"bank.test" in r for r in results)
    assert results[1:] == [b"Authentication-Results: other.example;\r\n dkim=pass "
                           b"header.d=x.test\r\n"]


async def test_malformed_signatures_are_permerror_and_mail_still_arrives(
        signer_world: tuple[World, dkim_keys.DkimKey]) -> None:
    world, _ = signer_world
    broken = b"DKIM-Signature: v=1; a=rsa-sha256; d=remote.test; s=s1; b=AAAA\r\n" + MESSAGE
    [result] = await deliver(world, broken)  # no bh= nor h=: not a valid signature
    assert b"dkim=permerror header.d=remote.test header.s=s1" in result
    nonsense = b"DKIM-Signature: d=..; s=\"; \r\n" + MESSAGE
    [result] = await deliver(world, nonsense, sender="")  # a bounce: SPF checks the HELO
    assert b"dkim=permerror" in result and b"spf=none smtp.helo=" in result
