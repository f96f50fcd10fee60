"""A message whose sealed copy is missing or zeroed is a NO [CORRUPTION] to the client
and one mail:message:damaged line for the operator, never an OK without the message
(issue 13 point 1, the absence half); a message expunged by another session meanwhile
is still the quiet EXPUNGEISSUED of RFC 2180. The blob store is tampered with on disk."""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from imap_script import Imap

from letterlock.services.operations.log_events import EVENTS_LOGGER, LogEvent
from letterlock.storage.files import parse_id


async def append_three(imap: Imap) -> list[tuple[int, str]]:
    c = await imap.session()
    for i in range(3):
        raw = b"Subject: m%d\r\n\r\nbody %d\r\n" % (i, i)
        lines = await c.command(f"p{i}", b"APPEND INBOX {%d+}\r\n" % len(raw) + raw)
        assert lines[-1].startswith(f"p{i} OK".encode()), lines
    await c.close()
    db = sqlite3.connect(imap.app.config.home / "regions" / "us-east" / "cell.sqlite3")
    try:
        return list(db.execute("SELECT uid, blob_id FROM messages ORDER BY uid"))
    finally:
        db.close()


def blob_place(imap: Imap, blob_id: str) -> tuple[Path, int, int]:
    segment, offset, length = parse_id(blob_id)
    blobs = imap.app.config.home / "regions" / "us-east" / "blobs"
    [pack] = [p for p in blobs.rglob(f"{segment:08x}*") if p.suffix != ".idx"]
    return pack, offset, length


def swap_blobs(imap: Imap, first_id: str, second_id: str) -> None:
    """Exchange the stored bytes of two blobs of the same sealed length in place."""
    (pack, first, length), (_, second, other) = (blob_place(imap, first_id),
                                                 blob_place(imap, second_id))
    assert length == other
    fd = os.open(pack, os.O_RDWR)
    try:
        a, b = os.pread(fd, length, first), os.pread(fd, length, second)
        os.pwrite(fd, b, first)
        os.pwrite(fd, a, second)
    finally:
        os.close(fd)


def damaged_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [dict(r.ll_fields) for r in caplog.records  # type: ignore[attr-defined]
            if getattr(r, "ll_event", None) is LogEvent.MESSAGE_DAMAGED]


async def test_a_zeroed_blob_is_a_no_and_a_log_line(
        imap: Imap, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, EVENTS_LOGGER)
    rows = await append_three(imap)
    pack, offset, length = blob_place(imap, rows[1][1])
    fd = os.open(pack, os.O_RDWR)
    try:
        os.pwrite(fd, b"\0" * length, offset)
    finally:
        os.close(fd)
    c = await imap.session("INBOX")
    lines = await c.command("f", "FETCH 1:3 (BODY.PEEK[])")
    assert lines[-1] == b"f NO [CORRUPTION] Stored data of message UID 2 is missing or damaged"
    assert sum(b"FETCH (BODY[]" in line for line in lines) == 2  # the others are sent
    # The header comes from the message's sealed summary, which is intact ...
    lines = await c.command("h", "UID FETCH 2 (RFC822.SIZE BODY.PEEK[HEADER])")
    assert lines[-1] == b"h OK UID FETCH completed" and b"Subject: m1" in lines[0]
    # ... the text only from the damaged blob.
    lines = await c.command("u", "UID FETCH 2 (BODY.PEEK[TEXT])")
    assert lines[-1].startswith(b"u NO [CORRUPTION]"), lines
    assert [(d["uid"], d["blob"]) for d in damaged_lines(caplog)] == [(2, rows[1][1])] * 2
    await c.close()


async def test_a_missing_blob_is_a_no(imap: Imap, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, EVENTS_LOGGER)
    rows = await append_three(imap)
    pack, offset, _ = blob_place(imap, rows[2][1])
    os.truncate(pack, offset)  # the last blob is gone from the pack
    c = await imap.session("INBOX")
    lines = await c.command("f", "FETCH 3 (BODY.PEEK[TEXT])")
    assert lines[-1].startswith(b"f NO [CORRUPTION] Stored data of message UID 3")
    assert [d["uid"] for d in damaged_lines(caplog)] == [3]
    await c.close()


async def test_an_expunge_meanwhile_is_not_called_damage(
        imap: Imap, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, EVENTS_LOGGER)
    await append_three(imap)
    reader = await imap.session("INBOX")
    other = await imap.session("INBOX")
    await other.command("d", "STORE 2 +FLAGS.SILENT (\\Deleted)")
    await other.command("e", "EXPUNGE")
    lines = await reader.command("f", "FETCH 1:3 (BODY.PEEK[])")
    assert lines[-1].startswith(b"f OK [EXPUNGEISSUED]"), lines
    assert damaged_lines(caplog) == []
    await reader.close()
    await other.close()


async def test_blobs_swapped_within_an_account_are_a_no_not_the_other_body(
        imap: Imap, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, EVENTS_LOGGER)
    rows = await append_three(imap)  # "body 0" and "body 1" seal to the same length
    swap_blobs(imap, rows[0][1], rows[1][1])
    c = await imap.session("INBOX")
    lines = await c.command("f", "FETCH 1:2 (BODY.PEEK[])")
    assert lines == [b"f NO [CORRUPTION] Stored data of message UID 1,2 is missing or damaged"]
    assert [d["uid"] for d in damaged_lines(caplog)] == [1, 2]
    await c.close()


async def test_swapped_blobs_never_open_as_the_other_message_anywhere(
        imap: Imap) -> None:
    """Readers without digests (SEARCH BODY on a cold mailbox, export, migration,
    spam learning) open a blob with the key of the message's own sealed summary, so
    a swapped blob fails there too instead of showing the other message's body."""
    from letterlock.errors import CryptoError
    rows = await append_three(imap)
    (pack, first, length), (_, second, other) = (blob_place(imap, rows[0][1]),
                                                 blob_place(imap, rows[1][1]))
    assert length == other
    session = await imap.app.accounts.authenticate(imap.user, imap.password)
    box = await imap.app.mailboxes.get_mailbox(session, "INBOX")
    full = await imap.app.mailboxes.messages(session, box.id)
    light = await imap.app.mailboxes.get_messages(session, box.id, [1, 2, 3],
                                                  with_summary=False)
    assert not light[0].summary  # the path that must look the summary up
    fd = os.open(pack, os.O_RDWR)
    try:
        a, b = os.pread(fd, length, first), os.pread(fd, length, second)
        os.pwrite(fd, b, first)
        os.pwrite(fd, a, second)
    finally:
        os.close(fd)
    for records in (full, light, full[:1], light[1:2]):
        with pytest.raises(CryptoError):
            await imap.app.mailboxes.bodies(session, records)
    # The untouched third message still opens, by either kind of record.
    assert (await imap.app.mailboxes.bodies(session, full[2:]))[3].endswith(b"body 2\r\n")
    assert (await imap.app.mailboxes.bodies(session, light[2:]))[3].endswith(b"body 2\r\n")


async def test_a_changed_size_row_is_answered_from_the_sealed_copy(
        imap: Imap, caplog: pytest.LogCaptureFixture) -> None:
    """Issue 13 point 2: metadata mail depends on is checked against the sealed copy.
    A size changed in the database does not reach a client that asks for the header
    (the digest holds the size sealed at delivery), and the operator is told."""
    caplog.set_level(logging.INFO, EVENTS_LOGGER)
    rows = await append_three(imap)
    true_size = len(b"Subject: m1\r\n\r\nbody 1\r\n")
    db = sqlite3.connect(imap.app.config.home / "regions" / "us-east" / "cell.sqlite3")
    try:
        db.execute("UPDATE messages SET size=? WHERE uid=2", (true_size + 5000,))
        db.commit()
    finally:
        db.close()
    c = await imap.session("INBOX")
    lines = await c.command("s", "UID FETCH 2 (RFC822.SIZE BODY.PEEK[HEADER])")
    assert lines[-1] == b"s OK UID FETCH completed"
    assert b"RFC822.SIZE %d " % true_size in lines[0], lines[0]
    lines = await c.command("b", "UID FETCH 2 (RFC822.SIZE BODY.PEEK[])")
    assert b"RFC822.SIZE %d " % true_size in lines[0], lines[0]
    [line] = damaged_lines(caplog)
    assert (line["uid"], line["blob"]) == (2, rows[1][1])
    assert line["reason"] == "size differs from the sealed copy"
    await c.close()


async def test_swapped_uids_are_reported(imap: Imap, caplog: pytest.LogCaptureFixture) -> None:
    """Two rows whose UIDs were swapped in the database: each UID now names another
    (intact) message than its sealed digest recorded. UIDs are never reused and a
    message's blob never changes, so the operator is told which rows were edited."""
    caplog.set_level(logging.INFO, EVENTS_LOGGER)
    rows = await append_three(imap)
    c = await imap.session("INBOX")
    lines = await c.command("a", "FETCH 1:3 (BODY.PEEK[HEADER])")
    assert lines[-1] == b"a OK FETCH completed"
    await imap.app.mailboxes.digests.flush()
    assert damaged_lines(caplog) == []
    db = sqlite3.connect(imap.app.config.home / "regions" / "us-east" / "cell.sqlite3")
    try:
        db.execute("UPDATE messages SET uid=99 WHERE uid=1")
        db.execute("UPDATE messages SET uid=1 WHERE uid=2")
        db.execute("UPDATE messages SET uid=2 WHERE uid=99")
        db.commit()
    finally:
        db.close()
    lines = await c.command("b", "UID FETCH 1:2 (BODY.PEEK[HEADER])")
    assert lines[-1] == b"b OK UID FETCH completed"
    reported = sorted((d["uid"], d["blob"]) for d in damaged_lines(caplog))
    assert reported == [(1, rows[1][1]), (2, rows[0][1])]
    await c.close()
