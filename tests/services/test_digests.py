"""Digest packs: a reader opens each message once, later readers open one pack per
window, and a pack is never trusted beyond what it was made for."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from letterlock.app import App
from letterlock.crypto import seal
from letterlock.imap import views
from letterlock.services.accounts.accounts import Session
from letterlock.services.mail import digests as digests_mod
from letterlock.services.mail.digests import PACK_SPAN, DigestService
from letterlock.services.operations.log_events import LogEvent
from letterlock.storage.models import DigestPack
from support.env import PASSWORD


def raw(n: int) -> bytes:
    return (f"From: Sender {n} <s{n}@example.test>\r\nTo: bob@example.test\r\n"
            f"Subject: secret subject {n}\r\nMessage-ID: <{n}@example.test>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            f"body {n}\r\n").encode()


@pytest.fixture
async def session(app: App) -> Session:
    await app.accounts.create("bob@example.test", "eu-dublin", PASSWORD)
    return await app.accounts.authenticate("bob@example.test", PASSWORD)


class Agreements:
    """Counts key agreements (X25519 unwraps of content keys) an opener makes."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        real = seal.Opener._unwrap

        def counting(opener: seal.Opener, header: seal.SealHeader) -> bytes:
            self.count += 1
            return real(opener, header)

        monkeypatch.setattr(seal.Opener, "_unwrap", counting)


async def _fill(app: App, session: Session, count: int) -> int:
    for i in range(count):
        await app.mailboxes.append(session.ref, "INBOX", raw(i))
    return (await app.mailboxes.get_mailbox(session, "INBOX")).id


async def test_second_reader_opens_packs_not_messages(
        app: App, session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    box = await _fill(app, session, PACK_SPAN + 10)  # two windows
    records = await app.mailboxes.messages(session, box, with_summary=False)
    agreements = Agreements(monkeypatch)
    first = await app.mailboxes.digest_reader(session, box).get(records)
    assert agreements.count == len(records)
    await app.mailboxes.digests.flush()
    app.mailboxes.digests.clear()  # read the packs from storage, as another process
    session.opener.forget_keys()
    agreements.count = 0
    second = await app.mailboxes.digest_reader(session, box).get(records)
    assert agreements.count == 0
    assert second == first
    d = second[3]
    assert d.header.startswith(b"From: Sender 2 ") and b"secret subject 2" in d.header
    assert views.view(d, views.ENVELOPE, False).startswith(b'(NIL "secret subject 2"')
    assert views.view(d, views.BODYSTRUCTURE, False).startswith(b'("text" "plain"')
    # The content key opens the body without any key agreement.
    bodies = await app.mailboxes.bodies(session, records[:5], second)
    assert bodies[1] == raw(0) and agreements.count == 0


async def test_packs_hold_only_ciphertext(app: App, session: Session) -> None:
    box = await _fill(app, session, 5)
    records = await app.mailboxes.messages(session, box, with_summary=False)
    await app.mailboxes.digest_reader(session, box).get(records)
    await app.mailboxes.digests.flush()
    store = app.cells.get("eu-dublin").store
    [pack] = await store.get_digest_packs(box, 1, 10)
    assert (pack.first_uid, pack.last_uid, pack.count) == (1, 5, 5)
    assert b"secret subject" not in pack.data and b"Sender" not in pack.data


async def test_new_mail_in_a_window_is_added_to_its_pack(
        app: App, session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    box = await _fill(app, session, 3)
    reader = app.mailboxes.digest_reader(session, box)
    await reader.get(await app.mailboxes.messages(session, box, with_summary=False))
    await app.mailboxes.digests.flush()
    await app.mailboxes.append(session.ref, "INBOX", raw(3))
    records = await app.mailboxes.messages(session, box, with_summary=False)
    agreements = Agreements(monkeypatch)
    session.opener.forget_keys()
    got = await app.mailboxes.digest_reader(session, box).get(records)
    assert agreements.count == 1 and sorted(got) == [1, 2, 3, 4]
    await app.mailboxes.digests.flush()
    [pack] = await app.cells.get("eu-dublin").store.get_digest_packs(box, 1, 10)
    assert (pack.last_uid, pack.count) == (4, 4)


async def test_an_expunged_message_leaves_no_digest_behind(
        app: App, session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    box = await _fill(app, session, 4)
    records = await app.mailboxes.messages(session, box, with_summary=False)
    await app.mailboxes.digest_reader(session, box).get(records)
    await app.mailboxes.digests.flush()
    store = app.cells.get("eu-dublin").store
    agreements = Agreements(monkeypatch)
    session.opener.forget_keys()
    # Storage drops the pack in the expunge's own transaction; the expunging session
    # writes it again without the message, from what it had read.
    await app.mailboxes.expunge(session, box, [2])
    await app.mailboxes.digests.flush()
    [pack] = await store.get_digest_packs(box, 1, 10)
    assert agreements.count == 0
    key = session.opener.derive_key(b"digest packs")
    plain = seal.open_bound_box(key, pack.data, session.ref.record.id,
                                digests_mod.window_object(box, 1, 4, 3), "digest pack")
    decoded = digests_mod.decode_pack(plain, views.VIEWS)
    assert decoded is not None and [d.uid for d in decoded] == [1, 3, 4]
    assert b"secret subject 1" not in plain
    records = await app.mailboxes.messages(session, box, with_summary=False)
    got = await app.mailboxes.digest_reader(session, box).get(records)
    assert sorted(got) == [1, 3, 4] and agreements.count == 0


async def test_an_expunge_by_a_session_without_packs_drops_them(
        app: App, session: Session) -> None:
    box = await _fill(app, session, 3)
    mb = app.mailboxes
    await mb.digest_reader(session, box).get(await mb.messages(session, box,
                                                               with_summary=False))
    await mb.digests.flush()
    store = app.cells.get("eu-dublin").store
    await store.expunge(box, [1])  # e.g. another server process, mid-way
    assert await store.get_digest_packs(box, 1, 10) == []


async def test_a_pack_moved_to_another_mailbox_is_not_believed(
        app: App, session: Session, caplog: pytest.LogCaptureFixture) -> None:
    box = await _fill(app, session, 3)
    other = await app.mailboxes.create_mailbox(session, "Other")
    for i in (10, 11, 12):
        await app.mailboxes.append(session.ref, "Other", raw(i))
    mb = app.mailboxes
    for b in (box, other.id):
        await mb.digest_reader(session, b).get(await mb.messages(session, b,
                                                                 with_summary=False))
    await mb.digests.flush()
    store = app.cells.get("eu-dublin").store
    [mine] = await store.get_digest_packs(box, 1, 10)
    # Someone with write access to the database puts Other's pack in INBOX's place.
    [theirs] = await store.get_digest_packs(other.id, 1, 10)
    assert await store.put_digest_pack(DigestPack(box, 1, 3, 3, theirs.data))
    records = await mb.messages(session, box, with_summary=False)
    mb.digests.clear()  # as in another process, which has only storage's packs
    got = await mb.digest_reader(session, box).get(records)
    assert [got[u].header for u in (1, 2, 3)] == [raw(n)[: raw(n).index(b"\r\n\r\n") + 4]
                                                   for n in (0, 1, 2)]
    [line] = [dict(r.ll_fields) for r in caplog.records  # type: ignore[attr-defined]
              if getattr(r, "ll_event", None) is LogEvent.MESSAGE_DAMAGED]
    assert (line["part"], line["mailbox"], line["first"]) == ("digest pack", box, 1)
    assert "failed authentication" in line["reason"]
    assert mine.data != theirs.data


async def test_a_message_whose_blob_changed_is_read_again(
        app: App, session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    box = await _fill(app, session, 2)
    records = await app.mailboxes.messages(session, box, with_summary=False)
    reader = app.mailboxes.digest_reader(session, box)
    await reader.get(records)
    forged = [r if r.uid == 1 else replace(r, blob_id="elsewhere") for r in records]
    agreements = Agreements(monkeypatch)
    session.opener.forget_keys()
    got = await reader.get(forged)
    # The digest names another blob than the record: the window is read again from
    # storage, and the record that does not match what storage holds gets nothing.
    assert agreements.count == 0 and got[2].blob_id == records[1].blob_id


async def test_without_views_packs_are_not_written(app: App, session: Session) -> None:
    box = await _fill(app, session, 2)
    plain = DigestService(app.cells)
    records = await app.mailboxes.messages(session, box, with_summary=False)
    got = await plain.reader(session, box).get(records)
    await plain.flush()
    assert got[1].views == () and got[1].header.startswith(b"From:")
    assert await app.cells.get("eu-dublin").store.get_digest_packs(box, 1, 10) == []


async def test_sessions_of_one_process_share_hot_windows(
        app: App, session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    box = await _fill(app, session, 3)
    mb = app.mailboxes
    records = await mb.messages(session, box, with_summary=False)
    await mb.digest_reader(session, box).get(records)
    other = await app.accounts.authenticate("bob@example.test", PASSWORD)
    agreements = Agreements(monkeypatch)
    reads = 0
    store = app.cells.get("eu-dublin").store
    real = store.get_digest_packs

    async def counting(*args: int) -> list[DigestPack]:
        nonlocal reads
        reads += 1
        return await real(*args)

    monkeypatch.setattr(store, "get_digest_packs", counting)
    got = await mb.digest_reader(other, box).get(records)
    assert sorted(got) == [1, 2, 3] and reads == 0 and agreements.count == 0
    await mb.expunge(other, box, [2])
    again = await mb.digest_reader(session, box).get(
        await mb.messages(session, box, with_summary=False))
    assert sorted(again) == [1, 3]
    assert all(2 not in hot for hot, *_ in mb.digests._hot.values())


async def test_hot_windows_expire(app: App, session: Session) -> None:
    now = [0.0]
    service = DigestService(app.cells, views.VIEWS, clock=lambda: now[0])
    box = await _fill(app, session, 2)
    records = await app.mailboxes.messages(session, box, with_summary=False)
    await service.reader(session, box).get(records)
    ident = ("eu-dublin", session.ref.record.id, box, 1)
    assert service.hot_get(ident) is not None
    now[0] += DigestService.HOT_TTL_S + 1
    assert service.hot_get(ident) is None
    await service.flush()


async def test_readers_needing_one_window_at_once_open_it_once(
        app: App, session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    box = await _fill(app, session, 6)
    mb = app.mailboxes
    records = await mb.messages(session, box, with_summary=False)
    sessions = [session, *[await app.accounts.authenticate("bob@example.test", PASSWORD)
                           for _ in range(3)]]
    agreements = Agreements(monkeypatch)
    results = await asyncio.gather(*(mb.digest_reader(s, box).get(records)
                                     for s in sessions))
    assert all(sorted(r) == [1, 2, 3, 4, 5, 6] for r in results)
    assert agreements.count == len(records)


async def test_hot_windows_stay_within_their_byte_budget(app: App, session: Session) -> None:
    box = await _fill(app, session, PACK_SPAN * 2 + 1)  # three windows
    records = await app.mailboxes.messages(session, box, with_summary=False)
    one = DigestService(app.cells, views.VIEWS)
    await one.reader(session, box).get(records[:1])
    window_bytes = one._hot_used  # a whole window: a reader makes every message of it
    service = DigestService(app.cells, views.VIEWS, hot_bytes=int(window_bytes * 1.5))
    await service.reader(session, box).get(records)
    assert service._hot_used <= int(window_bytes * 1.5)
    assert len(service._hot) == 2  # the oldest full window made way; the last is small
    none = DigestService(app.cells, views.VIEWS, hot_bytes=0)
    await none.reader(session, box).get(records)
    assert none._hot_used == 0 and not none._hot
    for s in (one, service, none):
        await s.flush()
