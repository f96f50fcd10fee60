"""SELECT opens a mailbox from the store's index (UIDs and aggregates), never from a
record per message: 200 concurrent SELECTs of a 10,000-message mailbox left ~100 KiB
per connection resident after the burst (issue 17 point 8), the memory of 10,000
records per SELECT. Figures: bench/imap.py --parts burst."""

from __future__ import annotations

import pytest
from imap_script import Imap

from letterlock.services.mail.mailbox import MailboxService


def _message(n: int) -> bytes:
    return (b"From: Bob <bob@example.org>\r\nTo: alice@example.test\r\n"
            b"Subject: number %d\r\nMessage-ID: <%d@example.org>\r\n\r\nBody\r\n" % (n, n))


def refuse_listing(monkeypatch: pytest.MonkeyPatch) -> None:
    async def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("SELECT listed a record per message")

    monkeypatch.setattr(MailboxService, "messages", refuse)


async def test_select_of_a_large_mailbox_builds_no_record_per_message(
        imap: Imap, monkeypatch: pytest.MonkeyPatch) -> None:
    ref = await imap.app.accounts.resolve(imap.user)
    for n in range(1, 6):
        await imap.app.mailboxes.append(ref, "INBOX", _message(n))
    refuse_listing(monkeypatch)
    c = await imap.session()
    lines = await c.command("a1", "SELECT INBOX")
    assert lines[-1].startswith(b"a1 OK [READ-WRITE]"), lines
    assert b"* 5 EXISTS" in lines
    assert b"* 5 RECENT" in lines
    assert b"* OK [UNSEEN 1] First unseen" in lines
    await c.close()


async def test_select_reports_first_unseen_as_a_sequence_number_and_every_keyword(
        imap: Imap, monkeypatch: pytest.MonkeyPatch) -> None:
    ref = await imap.app.accounts.resolve(imap.user)
    for n in range(1, 6):
        await imap.app.mailboxes.append(ref, "INBOX", _message(n))
    setup = await imap.session("INBOX")
    # UIDs 1 and 2 expunged, 3 seen: the first unseen is UID 4, message number 2.
    for tag, command in (("s1", "UID STORE 1:3 +FLAGS (\\Seen)"),
                         ("s2", "UID STORE 1:2 +FLAGS (\\Deleted)"),
                         ("s3", "UID STORE 5 +FLAGS ($Label1)"),
                         ("s4", "EXPUNGE")):
        assert (await setup.command(tag, command))[-1].startswith(tag.encode() + b" OK")
    modseq = next(line for line in await setup.command("s5", "STATUS INBOX (HIGHESTMODSEQ)")
              if line.startswith(b"* STATUS"))
    await setup.close()

    refuse_listing(monkeypatch)
    c = await imap.session()
    for tag, verb in (("a1", "SELECT"), ("a2", "EXAMINE")):
        lines = await c.command(tag, f"{verb} INBOX")
        assert lines[-1].startswith(tag.encode() + b" OK"), lines
        assert b"* 3 EXISTS" in lines
        assert b"* OK [UNSEEN 2] First unseen" in lines
        flags = next(line for line in lines if line.startswith(b"* FLAGS"))
        assert b"$Label1" in flags
        highest = next(line for line in lines if line.startswith(b"* OK [HIGHESTMODSEQ "))
        assert highest.split()[3].rstrip(b"]") in modseq
        fetched = await c.command(tag + "f", "FETCH 1:* (UID)")
        assert [line for line in fetched if line.startswith(b"* ")] == [
            b"* 1 FETCH (UID 3)", b"* 2 FETCH (UID 4)", b"* 3 FETCH (UID 5)"]
    await c.close()
