"""The matter file (issue 14, point 10): originals sealed to the matter-file key and
hashed, case numbers, append-only notes, the signed export of a whole matter, and
search over matters."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import sqlite3
import zipfile
from pathlib import Path

import pytest

from letterlock.app import App
from letterlock.audit.events import EventType
from letterlock.crypto.keys import KdfParams
from letterlock.errors import AuthenticationFailed, InvalidInput, NotInitialised
from letterlock.services.legal.file_key import create_file_key
from letterlock.services.legal.matter_file import (
    MAX_ATTACHMENT_BYTES,
    MatterQuery,
    TamperedAttachment,
)
from letterlock.services.legal.matters import LegalService
from letterlock.services.legal.production import verify_package
from letterlock.services.operations.log_events import EVENTS_LOGGER, LogEvent

from .harness import make_request
from .matter_support import add_bob, clear_events_of, clock, legal, log_records

__all__ = ["clock", "legal"]

PASSPHRASE = "the legal team's long passphrase"
ORDER = (
    b"%PDF-1.4\n% a scanned warrant\n1 0 obj << /Type /Catalog >> endobj\n"
    b"In the matter of bob@example.test: SEARCH WARRANT 25-mj-00042\n%%EOF\n"
)
FAST = KdfParams(memory_kib=1024, iterations=1, lanes=1)


def _key(app: App) -> Path:
    work = app.config.control_dir / "legal"
    create_file_key(work, PASSPHRASE, FAST)
    return work


async def test_an_original_round_trips_sealed_and_hashed(app: App, legal: LegalService) -> None:
    work = _key(app)
    await add_bob(app)
    matter = await legal.file(make_request(), "ada")
    filed = await legal.attach(matter.id, "ada", ORDER, "C:\\scans\\warrant.pdf")
    assert filed.name == "warrant.pdf" and filed.media_type == "application/pdf"
    assert filed.sha256 == hashlib.sha256(ORDER).hexdigest() and filed.size == len(ORDER)
    # Nothing under HOME holds the order in the clear: not the sealed file, not the
    # legal database, not the audit log.
    for path in app.config.home.rglob("*"):
        if path.is_file():
            assert b"25-mj-00042" not in path.read_bytes(), path
    [sealed] = (work / "files").iterdir()
    assert sealed.stat().st_mode & 0o077 == 0
    attachment, data = await legal.open_attachment(matter.id, filed.id, "bea", PASSPHRASE)
    assert data == ORDER and attachment == filed
    record = await legal.matter_file(matter.id)
    assert [a.sha256 for a in record.attachments] == [filed.sha256]
    # The hash is in the audit log too, with who filed it; opening it is logged.
    events = clear_events_of(log_records(app.config.control_dir), matter.id)
    added = [e for e in events if e.type == EventType.LEGAL_ATTACHMENT_ADDED]
    assert [(e.actor, dict(e.details)["sha256"]) for e in added] == [("ada", filed.sha256)]
    opened = [e for e in events if e.type == EventType.LEGAL_ATTACHMENT_OPENED]
    assert [e.actor for e in opened] == ["bea"]


async def test_a_changed_or_swapped_original_is_refused(
    app: App, legal: LegalService, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, EVENTS_LOGGER)
    work = _key(app)
    await add_bob(app)
    matter = await legal.file(make_request(), "ada")
    first = await legal.attach(matter.id, "ada", ORDER, "warrant.pdf")
    second = await legal.attach(matter.id, "ada", b"a cover letter\n", "cover.txt")
    assert second.media_type == "text/plain"
    path_1 = work / "files" / f"{first.id}.sealed"
    path_2 = work / "files" / f"{second.id}.sealed"
    good = path_1.read_bytes()
    # One flipped bit: the seal no longer opens.
    path_1.write_bytes(good[:-5] + bytes([good[-5] ^ 1]) + good[-4:])
    with pytest.raises(TamperedAttachment, match="does not open"):
        await legal.open_attachment(matter.id, first.id, "ada", PASSPHRASE)
    # Another original sealed to the same key, put in its place: it opens, but its
    # SHA-256 is not the one recorded.
    path_1.write_bytes(path_2.read_bytes())
    with pytest.raises(TamperedAttachment, match="SHA-256"):
        await legal.open_attachment(matter.id, first.id, "ada", PASSPHRASE)
    with pytest.raises(TamperedAttachment):
        await legal.export(matter.id, "ada", PASSPHRASE)
    path_1.unlink()
    with pytest.raises(TamperedAttachment, match="missing"):
        await legal.export(matter.id, "ada")
    path_1.write_bytes(good)
    _, data = await legal.open_attachment(matter.id, first.id, "ada", PASSPHRASE)
    assert data == ORDER
    logged = [
        dict(r.ll_fields)  # type: ignore[attr-defined]
        for r in caplog.records
        if getattr(r, "ll_event", None) is LogEvent.LEGAL_ORIGINAL_DAMAGED
    ]
    assert [(d["attachment"], d["reason"]) for d in logged] == [
        (first.id, "does-not-open"),
        (first.id, "sha256"),
        (first.id, "sha256"),
        (first.id, "missing"),
    ]


async def test_database_hash_changed_to_match_a_swap_is_caught_by_the_audit_log(
    app: App, legal: LegalService
) -> None:
    work = _key(app)
    await add_bob(app)
    matter = await legal.file(make_request(), "ada")
    first = await legal.attach(matter.id, "ada", ORDER, "warrant.pdf")
    second = await legal.attach(matter.id, "ada", b"another document\n", "other.txt")
    (work / "files" / f"{first.id}.sealed").write_bytes(
        (work / "files" / f"{second.id}.sealed").read_bytes()
    )
    with sqlite3.connect(app.config.control_dir / "legal.sqlite3") as db:
        db.execute(
            "UPDATE matter_attachments SET sha256=?, size=? WHERE id=?",
            (second.sha256, second.size, first.id),
        )
    with pytest.raises(TamperedAttachment, match="audit log"):
        await legal.export(matter.id, "ada", PASSPHRASE)


async def test_attaching_needs_a_key_a_limit_and_the_passphrase(
    app: App, legal: LegalService
) -> None:
    await add_bob(app)
    matter = await legal.file(make_request(), "ada")
    with pytest.raises(NotInitialised, match="file-key create"):
        await legal.attach(matter.id, "ada", ORDER, "warrant.pdf")
    _key(app)
    with pytest.raises(InvalidInput, match="at most"):
        await legal.attach(matter.id, "ada", b"x" * (MAX_ATTACHMENT_BYTES + 1), "big.bin")
    with pytest.raises(InvalidInput, match="empty"):
        await legal.attach(matter.id, "ada", b"", "empty.txt")
    with pytest.raises(InvalidInput, match="file name"):
        await legal.attach(matter.id, "ada", ORDER, "../")
    filed = await legal.attach(matter.id, "ada", ORDER, "warrant.pdf")
    with pytest.raises(AuthenticationFailed):
        await legal.open_attachment(matter.id, filed.id, "ada", "not the passphrase!")


async def test_notes_are_append_only_with_actor_and_time(
    app: App, legal: LegalService, clock: object
) -> None:
    await add_bob(app)
    matter = await legal.file(make_request(), "ada")
    await legal.add_note(matter.id, "ada", "Called the clerk: service confirmed.")
    await legal.add_note(matter.id, "bea", "Counsel reviewed the warrant.")
    await legal.set_case_number(matter.id, "bea", "25-mj-00042")
    record = await legal.matter_file(matter.id)
    assert [(n.number, n.added_by, n.text) for n in record.notes] == [
        (1, "ada", "Called the clerk: service confirmed."),
        (2, "bea", "Counsel reviewed the warrant."),
    ]
    assert record.case_number == "25-mj-00042"
    assert record.notes[0].added_at == clock.now  # type: ignore[attr-defined]
    with (
        sqlite3.connect(app.config.control_dir / "legal.sqlite3") as db,
        pytest.raises(sqlite3.IntegrityError, match="append-only"),
    ):
        db.execute("UPDATE matter_notes SET text='nothing happened'")
    with (
        sqlite3.connect(app.config.control_dir / "legal.sqlite3") as db,
        pytest.raises(sqlite3.IntegrityError, match="append-only"),
    ):
        db.execute("DELETE FROM matter_notes")
    with pytest.raises(InvalidInput, match="empty"):
        await legal.add_note(matter.id, "ada", "  ")
    events = clear_events_of(log_records(app.config.control_dir), matter.id)
    noted = [e for e in events if e.type == EventType.LEGAL_NOTE_ADDED]
    assert [e.actor for e in noted] == ["ada", "bea"]
    assert all("clerk" not in json.dumps(e.details) for e in noted)  # text stays out


async def test_export_holds_the_whole_matter_signed(app: App, legal: LegalService) -> None:
    _key(app)
    await add_bob(app)
    matter = await legal.file(make_request(), "ada")
    filed = await legal.attach(matter.id, "ada", ORDER, "warrant.pdf")
    await legal.add_note(matter.id, "ada", "Served in person.")
    await legal.set_case_number(matter.id, "ada", "25-mj-00042")
    await legal.decide(matter.id, "ada", override="reject", justification="test")
    export = await legal.export(matter.id, "bea", PASSPHRASE)
    assert hashlib.sha256(export.data).hexdigest() == export.sha256
    with zipfile.ZipFile(io.BytesIO(export.data)) as zf:
        files = {n: zf.read(n) for n in zf.namelist()}
    assert files[f"attachments/{filed.id}/warrant.pdf"] == ORDER
    shown = json.loads(files["matter.json"])
    assert shown["id"] == matter.id and shown["decision"]["targets"]
    assert shown["request"]["instrument"] == "us-warrant" and "facts" in shown
    record = json.loads(files["file.json"])
    assert record["case_number"] == "25-mj-00042"
    assert [n["text"] for n in record["notes"]] == ["Served in person."]
    assert record["attachments"][0]["sha256"] == filed.sha256
    stages = json.loads(files["stages.json"])
    assert stages["decision"]["targets"]["bob@example.test"]["content"]["outcome"] == "reject"
    events = [json.loads(line) for line in files["audit-events.jsonl"].splitlines()]
    kinds = [e["type"] for e in events]
    assert kinds[:2] == ["legal:matter:filed", "legal:matter:evaluated"]
    assert {"legal:attachment:added", "legal:note:added", "legal:matter:overridden"} <= set(kinds)
    manifest = json.loads(files["manifest.json"])
    listed = {i["path"]: i["sha256"] for i in manifest["items"]}
    assert set(listed) == set(files) - {"manifest.json", "manifest.sig"}
    assert all(hashlib.sha256(files[p]).hexdigest() == h for p, h in listed.items())
    # The signature is the production packages': verify-package checks an export.
    archive = app.config.home / export.name
    archive.write_bytes(export.data)
    check = verify_package(archive)
    assert check.ok and check.matter == matter.id, check.problems
    changed = dict(files)
    changed["file.json"] = files["file.json"].replace(b"Served", b"Faxed ")
    tampered = app.config.home / "tampered.zip"
    with zipfile.ZipFile(tampered, "w") as zf:
        for name, data in changed.items():
            zf.writestr(name, data)
    assert verify_package(tampered).problems == ("file.json: SHA-256 does not match",)
    # Without the passphrase the original is in it as sealed on disk.
    sealed = await legal.export(matter.id, "bea")
    with zipfile.ZipFile(io.BytesIO(sealed.data)) as zf:
        names = zf.namelist()
        assert f"attachments/{filed.id}.sealed" in names
        assert all(b"25-mj-00042" not in zf.read(n) for n in names if "attachments" in n)
    exported = [
        e
        for e in clear_events_of(log_records(app.config.control_dir), matter.id)
        if e.type == EventType.LEGAL_MATTER_EXPORTED
    ]
    assert [dict(e.details)["sha256"] for e in exported] == [export.sha256, sealed.sha256]


async def test_an_export_of_a_production_carries_its_package_manifest(
    app: App, legal: LegalService
) -> None:
    await add_bob(app)
    matter = await legal.file(make_request(categories=["subscriber"]), "ada")
    decided = await legal.decide(matter.id, "ada")
    assert decided.package is not None
    export = await legal.export(matter.id, "ada")
    with zipfile.ZipFile(io.BytesIO(export.data)) as zf:
        names = set(zf.namelist())
        stages = json.loads(zf.read("stages.json"))
    assert {f"packages/{matter.id}/manifest.json", f"packages/{matter.id}/manifest.sig"} <= names
    assert stages["packages"] == [matter.id]
    assert not any(n.startswith("subscriber/") for n in names)  # no produced data


async def test_search_by_every_term(app: App, legal: LegalService) -> None:
    await add_bob(app)
    await app.accounts.create("carol@example.test", "eu-dublin", "correct horse battery")
    warrant = await legal.file(make_request(), "ada")
    subpoena = await legal.file(
        make_request(
            instrument="us-subpoena",
            categories=["subscriber"],
            targets=["carol@example.test"],
            issuer={"authority": "prosecutor", "name": "Office of the District Attorney"},
        ),
        "ada",
    )
    await legal.set_case_number(warrant.id, "ada", "25-MJ-00042")
    await legal.add_note(subpoena.id, "ada", "Prosecutor agreed to narrow the dates.")
    await legal.close(subpoena.id, "ada")

    async def ids(**terms: str) -> list[str]:
        return [m.id for m in await legal.search(MatterQuery(**terms))]

    assert await ids(case_number="mj-00042") == [warrant.id]
    assert await ids(target="carol@") == [subpoena.id]
    assert sorted(await ids(target="example.test")) == sorted([warrant.id, subpoena.id])
    assert await ids(authority="prosecutor") == [subpoena.id]
    assert await ids(authority="district attorney") == [subpoena.id]
    assert await ids(authority="S.D.N.Y.") == [warrant.id]
    assert await ids(instrument="us-warrant") == [warrant.id]
    assert await ids(state="closed") == [subpoena.id]
    assert await ids(text="NARROW") == [subpoena.id]
    assert await ids(text="narrow", state="evaluated") == []
    assert await ids(case_number="00043") == []
    with pytest.raises(InvalidInput, match="search term"):
        await legal.search(MatterQuery())


async def test_file_events_of_a_gagged_matter_stay_sealed_until_lifted(
    app: App, legal: LegalService
) -> None:
    # us-nsl implies an indefinite gag: the matter file's events enter the log as
    # commitments, like every other step of the matter, until the order is lifted.
    _key(app)
    await add_bob(app)
    matter = await legal.file(
        make_request(instrument="us-nsl", categories=["subscriber"], issuer={"name": "FBI"}),
        "ada",
    )
    filed = await legal.attach(matter.id, "ada", ORDER, "nsl.pdf")
    await legal.add_note(matter.id, "ada", "Gag implied by the instrument.")
    await legal.set_case_number(matter.id, "ada", "NSL-1")
    file_events = {
        EventType.LEGAL_ATTACHMENT_ADDED,
        EventType.LEGAL_NOTE_ADDED,
        EventType.LEGAL_CASE_NUMBER_SET,
    }
    records = log_records(app.config.control_dir)
    assert not [e for e in clear_events_of(records, matter.id) if e.type in file_events]
    assert any(r.kind == "commitment" for r in records)
    await legal.lift_gag(matter.id, "ada")
    shown = clear_events_of(log_records(app.config.control_dir), matter.id)
    assert {e.type for e in shown} >= file_events
    [added] = [e for e in shown if e.type == EventType.LEGAL_ATTACHMENT_ADDED]
    assert dict(added.details)["sha256"] == filed.sha256
