"""The sealed text index (services/mail/text_index.py): what it keeps of a message,
and that a pack opens only for its account, mailbox and range, across a password
change."""

from __future__ import annotations

import base64
from dataclasses import replace

import pytest

from letterlock.app import App
from letterlock.errors import CryptoError, UnknownMailbox
from letterlock.services.accounts.accounts import Session
from letterlock.services.mail import text_index
from letterlock.storage.models import DigestPack
from support.env import PASSWORD

MIXED = (b"Subject: s\r\nMIME-Version: 1.0\r\n"
         b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
         b"--b\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
         b"Content-Transfer-Encoding: quoted-printable\r\n\r\nGr=FC=DFe =C9T=C9\r\n"
         b"--b\r\nContent-Type: text/html; charset=utf-8\r\n"
         b"Content-Transfer-Encoding: base64\r\n\r\n"
         + base64.b64encode("<p>東京タワー Ωμέγα</p>".encode()) + b"\r\n"
         b"--b\r\nContent-Type: application/pdf; name=secretname.pdf\r\n"
         b"Content-Transfer-Encoding: base64\r\n\r\nc2VjcmV0Ym9keQ==\r\n"
         b"--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: =?utf-8?q?Inn=C3=A9r?=\r\n"
         b"\r\ninner\r\n--b--\r\n")


def test_body_text_is_decoded_and_folded() -> None:
    text = text_index.body_text(MIXED)
    for word in ["grüsse", "été", "東京タワー", "ωμέγα", "<p>", "innér", "inner"]:
        assert word in text, word
    assert "secretbody" not in text  # not a text part
    assert "=fc" not in text and "grüße" not in text  # decoded, then folded


def test_pack_round_trip_and_malformed_plaintext() -> None:
    entries = {3: ("blob-a", "ünïcode 東京", b"subject\x1fx\x1e"), 1: ("blob-b", "", b"")}
    assert text_index.decode_pack(text_index.encode_pack(entries, b"v1"), b"v1") == entries
    # Header views of another front-end version: not used (made again).
    assert text_index.decode_pack(text_index.encode_pack(entries, b"v0"), b"v1") is None
    data = text_index.encode_pack(entries)
    for bad in (data[:-1], b"XXXX" + data[4:], data + b"x"):
        with pytest.raises(CryptoError):
            text_index.decode_pack(bad)


def test_pack_matching_finds_a_needle_only_inside_its_own_part() -> None:
    """A hit in a blob id, in the pack's header, in the other part or across two
    entries is no hit; an empty header view is unknown (kept for TEXT)."""
    entries = {
        1: ("blob-zebra", "nothing here", b"subject\x1fzebra\x1e"),
        2: ("blob-b", "the zebra runs", b"from\x1fann\x1e"),
        3: ("blob-c", "tail zeb", b""),
        4: ("blob-d", "ra head", b"to\x1fbob\x1e"),
        5: ("blob-e", "東京 tower", b"subject\x1f\xe6\x9d\xb1\x1e"),
    }
    plain = text_index.encode_pack(entries, b"v1")
    view = text_index.PackView.of(plain, b"v1", 5)
    assert view is not None and view.entries() == entries
    assert view.matching([(b"zebra", None)]) == {2}
    assert view.matching([(b"zebra", b"zebra")]) == {1, 2, 3}  # 3: view unknown
    assert view.matching([("東京".encode(), None)]) == {5}
    assert view.matching([(b"zebra", None), (b"runs", None)]) == {2}
    assert view.matching([(b"zebra", None), (b"head", None)]) == set()
    assert view.matching([(b"LLT2", None)]) == set()  # the pack's own magic
    assert view.matching([(b"", None)]) == {1, 2, 3, 4, 5}


@pytest.fixture
async def session(app: App) -> Session:
    await app.accounts.create("bob@example.test", "eu-dublin", PASSWORD)
    return await app.accounts.authenticate("bob@example.test", PASSWORD)


async def test_pack_opens_only_where_it_was_made_and_after_a_password_change(
        app: App, session: Session, caplog: pytest.LogCaptureFixture) -> None:
    for i in range(3):
        await app.mailboxes.append(session.ref, "INBOX", b"Subject: x\r\n\r\nword%d\r\n" % i)
    box = (await app.mailboxes.get_mailbox(session, "INBOX")).id
    records = await app.mailboxes.messages(session, box, with_summary=False)
    reader = app.mailboxes.text_reader(session, box)
    assert await reader.get(records) == {}
    reader.put(1, {r.uid: (r.blob_id, f"word{r.uid - 1}", b"") for r in records})
    await app.mailboxes.text_index.flush()
    store = app.cells.get("eu-dublin").store
    [pack] = await store.get_text_packs(box, 1, 3)
    assert b"word1" not in pack.data

    app.mailboxes.text_index.clear()
    await app.accounts.change_password("bob@example.test", PASSWORD, PASSWORD + "-new")
    again = await app.accounts.authenticate("bob@example.test", PASSWORD + "-new")
    fresh = app.mailboxes.text_reader(again, box)
    assert await fresh.get(records) == {1: ("word0", b""), 2: ("word1", b""),
                                        3: ("word2", b"")}

    # Another mailbox's copy of the pack does not open (the mailbox is bound).
    other = await app.mailboxes.create_mailbox(again, "Other")
    for _ in range(3):
        await app.mailboxes.append(again.ref, "Other", b"Subject: y\r\n\r\nz\r\n")
    assert await store.put_text_pack(DigestPack(other.id, 1, 3, 3, pack.data))
    mine = await app.mailboxes.messages(again, other.id, with_summary=False)
    assert await app.mailboxes.text_reader(again, other.id).get(mine) == {}
    assert "mail:text-index:damaged" in caplog.text
    # A record naming another blob than the pack's entry is not answered from it.
    app.mailboxes.text_index.clear()
    moved = [replace(r, blob_id="other") if r.uid == 2 else r for r in records]
    got = await app.mailboxes.text_reader(again, box).get(moved)
    assert got == {1: ("word0", b""), 3: ("word2", b"")}


async def test_region_move_leaves_no_pack_behind(app: App, session: Session) -> None:
    for i in range(3):
        await app.mailboxes.append(session.ref, "INBOX", b"Subject: x\r\n\r\nword%d\r\n" % i)
    box = (await app.mailboxes.get_mailbox(session, "INBOX")).id
    records = await app.mailboxes.messages(session, box, with_summary=False)
    app.mailboxes.text_reader(session, box).put(
        1, {r.uid: (r.blob_id, "w", b"") for r in records})
    await app.mailboxes.text_index.flush()
    old = app.cells.get("eu-dublin").store
    assert len(await old.get_text_packs(box, 1, 3)) == 1
    assert len(await old.get_text_postings(box, 1, 3)) == 3  # sealed at delivery
    await app.accounts.move("bob@example.test", "us-east", settle_s=0)
    with pytest.raises(UnknownMailbox):  # the mailbox, its packs and postings are gone
        await old.get_text_packs(box, 1, 3)
    again = await app.accounts.authenticate("bob@example.test", PASSWORD)
    moved = (await app.mailboxes.get_mailbox(again, "INBOX")).id
    mine = await app.mailboxes.messages(again, moved, with_summary=False)
    assert len(mine) == 3
    # Nothing travels (the postings neither): the new cell's readers make the packs
    # again from the bodies.
    assert await app.cells.get("us-east").store.get_text_postings(moved, 1, 3) == []
    assert await app.mailboxes.text_reader(again, moved).get(mine) == {}
