"""A data directory made before parts were bound keeps working (issue 13 point 1):
messages sealed in format version 1, digest packs in the LLD1 layout in LLB1 boxes
and text packs in LLB1 boxes, all written byte by byte as the earlier release wrote
them (tests/support/legacy_seal.py), are read over IMAP as before -- packs used, not
called damaged nor made again -- and version 1 keeps its own protection: two swapped
bodies are still a NO."""

from __future__ import annotations

import logging
import os
import sqlite3
import struct
from datetime import UTC, datetime

import pytest
from imap_script import Imap
from test_imap_damaged_blobs import blob_place, damaged_lines, swap_blobs

from letterlock.crypto import seal
from letterlock.imap import views
from letterlock.mime import summary as summaries
from letterlock.services.mail.digests import Digest
from letterlock.services.operations.log_events import EVENTS_LOGGER, LogEvent
from letterlock.storage.models import NewMessage
from support import legacy_seal


def raw(n: int) -> bytes:
    return (b"Subject: old %d\r\nFrom: Old Sender <old@example.test>\r\n\r\n"
            b"written long ago %d\r\n" % (n, n))


def legacy_digest_pack(digests: list[Digest]) -> bytes:
    """A digest pack's plaintext in the LLD1 layout (no message ids)."""
    entry = struct.Struct(">II32sHII" + "I" * views.VIEWS.count)
    out = [b"LLD1", struct.pack(">B", len(views.VIEWS.version)), views.VIEWS.version,
           struct.pack(">BI", views.VIEWS.count, len(digests))]
    for d in digests:
        blob = d.blob_id.encode("ascii")
        out += [entry.pack(d.uid, d.size, d.key, len(blob), len(d.header), len(d.structure),
                           *(len(v) for v in d.views)), blob, d.header, d.structure, *d.views]
    return b"".join(out)


async def test_a_data_directory_of_the_earlier_format_keeps_working(
        imap: Imap, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, EVENTS_LOGGER)
    app = imap.app
    ref = await app.accounts.resolve(imap.user)
    record = ref.record
    box = await app.mailboxes.mailbox_for_delivery(ref, "INBOX")
    items = []
    for n in range(3):
        summary = summaries.encode(summaries.summarize(raw(n)))
        body, sealed_summary = legacy_seal.seal_v1([raw(n), summary], record.public_key,
                                                   record.key_id)
        items.append((NewMessage(box, "", len(raw(n)), datetime(2020, 1, 1, tzinfo=UTC),
                                 frozenset(), sealed_summary), body))
    await app.mailboxes.append_sealed(ref, items)
    db_path = app.config.home / "regions" / "us-east" / "cell.sqlite3"
    db = sqlite3.connect(db_path)
    try:
        blobs = [b for (b,) in db.execute("SELECT blob_id FROM messages ORDER BY uid")]
    finally:
        db.close()
    for blob_id in blobs:
        pack, offset, _ = blob_place(imap, blob_id)
        with open(pack, "rb") as fh:
            assert os.pread(fh.fileno(), 5, offset) == b"LLS1\x01"  # version 1 on disk

    # The earlier release's packs: digests and texts of the window, in old boxes.
    session = await app.accounts.authenticate(imap.user, imap.password)
    records = await app.mailboxes.messages(session, box, with_summary=False)
    made = await app.mailboxes.digest_reader(session, box).get(records)
    assert all(d.message_id == b"" for d in made.values())  # nothing to name them by
    c = await imap.session("INBOX")
    lines = await c.command("s", "UID SEARCH BODY long")  # makes the text pack
    assert lines == [b"* SEARCH 1 2 3", b"s OK UID SEARCH completed"]
    await app.mailboxes.digests.flush()
    await app.mailboxes.text_index.flush()
    store = app.cells.get("us-east").store
    [text] = await store.get_text_packs(box, 1, 3)
    text_key = session.opener.derive_key(b"text index")
    text_plain = seal.open_bound_box(text_key, text.data, record.id,
                                     struct.pack(">QQQQ", box, 1, 3, 3), "text pack")
    db = sqlite3.connect(db_path)
    try:
        db.execute("UPDATE digest_packs SET data=? WHERE mailbox_id=?", (legacy_seal.box_v1(
            session.opener.derive_key(b"digest packs"),
            legacy_digest_pack([made[u] for u in (1, 2, 3)]),
            legacy_seal.pack_associated_v1(b"digest", record.id, box, 1, 3, 3)), box))
        db.execute("UPDATE text_packs SET data=? WHERE mailbox_id=?", (legacy_seal.box_v1(
            text_key, text_plain,
            legacy_seal.pack_associated_v1(b"text", record.id, box, 1, 3, 3)), box))
        assert db.total_changes == 2
        db.commit()
    finally:
        db.close()
    app.mailboxes.digests.clear()  # as in a server started on the old directory
    app.mailboxes.text_index.clear()

    lines = await c.command("f", "UID FETCH 1:3 (ENVELOPE BODY.PEEK[])")
    assert lines[-1] == b"f OK UID FETCH completed"
    for n, line in enumerate(lines[:3]):
        assert b'"old %d"' % n in line and line.endswith(b"written long ago %d\r\n)" % n)
    lines = await c.command("t", "UID SEARCH BODY \"long ago 1\"")
    assert lines == [b"* SEARCH 2", b"t OK UID SEARCH completed"]
    await app.mailboxes.digests.flush()
    await app.mailboxes.text_index.flush()
    # The old packs were used as they are: not damaged, not made again.
    assert damaged_lines(caplog) == []
    assert not [r for r in caplog.records
                if getattr(r, "ll_event", None) is LogEvent.TEXT_INDEX_DAMAGED]
    assert [p.data[:4] for p in await store.get_digest_packs(box, 1, 3)] == [b"LLB1"]
    assert [p.data[:4] for p in await store.get_text_packs(box, 1, 3)] == [b"LLB1"]

    # New mail beside the old is sealed in the bound format.
    await app.mailboxes.append(ref, "INBOX", raw(3))
    db = sqlite3.connect(db_path)
    try:
        [(newest,)] = db.execute("SELECT blob_id FROM messages WHERE uid=4")
    finally:
        db.close()
    pack, offset, _ = blob_place(imap, newest)
    with open(pack, "rb") as fh:
        assert os.pread(fh.fileno(), 5, offset) == b"LLS1\x02"
    await c.command("p", "NOOP")
    lines = await c.command("n", "UID FETCH 1:4 (BODY.PEEK[TEXT])")
    assert lines[-1] == b"n OK UID FETCH completed"
    assert [line[:11] for line in lines[:-1]] == [b"* %d FETCH (" % u for u in (1, 2, 3, 4)]

    # Version 1's own protection holds: swapped old bodies are a NO, not each other.
    swap_blobs(imap, blobs[0], blobs[1])
    lines = await c.command("x", "UID FETCH 1:3 (BODY.PEEK[])")
    assert lines[-1] == b"x NO [CORRUPTION] Stored data of message UID 1,2 is missing or damaged"
    assert [(d["uid"], d["part"]) for d in damaged_lines(caplog)] == [(1, "body"), (2, "body")]
    await c.close()
