"""The matter file's rows in ``HOME/control/legal.sqlite3``: the case number, notes
(append-only), the attached originals (their sealed bytes live in files beside the
database: services/legal/matter_file.py) and the letters issued.

The tables are made with the legal database's own (``FILE_SCHEMA`` is part of its
schema); rows are written as steps of a ``LegalTxn``, so each change commits with
its audit events (:func:`add_attachment` and the others return such a step), and
read through ``LegalStore.read`` with the readers below. No module here imports the
legal store: it imports this one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from letterlock.errors import AlreadyExists, Refused

FILE_SCHEMA = """
CREATE TABLE IF NOT EXISTS matter_case_numbers (
    matter_id TEXT PRIMARY KEY REFERENCES matters(id),
    case_number TEXT NOT NULL,
    set_at TEXT NOT NULL,
    set_by TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS matter_notes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    matter_id TEXT NOT NULL REFERENCES matters(id),
    added_at TEXT NOT NULL,
    added_by TEXT NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS matter_notes_by_matter ON matter_notes(matter_id);
CREATE TRIGGER IF NOT EXISTS matter_notes_append_only_u BEFORE UPDATE ON matter_notes
BEGIN SELECT RAISE(ABORT, 'notes are append-only'); END;
CREATE TRIGGER IF NOT EXISTS matter_notes_append_only_d BEFORE DELETE ON matter_notes
BEGIN SELECT RAISE(ABORT, 'notes are append-only'); END;
CREATE TABLE IF NOT EXISTS matter_attachments (
    id TEXT PRIMARY KEY,
    matter_id TEXT NOT NULL REFERENCES matters(id),
    name TEXT NOT NULL,              -- the file name as given (a base name)
    media_type TEXT NOT NULL,
    size INTEGER NOT NULL,           -- of the original
    sha256 TEXT NOT NULL,            -- of the original, hex
    sealed_file TEXT NOT NULL,       -- under the legal work directory
    key_id TEXT NOT NULL,            -- the matter-file key it is sealed to, hex
    added_at TEXT NOT NULL,
    added_by TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS matter_attachments_by_matter ON matter_attachments(matter_id);
CREATE TABLE IF NOT EXISTS matter_letters (
    id TEXT PRIMARY KEY,
    matter_id TEXT NOT NULL REFERENCES matters(id),
    kind TEXT NOT NULL,              -- response | production-certificate
    stage INTEGER NOT NULL,          -- which decision of the matter (1, 2, ...)
    subject_sha256 TEXT NOT NULL,    -- of the decision (response) or package manifest
    directory TEXT NOT NULL,         -- under the legal work directory
    html_sha256 TEXT NOT NULL,
    pdf_sha256 TEXT NOT NULL,
    issued_at TEXT NOT NULL,
    issued_by TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS matter_letters_by_matter ON matter_letters(matter_id);
"""

Step = Callable[[sqlite3.Connection], object]


@dataclass(frozen=True)
class NoteRow:
    id: int
    matter_id: str
    added_at: datetime
    added_by: str
    text: str


@dataclass(frozen=True)
class AttachmentRow:
    id: str
    matter_id: str
    name: str
    media_type: str
    size: int
    sha256: str
    sealed_file: str
    key_id: str
    added_at: datetime
    added_by: str


@dataclass(frozen=True)
class LetterRow:
    id: str
    matter_id: str
    kind: str
    stage: int
    subject_sha256: str
    directory: str
    html_sha256: str
    pdf_sha256: str
    issued_at: datetime
    issued_by: str


@dataclass(frozen=True)
class CaseNumberRow:
    matter_id: str
    case_number: str
    set_at: datetime
    set_by: str


def _dt(value: object) -> datetime:
    return datetime.fromisoformat(str(value))


R = TypeVar("R")


def _row(make: Callable[..., R], values: Sequence[Any]) -> R:
    """A row of attachments or letters: the columns as stored, the time (the one
    before the last) parsed."""
    cells = list(values)
    cells[-2] = _dt(cells[-2])
    return make(*cells)


_ATTACHMENT_COLS = (
    "id, matter_id, name, media_type, size, sha256, sealed_file, key_id, added_at, added_by"
)
_LETTER_COLS = (
    "id, matter_id, kind, stage, subject_sha256, directory, html_sha256, pdf_sha256, "
    "issued_at, issued_by"
)


# -- steps of a LegalTxn ------------------------------------------------------------------


def add_note(matter_id: str, at: datetime, by: str, text: str) -> Step:
    return lambda c: c.execute(
        "INSERT INTO matter_notes (matter_id, added_at, added_by, text) VALUES (?,?,?,?)",
        (matter_id, at.isoformat(), by, text),
    )


def set_case_number(matter_id: str, case_number: str, at: datetime, by: str) -> Step:
    return lambda c: c.execute(
        "INSERT INTO matter_case_numbers VALUES (?,?,?,?) ON CONFLICT (matter_id) DO "
        "UPDATE SET case_number=excluded.case_number, set_at=excluded.set_at, "
        "set_by=excluded.set_by",
        (matter_id, case_number, at.isoformat(), by),
    )


def add_attachment(row: AttachmentRow) -> Step:
    def fn(c: sqlite3.Connection) -> None:
        try:
            c.execute(
                f"INSERT INTO matter_attachments ({_ATTACHMENT_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    row.id,
                    row.matter_id,
                    row.name,
                    row.media_type,
                    row.size,
                    row.sha256,
                    row.sealed_file,
                    row.key_id,
                    row.added_at.isoformat(),
                    row.added_by,
                ),
            )
        except sqlite3.IntegrityError as exc:
            raise AlreadyExists(f"attachment {row.id} exists already") from exc

    return fn


def add_letter(row: LetterRow) -> Step:
    """A letter; refused if the matter has one of its kind for the same subject."""

    def fn(c: sqlite3.Connection) -> None:
        found = c.execute(
            "SELECT id FROM matter_letters WHERE matter_id=? AND kind=? AND subject_sha256=?",
            (row.matter_id, row.kind, row.subject_sha256),
        ).fetchone()
        if found is not None:
            raise Refused(
                f"matter {row.matter_id} has its {row.kind} letter for this "
                f"{'package' if row.kind != 'response' else 'decision'} already ({found[0]})"
            )
        c.execute(
            f"INSERT INTO matter_letters ({_LETTER_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (
                row.id,
                row.matter_id,
                row.kind,
                row.stage,
                row.subject_sha256,
                row.directory,
                row.html_sha256,
                row.pdf_sha256,
                row.issued_at.isoformat(),
                row.issued_by,
            ),
        )

    return fn


# -- readers for LegalStore.read ------------------------------------------------------------


def notes_of(matter_id: str | None) -> Callable[[sqlite3.Connection], list[NoteRow]]:
    """The notes of one matter (None: of every matter), oldest first."""

    def fn(c: sqlite3.Connection) -> list[NoteRow]:
        where, args = ("WHERE matter_id=?", (matter_id,)) if matter_id else ("", ())
        return [
            NoteRow(int(r[0]), str(r[1]), _dt(r[2]), str(r[3]), str(r[4]))
            for r in c.execute(
                "SELECT id, matter_id, added_at, added_by, text FROM "
                f"matter_notes {where} ORDER BY id",
                args,
            )
        ]

    return fn


def case_numbers(
    matter_ids: Sequence[str] | None = None,
) -> Callable[[sqlite3.Connection], dict[str, CaseNumberRow]]:
    """Matter -> its case number (of the matters named, or of all)."""

    def fn(c: sqlite3.Connection) -> dict[str, CaseNumberRow]:
        rows = c.execute(
            "SELECT matter_id, case_number, set_at, set_by FROM matter_case_numbers"
        ).fetchall()
        wanted = None if matter_ids is None else set(matter_ids)
        return {
            str(r[0]): CaseNumberRow(str(r[0]), str(r[1]), _dt(r[2]), str(r[3]))
            for r in rows
            if wanted is None or str(r[0]) in wanted
        }

    return fn


def attachments_of(matter_id: str) -> Callable[[sqlite3.Connection], list[AttachmentRow]]:
    def fn(c: sqlite3.Connection) -> list[AttachmentRow]:
        return [
            _row(AttachmentRow, r)
            for r in c.execute(
                f"SELECT {_ATTACHMENT_COLS} FROM matter_attachments "
                "WHERE matter_id=? ORDER BY rowid",
                (matter_id,),
            )
        ]

    return fn


def letters_of(matter_id: str) -> Callable[[sqlite3.Connection], list[LetterRow]]:
    def fn(c: sqlite3.Connection) -> list[LetterRow]:
        return [
            _row(LetterRow, r)
            for r in c.execute(
                f"SELECT {_LETTER_COLS} FROM matter_letters WHERE matter_id=? ORDER BY rowid",
                (matter_id,),
            )
        ]

    return fn
