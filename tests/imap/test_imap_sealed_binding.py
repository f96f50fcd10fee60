"""Issue 13 point 1: every sealed part is bound to its account, its message and its
part (crypto/seal.py, docs/sealed-format.md). Each tampering of the blob store or of
a sealed summary below is, over a real IMAP connection, a NO [CORRUPTION] naming the
message -- never an empty body or another message's -- and one
``mail:message:damaged`` line naming the account, the message and the part, while
the other messages stay readable. Packs (digest, text) are caches: a damaged one is
one line and is made again from the sealed messages, the answers staying right."""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from imap_script import Imap, ScriptClient
from test_imap_damaged_blobs import blob_place, damaged_lines

from letterlock.services.operations.log_events import EVENTS_LOGGER
from support.env import PASSWORD

CAROL = "carol@example.test"  # a second account in alice's region (us-east)


def raw(n: int) -> bytes:
    # Every message has the same length, so a blob fits in another's place.
    return b"Subject: m%d\r\nFrom: x@example.test\r\n\r\nbody %d\r\n" % (n, n)


@dataclass
class Mail:
    imap: Imap
    rows: dict[str, list[tuple[int, str, bytes]]]
    """account address -> (uid, blob id, sealed summary) of its INBOX messages."""

    @property
    def db_path(self) -> Path:
        return self.imap.app.config.home / "regions" / "us-east" / "cell.sqlite3"

    def blob(self, who: str, uid: int) -> tuple[Path, int, int]:
        return blob_place(self.imap, self.row(who, uid)[1])

    def row(self, who: str, uid: int) -> tuple[int, str, bytes]:
        [found] = [r for r in self.rows[who] if r[0] == uid]
        return found

    def read_blob(self, who: str, uid: int) -> bytes:
        pack, offset, length = self.blob(who, uid)
        with open(pack, "rb") as fh:
            return os.pread(fh.fileno(), length, offset)

    def write_blob(self, who: str, uid: int, data: bytes, at: int = 0) -> None:
        pack, offset, _ = self.blob(who, uid)
        fd = os.open(pack, os.O_RDWR)
        try:
            os.pwrite(fd, data, offset + at)
        finally:
            os.close(fd)

    def set_summary(self, who: str, uid: int, data: bytes) -> None:
        db = sqlite3.connect(self.db_path)
        try:
            db.execute("UPDATE messages SET summary=? WHERE blob_id=? AND uid=?",
                       (data, self.row(who, uid)[1], uid))
            db.commit()
        finally:
            db.close()


async def fill(imap: Imap) -> Mail:
    await imap.app.accounts.create(CAROL, "us-east", PASSWORD)
    rows: dict[str, list[tuple[int, str, bytes]]] = {}
    for who in (imap.user, CAROL):
        ref = await imap.app.accounts.resolve(who)
        for i in range(3):
            await imap.app.mailboxes.append(ref, "INBOX", raw(i))
        db = sqlite3.connect(imap.app.config.home / "regions" / "us-east" / "cell.sqlite3")
        try:
            rows[who] = list(db.execute(
                "SELECT m.uid, m.blob_id, m.summary FROM messages m JOIN mailboxes b "
                "ON b.id = m.mailbox_id JOIN accounts a ON a.id = b.account_id "
                "WHERE a.address = ? ORDER BY m.uid", (who,)))
        finally:
            db.close()
    return Mail(imap, rows)


async def login(imap: Imap, who: str) -> ScriptClient:
    client = await ScriptClient.connect(imap.port)
    await client.login(who, PASSWORD)
    lines = await client.command("s", "SELECT INBOX")
    assert lines[-1].startswith(b"s OK"), lines
    return client


def swap_within(mail: Mail) -> None:
    one, two = mail.read_blob(mail.imap.user, 1), mail.read_blob(mail.imap.user, 2)
    mail.write_blob(mail.imap.user, 1, two)
    mail.write_blob(mail.imap.user, 2, one)


def swap_across(mail: Mail) -> None:
    mine, theirs = mail.read_blob(mail.imap.user, 2), mail.read_blob(CAROL, 2)
    mail.write_blob(mail.imap.user, 2, theirs)
    mail.write_blob(CAROL, 2, mine)


def moved(mail: Mail) -> None:
    mail.write_blob(mail.imap.user, 2, mail.read_blob(mail.imap.user, 1))


def zeroed(mail: Mail) -> None:
    mail.write_blob(mail.imap.user, 2, bytes(len(mail.read_blob(mail.imap.user, 2))))


def tag_cut(mail: Mail) -> None:
    # The end of the blob (its last chunk's tag) gone: a truncated stream.
    mail.write_blob(mail.imap.user, 2, bytes(16), len(mail.read_blob(mail.imap.user, 2)) - 16)


def truncated(mail: Mail) -> None:
    # The pack file cut inside the blob (the last one written was carol's 3).
    pack, offset, length = mail.blob(CAROL, 3)
    os.truncate(pack, offset + length // 2)


def deleted(mail: Mail) -> None:
    cell = mail.imap.app.cells.get("us-east")
    cell.blobs._delete_many([mail.row(mail.imap.user, 2)[1]])  # type: ignore[attr-defined]


def body_as_summary(mail: Mail) -> None:
    mail.set_summary(mail.imap.user, 2, mail.read_blob(mail.imap.user, 2))


def foreign_summary(mail: Mail) -> None:
    mail.set_summary(mail.imap.user, 2, mail.row(CAROL, 2)[2])


def zeroed_summary(mail: Mail) -> None:
    mail.set_summary(mail.imap.user, 2, bytes(len(mail.row(mail.imap.user, 2)[2])))


def truncated_summary(mail: Mail) -> None:
    summary = mail.row(mail.imap.user, 2)[2]
    mail.set_summary(mail.imap.user, 2, summary[: len(summary) - 20])


@dataclass(frozen=True)
class Case:
    tamper: Callable[[Mail], None]
    damaged: tuple[int, ...]
    """alice's UIDs damaged."""
    part: str
    reason: str
    """Text the log line's reason holds."""


CASES = {
    "bodies swapped within the account": Case(swap_within, (1, 2), "body",
                                              "the sealed body of another message"),
    "bodies swapped across accounts": Case(swap_across, (2,), "body",
                                           "sealed to another account's key"),
    "a body moved onto another message": Case(moved, (2,), "body",
                                              "the sealed body of another message"),
    "a zeroed body": Case(zeroed, (2,), "body", "missing"),
    "a body whose end is cut": Case(tag_cut, (2,), "body", "failed authentication"),
    "a deleted body": Case(deleted, (2,), "body", "missing"),
    "a body in the summary's place": Case(body_as_summary, (2,), "summary",
                                          "a sealed body where the summary belongs"),
    "another account's summary": Case(foreign_summary, (2,), "summary",
                                      "sealed to another account's key"),
    "a zeroed summary": Case(zeroed_summary, (2,), "summary", "not a sealed blob"),
    "a truncated summary": Case(truncated_summary, (2,), "summary",
                                "failed authentication"),
}


def lines_of(caplog: pytest.LogCaptureFixture, who: str) -> list[dict[str, Any]]:
    return [d for d in damaged_lines(caplog) if d.get("user") == who]


@pytest.mark.parametrize("name", list(CASES))
async def test_a_tampered_part_is_a_no_and_one_line(
        imap: Imap, caplog: pytest.LogCaptureFixture, name: str) -> None:
    case = CASES[name]
    caplog.set_level(logging.INFO, EVENTS_LOGGER)
    mail = await fill(imap)
    case.tamper(mail)
    uids = ",".join(map(str, case.damaged))
    c = await imap.session("INBOX")
    lines = await c.command("f", "FETCH 1:3 (BODY.PEEK[])")
    assert lines[-1] == (b"f NO [CORRUPTION] Stored data of message UID %s is missing or "
                         b"damaged" % uids.encode())
    sent = [line for line in lines if b" FETCH (" in line]
    intact = [u for u in (1, 2, 3) if u not in case.damaged]
    assert len(sent) == len(intact)
    for u in intact:  # the others, each with its own body
        assert any(line.startswith(b"* %d FETCH" % u) and line.endswith(b"body %d\r\n)" % (
            u - 1)) for line in sent), sent
    # Never another message's body or an empty one: no line for a damaged message.
    assert not any(line.startswith(b"* %d FETCH" % u) for u in case.damaged for line in sent)
    logged = lines_of(caplog, imap.user)
    assert sorted(d["uid"] for d in logged) == list(case.damaged), logged
    for d in logged:  # account, message (mailbox, UID, blob) and part named
        assert d["part"] == case.part and case.reason in d["reason"], d
        assert d["blob"] == mail.row(imap.user, d["uid"])[1]
        assert isinstance(d["mailbox"], int)
    # Headers and envelope come from the summary: only a damaged summary refuses them.
    lines = await c.command("h", "UID FETCH 1:3 (ENVELOPE BODY.PEEK[HEADER])")
    if case.part == "summary":
        assert lines[-1].startswith(b"h NO [CORRUPTION] Stored data of message UID 2"), lines
        # One line per command that meets the damage.
        assert len(lines_of(caplog, imap.user)) == len(case.damaged) + 1
    else:
        assert lines[-1] == b"h OK UID FETCH completed", lines
    # SEARCH BODY: answered from the text sealed at delivery (text postings) where
    # there is one, else by opening the bodies; either way never from another
    # message's body: "body 1" is message 2's text only. A NO is one line more.
    before = len(lines_of(caplog, imap.user))
    lines = await c.command("s", 'UID SEARCH BODY "body 1"')
    if lines[-1].startswith(b"s NO [CORRUPTION]"):
        assert len(lines_of(caplog, imap.user)) == before + 1
        assert lines_of(caplog, imap.user)[-1]["part"] == case.part
    else:
        assert lines == [b"* SEARCH 2", b"s OK UID SEARCH completed"], lines
        assert len(lines_of(caplog, imap.user)) == before
    if case.part == "body":
        # Without the text sealed at delivery (a message from before postings, or
        # one whose posting is gone) the search opens the bodies: a NO and a line.
        await imap.app.mailboxes.text_index.flush()
        box = logged[0]["mailbox"]
        await imap.app.cells.get("us-east").store.delete_text_postings(box, [1, 2, 3])
        db = sqlite3.connect(mail.db_path)
        try:
            db.execute("DELETE FROM text_packs")
            db.commit()
        finally:
            db.close()
        imap.app.mailboxes.text_index.clear()
        before = len(lines_of(caplog, imap.user))
        lines = await c.command("o", 'UID SEARCH BODY "body 1"')
        assert lines == [b"o NO [CORRUPTION] Stored data of message UID %s is missing or "
                         b"damaged" % uids.encode()]
        now = lines_of(caplog, imap.user)[before:]
        assert [(d["uid"], d["part"]) for d in now] == [(u, "body") for u in case.damaged]
    # The intact ones read alone.
    for u in intact:
        lines = await c.command("u", f"UID FETCH {u} (BODY.PEEK[])")
        assert lines[-1] == b"u OK UID FETCH completed" and b"body %d" % (u - 1) in lines[0]
    await c.close()
    if name == "bodies swapped across accounts":
        other = await login(imap, CAROL)
        lines = await other.command("f", "UID FETCH 1:3 (BODY.PEEK[])")
        assert lines[-1].startswith(b"f NO [CORRUPTION] Stored data of message UID 2 "), lines
        [d] = lines_of(caplog, CAROL)
        assert (d["uid"], d["part"]) == (2, "body")
        await other.close()


async def test_a_damaged_digest_pack_is_made_again(
        imap: Imap, caplog: pytest.LogCaptureFixture) -> None:
    """A digest pack swapped with another account's, or zeroed, does not open (bound
    to account, mailbox, window and part): one line, and the answer is made from the
    sealed summaries again -- right, not the other account's headers."""
    caplog.set_level(logging.INFO, EVENTS_LOGGER)
    await fill(imap)
    for who in (imap.user, CAROL):
        c = await login(imap, who)
        lines = await c.command("a", "FETCH 1:3 (ENVELOPE)")
        assert lines[-1] == b"a OK FETCH completed"
        await c.close()
    await imap.app.mailboxes.digests.flush()
    db = sqlite3.connect(imap.app.config.home / "regions" / "us-east" / "cell.sqlite3")
    try:
        packs = list(db.execute("SELECT p.mailbox_id, p.data, a.address FROM digest_packs p "
                                "JOIN mailboxes b ON b.id = p.mailbox_id JOIN accounts a "
                                "ON a.id = b.account_id ORDER BY a.address"))
        assert [p[2] for p in packs] == [imap.user, CAROL]
        (mine, my_data, _), (_theirs, their_data, _) = packs
        assert my_data[:4] == b"LLB2"
        for data in (their_data, bytes(len(my_data))):
            db.execute("UPDATE digest_packs SET data=? WHERE mailbox_id=?", (data, mine))
            db.commit()
            imap.app.mailboxes.digests.clear()  # as another process would: storage only
            c = await imap.session("INBOX")
            lines = await c.command("e", "UID FETCH 1:3 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            assert lines[-1] == b"e OK UID FETCH completed"
            assert [b"Subject: m%d" % i in line for i, line in enumerate(lines[:3])] == \
                [True] * 3, lines
            await c.close()
            await imap.app.mailboxes.digests.flush()
    finally:
        db.close()
    packs_logged = [d for d in damaged_lines(caplog) if d.get("part") == "digest pack"]
    assert [(d["user"], d["mailbox"]) for d in packs_logged] == [(imap.user, mine)] * 2
    assert "failed authentication" in packs_logged[0]["reason"]
    assert "not a sealed digest pack" in packs_logged[1]["reason"]
