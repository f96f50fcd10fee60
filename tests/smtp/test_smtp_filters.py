"""Filters at delivery (issue 16 point 3): mail over real SMTP (MX) and LMTP
(smtplib) runs the recipient's active Sieve script: fileinto with imap4flags lands in
the folder with its flags (seen over real IMAP, imaplib), :copy keeps one in INBOX too,
redirect and vacation go to the outbound queue (a recording queue: the real queue's
delivery is tested elsewhere), vacation once per sender, reject answers 550 5.7.1 at
SMTP and per recipient at LMTP, discard stores nothing, +detail and aliases give the
script the RCPT address, a broken delivery copy keeps the message in INBOX, and the
script is nowhere in the data directory in the clear."""

from __future__ import annotations

import asyncio
import imaplib
import logging
import smtplib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from letterlock.config import ImapConfig
from letterlock.errors import UnknownMailbox
from letterlock.imap.server import ImapServer
from letterlock.services.accounts.accounts import AccountRef
from smtp.conftest import ALICE, BOB, World
from support.env import PASSWORD


class RecordingQueue:
    """Stands in for the outbound queue: what filters hand it."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, list[str], bytes]] = []

    async def submit(self, sender: AccountRef, mail_from: str, recipients: Sequence[str],
                     message: bytes, *, sign_for: str | None = None) -> str:
        self.sent.append((sender.address, mail_from, list(recipients), message))
        return f"q{len(self.sent)}"


@pytest.fixture
async def filtered(world: World) -> AsyncIterator[tuple[World, RecordingQueue]]:
    queue = RecordingQueue()
    assert world.app.delivery.filters is not None
    world.app.delivery.filters.attach_outbound(queue)
    yield world, queue


async def use_script(world: World, text: str, account: str = ALICE) -> None:
    session = await world.app.accounts.authenticate(account, PASSWORD)
    await world.app.filters.put(session, "main", text, via="test")
    await world.app.filters.activate(session, "main", via="test")


def mx_send(port: int, rcpts: list[str], subject: str, sender: str = "carol@remote.test",
            ) -> dict[str, tuple[int, bytes]]:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        return client.sendmail(sender, rcpts, (
            f"From: <{sender}>\r\nTo: <{rcpts[0]}>\r\nSubject: {subject}\r\n"
            "Message-ID: <m1@remote.test>\r\n\r\nHello\r\n").encode())


async def folder(world: World, name: str, account: str = ALICE,
                 ) -> list[tuple[frozenset[str], bytes]]:
    session = await world.app.accounts.authenticate(account, PASSWORD)
    try:
        box = await world.app.mailboxes.get_mailbox(session, name)
    except UnknownMailbox:
        return []
    msgs = await world.app.mailboxes.messages(session, box.id)
    bodies = await world.app.mailboxes.bodies(session, msgs)
    return [(m.flags, bodies[m.uid]) for m in msgs]


def imap_flags(port: int, mailbox: str) -> list[bytes]:
    with imaplib.IMAP4("127.0.0.1", port) as client:
        client.login(ALICE, PASSWORD)
        client.select(mailbox)
        _, data = client.fetch("1:*", "(FLAGS)")
        return [d for d in data if isinstance(d, bytes)]


async def test_fileinto_with_flags_seen_over_imap(filtered: tuple[World, RecordingQueue],
                                                  tmp_path: Path) -> None:
    world, _ = filtered
    await use_script(world, 'require ["fileinto", "imap4flags", "mailbox"];\r\n'
                     'if header :contains "subject" "invoice" {\r\n'
                     '  fileinto :create :flags "\\\\Flagged" "Bills";\r\n}\r\n')
    assert await asyncio.to_thread(mx_send, world.mx_port, [ALICE], "Your invoice") == {}
    assert await asyncio.to_thread(mx_send, world.mx_port, [ALICE], "Lunch") == {}
    bills, inbox = await folder(world, "Bills"), await folder(world, "INBOX")
    assert [b"invoice" in body for _, body in bills] == [True]
    assert [b"Lunch" in body for _, body in inbox] == [True]
    imap = ImapServer(world.app.accounts, world.app.mailboxes, ImapConfig(), None)
    await imap.start("127.0.0.1", 0)
    try:
        assert imap.port is not None
        fetched = await asyncio.to_thread(imap_flags, imap.port, "Bills")
    finally:
        await imap.close()
    assert len(fetched) == 1 and b"\\Flagged" in fetched[0]


async def test_copy_and_missing_folder(filtered: tuple[World, RecordingQueue]) -> None:
    world, _ = filtered
    await use_script(world, 'require ["fileinto", "copy"];\r\n'
                     'fileinto :copy "Kept";\r\nfileinto "Nowhere";\r\n')
    session = await world.app.accounts.authenticate(ALICE, PASSWORD)
    await world.app.mailboxes.create_mailbox(session, "Kept")
    assert await asyncio.to_thread(mx_send, world.mx_port, [ALICE], "hi") == {}
    # "Nowhere" does not exist: kept in INBOX (as Pigeonhole does); :copy adds Archive.
    assert len(await folder(world, "Kept")) == 1
    assert len(await folder(world, "INBOX")) == 1


async def test_redirect_goes_to_the_queue_with_a_loop_guard(
        filtered: tuple[World, RecordingQueue]) -> None:
    world, queue = filtered
    await use_script(world, 'redirect "dave@elsewhere.test";\r\n')
    assert await asyncio.to_thread(mx_send, world.mx_port, [ALICE], "fwd me") == {}
    assert [(a, f, r) for a, f, r, _ in queue.sent] == [
        (ALICE, "carol@remote.test", ["dave@elsewhere.test"])]
    assert queue.sent[0][3].startswith(b"X-Letterlock-Sieve-Redirected: " + ALICE.encode())
    assert await folder(world, "INBOX") == []  # redirect cancels the implicit keep


async def test_reject_is_a_550_at_smtp_and_per_recipient_at_lmtp(
        filtered: tuple[World, RecordingQueue]) -> None:
    world, _ = filtered
    await use_script(world, 'require "reject";\r\nreject "I do not take mail from you";\r\n')
    with pytest.raises(smtplib.SMTPDataError) as refused:
        await asyncio.to_thread(mx_send, world.mx_port, [ALICE], "hello")
    assert refused.value.smtp_code == 550
    assert b"5.7.1 I do not take mail from you" in refused.value.smtp_error
    assert world.lmtp_port is not None
    replies = await asyncio.to_thread(lmtp_send, world.lmtp_port, [ALICE, BOB])
    assert replies[0][0] == 550 and b"I do not take mail" in replies[0][1]
    assert replies[1][0] == 250
    assert await folder(world, "INBOX") == [] and len(await folder(world, "INBOX", BOB)) == 1


def lmtp_send(port: int, rcpts: list[str]) -> list[tuple[int, bytes]]:
    with smtplib.LMTP("127.0.0.1", port, timeout=10) as client:
        client.ehlo("mta.example.test")
        client.mail("carol@remote.test")
        for rcpt in rcpts:
            assert client.rcpt(rcpt)[0] == 250
        client.putcmd("data")
        assert client.getreply()[0] == 354
        client.send(b"Subject: hi\r\n\r\nbody\r\n.\r\n")
        return [client.getreply() for _ in rcpts]


async def test_discard_stores_nothing(filtered: tuple[World, RecordingQueue]) -> None:
    world, _ = filtered
    await use_script(world, 'if envelope :all :is "from" "carol@remote.test" { discard; }\r\n'
                     .replace("if envelope", 'require "envelope";\r\nif envelope'))
    assert await asyncio.to_thread(mx_send, world.mx_port, [ALICE], "spam") == {}
    assert await folder(world, "INBOX") == []
    assert await asyncio.to_thread(mx_send, world.mx_port, [ALICE], "ok",
                                   "erin@remote.test") == {}
    assert len(await folder(world, "INBOX")) == 1


async def test_vacation_once_per_sender(filtered: tuple[World, RecordingQueue]) -> None:
    world, queue = filtered
    await use_script(world, 'require "vacation";\r\n'
                     'vacation :days 7 :addresses ["alice@example.test"] "Away until May.";\r\n')
    for _ in range(2):
        assert await asyncio.to_thread(mx_send, world.mx_port, [ALICE], "Meeting") == {}
    assert await asyncio.to_thread(mx_send, world.mx_port, [ALICE], "Meeting",
                                   "erin@remote.test") == {}
    assert [(f, r) for _, f, r, _ in queue.sent] == [
        ("", ["carol@remote.test"]), ("", ["erin@remote.test"])]
    reply = queue.sent[0][3]
    assert b"Auto-Submitted: auto-replied" in reply and b"Subject: Auto: Meeting" in reply
    assert b"In-Reply-To: <m1@remote.test>" in reply and b"Away until May." in reply
    assert len(await folder(world, "INBOX")) == 3  # vacation keeps the mail too


async def test_detail_address_reaches_the_script(
        filtered: tuple[World, RecordingQueue]) -> None:
    world, _ = filtered
    await world.app.addresses.add_alias("billing@example.test", ALICE)
    await use_script(world, 'require ["envelope", "fileinto", "subaddress", "mailbox"];\r\n'
                     'if envelope :detail "to" "lists" { fileinto :create "Lists"; }\r\n'
                     'elsif envelope :localpart "to" "billing" '
                     '{ fileinto :create "Billing"; }\r\n')
    assert await asyncio.to_thread(mx_send, world.mx_port, ["alice+lists@example.test"],
                                   "a list") == {}
    assert await asyncio.to_thread(mx_send, world.mx_port, ["billing@example.test"],
                                   "a bill") == {}
    assert len(await folder(world, "Lists")) == 1
    assert len(await folder(world, "Billing")) == 1


async def test_broken_delivery_copy_keeps_the_mail(
        filtered: tuple[World, RecordingQueue], caplog: pytest.LogCaptureFixture) -> None:
    world, _ = filtered
    await use_script(world, 'discard;\r\n')
    ref = await world.app.accounts.resolve_for_delivery(ALICE)
    store = world.app.filters.store(ref.region)
    record = await store.active(ALICE)
    assert record is not None and record.delivery is not None
    broken = bytearray(record.delivery)
    broken[-1] ^= 1
    await store.activate(ALICE, "main", bytes(broken))
    with caplog.at_level(logging.INFO, logger="letterlock.events"):
        assert await asyncio.to_thread(mx_send, world.mx_port, [ALICE], "keep me") == {}
    assert len(await folder(world, "INBOX")) == 1
    assert any(r.getMessage() == "mail:filter:failed" for r in caplog.records)


async def test_no_script_plaintext_at_rest(filtered: tuple[World, RecordingQueue]) -> None:
    world, _ = filtered
    await use_script(world, 'if header :contains "subject" "xylophonequartz" { discard; }\r\n')
    found = [p for p in world.app.config.home.rglob("*") if p.is_file()
             and b"xylophonequartz" in p.read_bytes()]
    assert found == []



async def test_one_log_line_per_action_without_the_message(
        filtered: tuple[World, RecordingQueue], caplog: pytest.LogCaptureFixture) -> None:
    world, _ = filtered
    await use_script(world, 'require ["fileinto", "copy", "mailbox"];\r\n'
                     'fileinto :copy :create "Seen-it";\r\n')
    with caplog.at_level(logging.INFO, logger="letterlock.events"):
        assert await asyncio.to_thread(mx_send, world.mx_port, [ALICE],
                                       "secret-subject-words") == {}
    actions = [r for r in caplog.records if r.getMessage() == "mail:filter:action"]
    fields = [dict(r.ll_fields) for r in actions]  # type: ignore[attr-defined]
    assert sorted(f["action"] for f in fields) == ["fileinto", "keep"]
    assert {f["account"] for f in fields} == {ALICE}
    assert {f.get("mailbox") for f in fields} == {"Seen-it", "INBOX"}
    for record in actions:
        text = repr(record.__dict__)
        assert "secret-subject-words" not in text and "Hello" not in text


async def test_a_refusal_the_reply_cannot_carry_goes_by_mail(
        filtered: tuple[World, RecordingQueue]) -> None:
    world, queue = filtered
    await use_script(world, 'require "reject";\r\nreject "Not here.";\r\n')
    # Bob takes the message, so the one SMTP reply is 250: the sender hears of
    # Alice's refusal by mail (RFC 5429 2.1).
    assert await asyncio.to_thread(mx_send, world.mx_port, [ALICE, BOB], "both") == {}
    assert [(who, f, r) for who, f, r, _ in queue.sent] == [
        (ALICE, "", ["carol@remote.test"])]
    notice = queue.sent[0][3]
    assert b"Auto-Submitted: auto-generated" in notice and b"Not here." in notice
    assert await folder(world, "INBOX") == [] and len(await folder(world, "INBOX", BOB)) == 1
