"""FETCH answers the same whether a message is read the slow way (its own summary,
one key agreement) or from its window's sealed digest pack: every item that digests
serve, in plain and in UTF8=ACCEPT sessions."""

from __future__ import annotations

import pytest
from imap_script import Imap

MULTIPART = (
    b"From: =?utf-8?q?J=C3=BCrgen?= <j@example.test>\r\nTo: alice@example.test\r\n"
    + "Subject: Grüße aus Köln\r\n".encode()
    + b"Date: Tue, 2 Jan 2024 10:00:00 +0000\r\nMessage-ID: <m1@example.test>\r\n"
    b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n"
    b"--XX\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHallo\r\n"
    b"--XX\r\nContent-Type: application/octet-stream; name=\"a.bin\"\r\n"
    b"Content-Disposition: attachment; filename=\"a.bin\"\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\nAAEC\r\n--XX--\r\n")
PLAIN = (b"From: Ann <ann@example.test>\r\nTo: alice@example.test\r\nSubject: plain\r\n"
         b"\r\nJust text.\r\n")
ITEMS = ("(UID FLAGS ENVELOPE BODYSTRUCTURE BODY RFC822.SIZE INTERNALDATE "
         "RFC822.HEADER BODY.PEEK[HEADER] BODY.PEEK[HEADER.FIELDS (Subject From)] "
         "BODY.PEEK[HEADER.FIELDS.NOT (To)] BODY.PEEK[1] BODY.PEEK[2.MIME] "
         "BODY.PEEK[HEADER]<0.20> BINARY.SIZE[2])")


@pytest.mark.parametrize("enable", [None, "UTF8=ACCEPT"])
async def test_fetch_from_packs_equals_fetch_from_summaries(imap: Imap,
                                                            enable: str | None) -> None:
    ref = await imap.app.accounts.resolve(imap.user)
    for raw in (MULTIPART, PLAIN, MULTIPART.replace(b"m1@", b"m2@")):
        await imap.app.mailboxes.append(ref, "INBOX", raw)

    async def fetch_all() -> list[bytes]:
        client = await imap.session()
        if enable:
            await client.command("e", f"ENABLE {enable}")
        await client.command("s", "SELECT INBOX")
        lines = await client.command("f", f"UID FETCH 1:* {ITEMS}")
        await client.close()
        assert lines[-1].startswith(b"f OK"), lines
        return lines

    store = imap.app.cells.get("us-east").store
    box = (await store.get_mailbox(ref.record.id, "INBOX")).id
    assert await store.get_digest_packs(box, 1, 100) == []
    claim = await imap.session("INBOX")  # takes \\Recent, so both reads see the same
    await claim.close()
    first = await fetch_all()  # every message opened the slow way, the pack written
    await imap.app.mailboxes.digests.flush()
    assert len(await store.get_digest_packs(box, 1, 100)) == 1
    second = await fetch_all()
    assert second == first
    text = b"\n".join(first)
    assert b'"a.bin"' in text and b"BINARY.SIZE[2] 3" in text
    if enable:
        assert "Grüße aus Köln".encode() in text
