"""SEARCH BODY/TEXT through the sealed text index (services/mail/text_index.py): the
answers must be exactly those of opening every body, cold, warm, from the stored
packs, after new mail and expunges, and with a damaged pack; no indexed word is
stored in plaintext; the packs go with the account."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import random
import smtplib
import sqlite3
from pathlib import Path

import pytest
from imap_script import Imap, ScriptClient, uid_search_answers

from letterlock.services.mail import text_index
from letterlock.storage.models import DigestPack, MessageRecord
from smtp.conftest import start_world

SECRET = "quixotrebuszyx"
"""A word found only in bodies: must never be at rest in plaintext."""
QUERIES = [
    "BODY alpha", "BODY ALPHA", f"BODY {SECRET}", 'BODY "grüße"', 'BODY "GRÜSSE"',
    'BODY "東京"', 'BODY "タワー"', 'BODY "pänguin"', "BODY <b>", 'BODY "épée"',
    "BODY innerword", "TEXT innerword", "TEXT alpha", "TEXT subjectonly", "TEXT example.org",
    "BODY subjectonly", "BODY alpha SEEN", "BODY alpha UNSEEN", "NOT BODY alpha",
    "OR BODY alpha BODY beta", "BODY alpha BODY beta", "BODY alpha SUBJECT s3",
    "TEXT gamma LARGER 300", "BODY nothing-like-this", "TEXT nothing-like-this",
    "1:40 BODY beta", "BODY alpha FROM ann", "BODY a", "NOT TEXT alpha",
    "OR TEXT example.org BODY zeta", "TEXT s3 BODY alpha", "NOT TEXT s3",
    "TEXT alpha SENTBEFORE 1-Jan-2100",
    # Header keys alone: answered from the packs' header views once packs exist.
    "SUBJECT s3", "FROM ann", "NOT FROM ann", "SUBJECT s2 SENTBEFORE 1-Jan-2100",
    "OR SUBJECT s1 FROM bob", "SUBJECT subjectonly FROM example.net", "SUBJECT nothing-like",
]


def _message(rng: random.Random, n: int) -> bytes:
    words = " ".join(rng.sample(["alpha", "beta", "gamma", "delta", "Épée", "zeta"], 2))
    head = (f"From: {'Ann <ann@example.org>' if n % 2 else 'bob@example.net'}\r\n"
            f"Subject: subjectonly s{n % 5}\r\nMIME-Version: 1.0\r\n")
    kind = n % 5
    if kind == 0:
        return (head + f"\r\nplain {words} #{n}\r\n").encode()
    if kind == 1:
        return (head + "Content-Type: text/plain; charset=iso-8859-1\r\n"
                "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
                f"Sch=F6ne Gr=FC=DFe {words} {SECRET if n == 11 else ''}\r\n").encode()
    if kind == 2:
        text = base64.b64encode(f"東京タワー {words}".encode()).decode()
        return (head + "Content-Type: text/plain; charset=utf-8\r\n"
                f"Content-Transfer-Encoding: base64\r\n\r\n{text}\r\n").encode()
    if kind == 3:
        return (head + "Content-Type: text/html; charset=utf-8\r\n\r\n"
                f"<p><b>pänguin</b> {words}</p>\r\n").encode()
    return (head + 'Content-Type: multipart/mixed; boundary="xx"\r\n\r\n'
            f"--xx\r\nContent-Type: text/plain\r\n\r\nouter {words}\r\n"
            "--xx\r\nContent-Type: application/octet-stream\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\nYWxwaGEgYmV0YQ==\r\n"
            "--xx\r\nContent-Type: message/rfc822\r\n\r\n"
            "Subject: innerword\r\n\r\ninner body\r\n--xx--\r\n").encode()


async def _answers(client: ScriptClient) -> list[bytes]:
    return await uid_search_answers(client, QUERIES)


@pytest.fixture
def no_index(monkeypatch: pytest.MonkeyPatch) -> object:
    """Turns the text index off (every body opened) while set."""
    async def nothing(_self: object, _records: list[MessageRecord]
                      ) -> dict[int, text_index.Found]:
        return {}

    async def keep(_self: object, uids: list[int], _required: object) -> list[int]:
        return uids

    async def unknown(_self: object, uids: list[int], _required: object
                      ) -> tuple[list[int], list[int]]:
        return [], uids

    async def none(_self: object, _selected: object) -> None:
        return None

    class Switch:
        def on(self) -> None:
            monkeypatch.setattr(text_index.TextReader, "get", nothing)
            monkeypatch.setattr(text_index.TextReader, "put", lambda *_args: None)
            monkeypatch.setattr(text_index.TextReader, "narrow", keep)
            monkeypatch.setattr(text_index.TextReader, "narrow_headers", unknown)
            monkeypatch.setattr(text_index.TextReader, "merge", none)

        def off(self) -> None:
            monkeypatch.undo()
    return Switch()


async def _filled(imap: Imap, count: int) -> tuple[ScriptClient, int]:
    rng = random.Random(7)
    ref = await imap.app.accounts.resolve(imap.user)
    await imap.app.mailboxes.append_many(
        ref, "INBOX", [(_message(rng, n), ("\\Seen",) if n % 4 == 0 else (), None)
                       for n in range(1, count + 1)])
    box = await imap.app.cells.get(ref.region).store.get_mailbox(ref.record.id, "INBOX")
    return await imap.session("INBOX"), box.id


async def test_index_answers_as_opening_every_body(imap: Imap, no_index: object) -> None:
    client, box = await _filled(imap, 300)
    mailboxes = imap.app.mailboxes
    store = imap.app.cells.get("us-east").store
    cold = await _answers(client)              # packs made on the way
    await mailboxes.text_index.flush()
    assert len(await store.get_text_packs(box, 1, 300)) == 3
    warm = await _answers(client)              # windows hot in this process
    mailboxes.text_index.clear()
    packed = await _answers(client)            # windows opened from their packs
    no_index.on()  # type: ignore[attr-defined]
    truth = await _answers(client)
    no_index.off()  # type: ignore[attr-defined]
    assert cold == warm == packed == truth
    assert truth[QUERIES.index(f"BODY {SECRET}")] == b"* SEARCH 11"
    for query in ['BODY "東京"', 'BODY "GRÜSSE"', 'BODY "pänguin"', "TEXT innerword"]:
        assert len(truth[QUERIES.index(query)].split()) > 10, query
    assert truth[QUERIES.index("BODY subjectonly")] == b"* SEARCH"
    assert truth[QUERIES.index("TEXT subjectonly")].count(b" ") == 301

    # New mail after the packs were made, then an expunge.
    ref = await imap.app.accounts.resolve(imap.user)
    await mailboxes.append(ref, "INBOX", b"Subject: late\r\n\r\nalpha late\r\n")
    await client.command("n", "NOOP")
    await client.command("d", "UID STORE 1:20 +FLAGS (\\Deleted)")
    lines = await client.command("e", "EXPUNGE")
    assert lines[-1].startswith(b"e OK")
    after = await _answers(client)
    await mailboxes.text_index.flush()
    again = await _answers(client)
    no_index.on()  # type: ignore[attr-defined]
    assert after == again == await _answers(client)
    no_index.off()  # type: ignore[attr-defined]
    alpha = after[QUERIES.index("BODY alpha")].split()[2:]
    assert b"301" in alpha and not any(int(u) <= 20 for u in alpha)
    assert after[QUERIES.index(f"BODY {SECRET}")] == b"* SEARCH"  # 11 was expunged
    await client.close()


async def test_damaged_pack_is_made_again(imap: Imap, caplog: pytest.LogCaptureFixture,
                                          no_index: object) -> None:
    client, box = await _filled(imap, 150)
    mailboxes = imap.app.mailboxes
    store = imap.app.cells.get("us-east").store
    first = await _answers(client)
    await mailboxes.text_index.flush()
    packs = await store.get_text_packs(box, 1, 150)
    assert [p.first_uid for p in packs] == [1, 129]
    zeroed = DigestPack(box, 1, packs[0].last_uid, packs[0].count, bytes(len(packs[0].data)))
    assert await store.put_text_pack(zeroed)
    mailboxes.text_index.clear()
    with caplog.at_level(logging.WARNING):
        damaged = await _answers(client)
    assert "mail:text-index:damaged" in caplog.text
    assert damaged == first
    await mailboxes.text_index.flush()
    [remade, _] = await store.get_text_packs(box, 1, 150)
    assert remade.data != zeroed.data
    mailboxes.text_index.clear()
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert await _answers(client) == first
    assert "mail:text-index:damaged" not in caplog.text
    # A pack moved to another window does not open either (its range is bound).
    moved = DigestPack(box, 129, packs[1].last_uid, packs[1].count, remade.data)
    assert await store.put_text_pack(moved)
    mailboxes.text_index.clear()
    no_index.on()  # type: ignore[attr-defined]
    truth = await _answers(client)
    no_index.off()  # type: ignore[attr-defined]
    assert await _answers(client) == truth == first
    await client.close()


async def test_no_indexed_word_at_rest_and_packs_go_with_the_account(
        imap: Imap, home: Path) -> None:
    client, box = await _filled(imap, 20)
    mailboxes = imap.app.mailboxes
    store = imap.app.cells.get("us-east").store
    lines = await client.command("s", f"UID SEARCH BODY {SECRET}")
    assert lines[0] == b"* SEARCH 11"
    await mailboxes.text_index.flush()
    [pack] = await store.get_text_packs(box, 1, 20)
    assert SECRET.encode() not in pack.data
    await client.close()
    files = [p for p in home.rglob("*") if p.is_file()]
    assert any(p.suffix in {".db", ".sqlite", ".sqlite3"} or "wal" in p.name for p in files)
    for path in files:
        assert SECRET.encode() not in path.read_bytes(), path
    assert _text_rows(files) > 0
    await imap.app.accounts.delete(imap.user)
    assert _text_rows(files) == 0


def _text_rows(files: list[Path]) -> int:
    """Text packs stored in the SQLite databases among ``files``."""
    total = 0
    for path in files:
        if path.read_bytes()[:16] != b"SQLite format 3\x00":
            continue
        with contextlib.closing(sqlite3.connect(path)) as db:
            if db.execute("SELECT 1 FROM sqlite_master WHERE name='text_packs'").fetchone():
                total += db.execute("SELECT count(*) FROM text_packs").fetchone()[0]
    return total


# -- text postings: sealed at delivery, merged by the first search -----------------
def _lmtp_deliver(port: int, rcpt: str, messages: list[bytes]) -> None:
    with smtplib.LMTP("127.0.0.1", port, timeout=60) as client:
        for raw in messages:
            client.sendmail("sender@example.org", [rcpt], raw)


async def _delivered(imap: Imap, tmp_path: Path, messages: list[bytes],
                     rcpt: str = "") -> None:
    """``messages`` delivered over LMTP to ``rcpt`` (the IMAP user by default)."""
    world = await start_world(imap.app, tmp_path)
    try:
        assert world.lmtp_port is not None
        await asyncio.to_thread(_lmtp_deliver, world.lmtp_port, rcpt or imap.user, messages)
    finally:
        await world.server.close()


def _db_with_postings(home: Path, mailbox_id: int) -> Path:
    """The SQLite database holding ``mailbox_id``'s postings (the user's cell)."""
    for path in home.rglob("*"):
        if not path.is_file() or path.read_bytes()[:16] != b"SQLite format 3\x00":
            continue
        with contextlib.closing(sqlite3.connect(path)) as db:
            if db.execute("SELECT 1 FROM sqlite_master WHERE name='text_postings'"
                          ).fetchone() and db.execute(
                    "SELECT 1 FROM text_postings WHERE mailbox_id=?", (mailbox_id,)).fetchone():
                return path
    raise AssertionError(f"no postings of mailbox {mailbox_id}")


async def _inbox(imap: Imap, address: str = "") -> int:
    ref = await imap.app.accounts.resolve(address or imap.user)
    store = imap.app.cells.get(ref.region).store
    return (await store.get_mailbox(ref.record.id, "INBOX")).id


async def test_postings_answer_without_opening_a_body(imap: Imap, no_index: object,
                                                       tmp_path: Path) -> None:
    rng = random.Random(7)
    await _delivered(imap, tmp_path, [_message(rng, n) for n in range(1, 301)])
    mailboxes = imap.app.mailboxes
    store = imap.app.cells.get("us-east").store
    box = await _inbox(imap)
    assert len(await store.get_text_postings(box, 1, 300)) == 300
    assert await store.get_text_packs(box, 1, 300) == []
    client = await imap.session("INBOX")
    mailboxes.bodies_opened = 0
    first = await _answers(client)             # merged from the postings
    assert mailboxes.bodies_opened == 0
    await mailboxes.text_index.flush()
    assert len(await store.get_text_packs(box, 1, 300)) == 3
    assert await store.get_text_postings(box, 1, 300) == []  # merged: deleted
    mailboxes.text_index.clear()
    packed = await _answers(client)
    no_index.on()  # type: ignore[attr-defined]
    truth = await _answers(client)
    no_index.off()  # type: ignore[attr-defined]
    assert first == packed == truth
    assert truth[QUERIES.index(f"BODY {SECRET}")] == b"* SEARCH 11"

    # New mail into a packed window and a new one: merged into the packs, no body
    # opened but that of one message with too much text for a posting (UID 390),
    # the same answers as opening every body.
    big = b"Subject: big\r\n\r\n" + b"alpha innerword zeta\r\n" * 1000
    await _delivered(imap, tmp_path, [_message(rng, n) for n in range(301, 390)] + [big])
    assert [p.uid for p in await store.get_text_postings(box, 380, 400)] == list(
        range(380, 390))
    await client.command("n", "NOOP")
    mailboxes.bodies_opened = 0
    after = await _answers(client)
    assert mailboxes.bodies_opened == 1
    await mailboxes.text_index.flush()
    assert [(p.first_uid, p.last_uid) for p in await store.get_text_packs(box, 1, 400)
            ] == [(1, 128), (129, 256), (257, 384), (385, 390)]
    assert b"390" in after[QUERIES.index("TEXT innerword")]
    assert await store.get_text_postings(box, 1, 400) == []
    no_index.on()  # type: ignore[attr-defined]
    assert after == await _answers(client)
    no_index.off()  # type: ignore[attr-defined]
    await client.close()


async def test_damaged_or_misplaced_postings_are_ignored(
        imap: Imap, no_index: object, tmp_path: Path, home: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    rng = random.Random(3)
    await _delivered(imap, tmp_path, [_message(rng, n) for n in range(1, 13)])
    await _delivered(imap, tmp_path, [_message(rng, 40)], rcpt="bob@example.test")
    ref = await imap.app.accounts.resolve(imap.user)
    await imap.app.mailboxes.ensure_mailbox(ref, "Elsewhere")
    await imap.app.mailboxes.append(ref, "Elsewhere", _message(rng, 41))
    client = await imap.session("INBOX")
    box = await _inbox(imap)
    path = _db_with_postings(home, box)
    bob_db = _db_with_postings(home, await _inbox(imap, "bob@example.test"))
    with contextlib.closing(sqlite3.connect(bob_db)) as db:
        bobs = db.execute("SELECT key, data FROM text_postings").fetchone()
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        archive = db.execute("SELECT key, data FROM text_postings WHERE mailbox_id<>?",
                             (box,)).fetchone()
        sixth = db.execute("SELECT key, data FROM text_postings WHERE mailbox_id=? AND "
                           "uid=6", (box,)).fetchone()
        db.execute("UPDATE text_postings SET data=zeroblob(length(data)) WHERE "
                   "mailbox_id=? AND uid=3", (box,))
        db.execute("UPDATE text_postings SET key=?, data=? WHERE mailbox_id=? AND uid=5",
                   (*sixth, box))                       # another message's
        db.execute("UPDATE text_postings SET key=?, data=? WHERE mailbox_id=? AND uid=7",
                   (*archive, box))                     # another mailbox's
        db.execute("UPDATE text_postings SET key=?, data=? WHERE mailbox_id=? AND uid=11",
                   (*bobs, box))                        # another account's
    mailboxes = imap.app.mailboxes
    mailboxes.bodies_opened = 0
    with caplog.at_level(logging.WARNING):
        found = await _answers(client)
    damaged = [r.ll_fields for r in caplog.records  # type: ignore[attr-defined]
               if r.getMessage() == "mail:text-index:damaged"]
    assert sorted(f["uid"] for f in damaged) == [3, 5, 7, 11], damaged
    assert {f["part"] for f in damaged} == {"text-posting"}
    assert mailboxes.bodies_opened == 4                  # those four, opened instead
    no_index.on()  # type: ignore[attr-defined]
    assert found == await _answers(client)
    no_index.off()  # type: ignore[attr-defined]
    assert found[QUERIES.index(f"BODY {SECRET}")] == b"* SEARCH 11"
    await client.close()


async def test_postings_hold_no_word_and_go_with_their_messages(
        imap: Imap, tmp_path: Path, home: Path) -> None:
    rng = random.Random(5)
    await _delivered(imap, tmp_path, [_message(rng, n) for n in range(1, 13)])
    box = await _inbox(imap)
    path = _db_with_postings(home, box)
    for file in (p for p in home.rglob("*") if p.is_file()):
        assert SECRET.encode() not in file.read_bytes(), file

    def postings() -> dict[int, list[int]]:
        out: dict[int, list[int]] = {}
        with contextlib.closing(sqlite3.connect(path)) as db:
            for mailbox_id, uid in db.execute(
                    "SELECT mailbox_id, uid FROM text_postings ORDER BY 1, 2"):
                out.setdefault(mailbox_id, []).append(uid)
        return out

    assert postings() == {box: list(range(1, 13))}
    client = await imap.session("INBOX")
    for tag, command in [("c", "CREATE Other"), ("d", "UID STORE 1 +FLAGS (\\Deleted)"),
                         ("e", "EXPUNGE"), ("m", "UID MOVE 2 Other"),
                         ("x", "UID STORE 3 +FLAGS (\\Deleted)"), ("y", "UID EXPUNGE 3")]:
        lines = await client.command(tag, command)
        assert lines[-1].startswith(tag.encode() + b" OK"), lines
    assert postings() == {box: list(range(4, 13))}  # a moved message's copy has none
    ref = await imap.app.accounts.resolve(imap.user)
    await imap.app.mailboxes.append(ref, "Other", _message(rng, 20))
    assert len(postings()) == 2
    lines = await client.command("o", "DELETE Other")
    assert lines[-1].startswith(b"o OK"), lines
    assert postings() == {box: list(range(4, 13))}
    await client.close()
    await imap.app.accounts.delete(imap.user)
    assert postings() == {}
