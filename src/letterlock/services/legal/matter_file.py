"""The matter file: what the legal team keeps with a matter besides the workflow.

- the **case number** the issuing court or authority gave the order;
- **notes**, each with its author and time, append-only (the database refuses to
  change or delete one);
- the **originals** (the order document as served: a PDF, a scan, a text), sealed
  to the matter-file key (file_key.py) in ``HOME/control/legal/files/``, their size
  and SHA-256 recorded in the matter and in the audit event that files them. Reading
  one back needs the legal team's passphrase, and checks both the seal and the hash:
  a changed, swapped or truncated file is refused (``TamperedAttachment``);
- **search** over matters by case number, target, authority, instrument, state and
  the text of notes.

Each change is one transaction of the legal database with its audit event (sealed
while the matter's order is in force, like every step: journal.py). A note's text,
an original's name and its content never enter the audit log: only their number,
size and hash. ``LegalService`` inherits these steps (as it does approval.py's).
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from letterlock.audit.events import EventType
from letterlock.crypto.seal import seal
from letterlock.errors import CryptoError, InvalidInput, NotFound
from letterlock.policy import LegalRequest, format_time
from letterlock.services.legal.file_key import load_file_key, unlock_file_key
from letterlock.services.legal.matter import Matter
from letterlock.services.operations.log_events import LogEvent, event
from letterlock.storage import legal_file_sqlite as rows
from letterlock.storage.durable import write_atomically
from letterlock.storage.legal_sqlite import LegalStore, LegalTxn

MAX_ATTACHMENT_BYTES = 50 * 1024 * 1024
"""The largest original accepted (a long scanned order is a few MB)."""
MAX_NOTE_CHARS = 20_000
MAX_CASE_NUMBER_CHARS = 200
FILES_DIR = "files"

_SNIFF = (
    (b"%PDF-", "application/pdf"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
    (b"PK\x03\x04", "application/zip"),
)


class TamperedAttachment(CryptoError):
    """A filed original no longer opens, or no longer has the SHA-256 recorded when it
    was filed: it was changed, swapped or damaged on disk."""


def damaged(matter_id: str, attachment_id: str, reason: str, what: str) -> TamperedAttachment:
    """The error for a damaged original, logged (``legal:original:damaged``)."""
    event(
        LogEvent.LEGAL_ORIGINAL_DAMAGED, matter=matter_id, attachment=attachment_id, reason=reason
    )
    return TamperedAttachment(f"attachment {attachment_id} of matter {matter_id}: {what}")


def media_type_of(data: bytes) -> str:
    """What the bytes are, from their first bytes (text if they are UTF-8)."""
    for magic, kind in _SNIFF:
        if data.startswith(magic):
            return kind
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return "application/octet-stream"
    return "text/plain"


def clean_name(name: str) -> str:
    """A base name fit to show and to name a file in an export."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1].strip()
    base = "".join(ch for ch in base if unicodedata.category(ch)[0] != "C")
    if base in ("", ".", ".."):
        raise InvalidInput("the attachment needs a file name")
    if len(base) > 200:
        raise InvalidInput("the attachment's file name is longer than 200 characters")
    return base


def _one_line(value: str, what: str, limit: int) -> str:
    text = value.strip()
    if not text:
        raise InvalidInput(f"{what} is empty")
    if len(text) > limit:
        raise InvalidInput(f"{what} is longer than {limit} characters")
    if any(unicodedata.category(ch)[0] == "C" for ch in text):
        raise InvalidInput(f"{what} has control characters")
    return text


@dataclass(frozen=True)
class Attachment:
    """A filed original, as its readers see it (never its content)."""

    id: str
    name: str
    media_type: str
    size: int
    sha256: str
    added_at: datetime
    added_by: str

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "media_type": self.media_type,
            "size": self.size,
            "sha256": self.sha256,
            "added_at": format_time(self.added_at),
            "added_by": self.added_by,
        }

    @staticmethod
    def of(row: rows.AttachmentRow) -> Attachment:
        return Attachment(
            row.id, row.name, row.media_type, row.size, row.sha256, row.added_at, row.added_by
        )


@dataclass(frozen=True)
class Note:
    number: int
    """1, 2, ... in the matter."""
    added_at: datetime
    added_by: str
    text: str

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "added_at": format_time(self.added_at),
            "added_by": self.added_by,
            "text": self.text,
        }


@dataclass(frozen=True)
class LetterInfo:
    """A signed letter kept with the matter (letters.py)."""

    id: str
    kind: str
    stage: int
    issued_at: datetime
    issued_by: str
    html_sha256: str
    pdf_sha256: str
    directory: str

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "stage": self.stage,
            "issued_at": format_time(self.issued_at),
            "issued_by": self.issued_by,
            "html_sha256": self.html_sha256,
            "pdf_sha256": self.pdf_sha256,
        }


@dataclass(frozen=True)
class MatterFile:
    matter_id: str
    case_number: str | None
    notes: tuple[Note, ...]
    attachments: tuple[Attachment, ...]
    letters: tuple[LetterInfo, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "matter": self.matter_id,
            "case_number": self.case_number,
            "notes": [n.to_json() for n in self.notes],
            "attachments": [a.to_json() for a in self.attachments],
            "letters": [x.to_json() for x in self.letters],
        }


@dataclass(frozen=True)
class MatterQuery:
    """Search terms; every one given must match (text ones: a case-insensitive
    substring)."""

    case_number: str | None = None
    target: str | None = None
    authority: str | None = None
    """The issuer's kind (court, police...) or a part of its name."""
    instrument: str | None = None
    state: str | None = None
    text: str | None = None
    """A part of a note's text."""

    def empty(self) -> bool:
        return not any(
            (self.case_number, self.target, self.authority, self.instrument, self.state, self.text)
        )


def _has(haystack: str | None, needle: str) -> bool:
    return haystack is not None and needle.casefold() in haystack.casefold()


def _write_sealed(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, data)


class MatterFileSteps:
    """The matter file's steps of LegalService (its base, like FourEyes)."""

    _store: LegalStore
    _dir: Path
    _clock: Callable[[], datetime]

    # Provided by LegalService.
    async def _recover(self) -> None:
        raise NotImplementedError

    async def show(self, matter_id: str) -> Matter:
        raise NotImplementedError

    async def list_matters(
        self, *, open_only: bool = False, due_within: Any = None
    ) -> list[Matter]:
        raise NotImplementedError

    def _log(
        self,
        txn: LegalTxn,
        kind: EventType,
        actor: str,
        request: LegalRequest,
        matter: str,
        account: str | None = None,
        details: Sequence[tuple[str, str]] = (),
    ) -> None:
        raise NotImplementedError

    async def _commit(
        self, txn: LegalTxn, *, reveal: str | None = None, reseal: str | None = None
    ) -> None:
        raise NotImplementedError

    # -- reading ---------------------------------------------------------------------------

    async def matter_file(self, matter_id: str) -> MatterFile:
        """The case number, notes, originals and letters of a matter."""
        await self.show(matter_id)  # NotFound for an unknown matter
        numbers = await self._store.read(rows.case_numbers([matter_id]))
        notes = await self._store.read(rows.notes_of(matter_id))
        attachments = await self._store.read(rows.attachments_of(matter_id))
        letters = await self._store.read(rows.letters_of(matter_id))
        number = numbers.get(matter_id)
        return MatterFile(
            matter_id,
            None if number is None else number.case_number,
            tuple(Note(i, n.added_at, n.added_by, n.text) for i, n in enumerate(notes, 1)),
            tuple(Attachment.of(a) for a in attachments),
            tuple(
                LetterInfo(
                    x.id,
                    x.kind,
                    x.stage,
                    x.issued_at,
                    x.issued_by,
                    x.html_sha256,
                    x.pdf_sha256,
                    x.directory,
                )
                for x in letters
            ),
        )

    async def search(self, query: MatterQuery) -> list[Matter]:
        """Matters matching every term of ``query``, in order of filing."""
        if query.empty():
            raise InvalidInput(
                "give at least one search term (case number, target, "
                "authority, instrument, state or text)"
            )
        numbers = await self._store.read(rows.case_numbers())
        noted: dict[str, list[str]] = {}
        if query.text:
            for note in await self._store.read(rows.notes_of(None)):
                noted.setdefault(note.matter_id, []).append(note.text)
        out = []
        for matter in await self.list_matters():
            request = matter.request
            number = numbers.get(matter.id)
            if query.case_number and not _has(
                None if number is None else number.case_number, query.case_number
            ):
                continue
            if query.target and not any(_has(t, query.target) for t in request.targets):
                continue
            if query.authority and not (
                query.authority.casefold() == request.issuer.authority
                or _has(request.issuer.name, query.authority)
            ):
                continue
            if query.instrument and query.instrument.casefold() != request.instrument:
                continue
            if query.state and query.state.casefold() != matter.state:
                continue
            if query.text and not any(_has(t, query.text) for t in noted.get(matter.id, [])):
                continue
            out.append(matter)
        return out

    # -- changing --------------------------------------------------------------------------

    async def set_case_number(self, matter_id: str, actor: str, case_number: str) -> MatterFile:
        """Record (or correct) the case number the order carries."""
        number = _one_line(case_number, "the case number", MAX_CASE_NUMBER_CHARS)
        matter = await self.show(matter_id)
        txn = LegalTxn()
        txn.steps.append(rows.set_case_number(matter_id, number, self._clock(), actor))
        self._log(
            txn,
            EventType.LEGAL_CASE_NUMBER_SET,
            actor,
            matter.request,
            matter_id,
            details=(("case_number", number),),
        )
        await self._commit(txn)
        return await self.matter_file(matter_id)

    async def add_note(self, matter_id: str, actor: str, text: str) -> Note:
        """Append a note (it can never be changed or removed)."""
        body = text.strip()
        if not body:
            raise InvalidInput("the note is empty")
        if len(body) > MAX_NOTE_CHARS:
            raise InvalidInput(f"the note is longer than {MAX_NOTE_CHARS} characters")
        matter = await self.show(matter_id)
        now = self._clock()
        count = len(await self._store.read(rows.notes_of(matter_id)))
        txn = LegalTxn()
        txn.steps.append(rows.add_note(matter_id, now, actor, body))
        self._log(
            txn,
            EventType.LEGAL_NOTE_ADDED,
            actor,
            matter.request,
            matter_id,
            details=(("note", str(count + 1)),),
        )
        await self._commit(txn)
        notes = (await self.matter_file(matter_id)).notes
        return next(n for n in reversed(notes) if n.added_by == actor and n.text == body)

    async def attach(
        self, matter_id: str, actor: str, data: bytes, name: str, media_type: str | None = None
    ) -> Attachment:
        """File an original (the order as served): sealed to the matter-file key, its
        SHA-256 recorded in the matter and in the audit event."""
        if not data:
            raise InvalidInput("the attachment is empty")
        if len(data) > MAX_ATTACHMENT_BYTES:
            raise InvalidInput(
                f"the attachment has {len(data)} bytes; at most {MAX_ATTACHMENT_BYTES} are accepted"
            )
        filename = clean_name(name)
        kind = (media_type or "").strip().lower() or media_type_of(data)
        if "/" not in kind or len(kind) > 100 or any(c.isspace() for c in kind):
            raise InvalidInput(f"media type {media_type!r} is not of the form type/subtype")
        matter = await self.show(matter_id)
        key = await asyncio.to_thread(load_file_key, self._dir)
        digest = hashlib.sha256(data).hexdigest()
        attachment_id = f"A-{secrets.token_hex(6)}"
        sealed_name = f"{FILES_DIR}/{attachment_id}.sealed"
        sealed = await asyncio.to_thread(seal, data, key.public, key.key_id)
        # The sealed file first: a crash before the commit leaves a file no row
        # names (never a row without its file).
        await asyncio.to_thread(_write_sealed, self._dir / sealed_name, sealed)
        row = rows.AttachmentRow(
            attachment_id,
            matter_id,
            filename,
            kind,
            len(data),
            digest,
            sealed_name,
            key.key_id.hex(),
            self._clock(),
            actor,
        )
        txn = LegalTxn()
        txn.steps.append(rows.add_attachment(row))
        self._log(
            txn,
            EventType.LEGAL_ATTACHMENT_ADDED,
            actor,
            matter.request,
            matter_id,
            details=(("attachment", attachment_id), ("sha256", digest), ("size", str(len(data)))),
        )
        await self._commit(txn)
        return Attachment.of(row)

    async def _attachment_row(self, matter_id: str, attachment_id: str) -> rows.AttachmentRow:
        for row in await self._store.read(rows.attachments_of(matter_id)):
            if row.id == attachment_id:
                return row
        raise NotFound(f"matter {matter_id} has no attachment {attachment_id}")

    async def sealed_original(self, row: rows.AttachmentRow) -> bytes:
        """An original's sealed bytes as on disk (TamperedAttachment if missing)."""
        try:
            return await asyncio.to_thread((self._dir / row.sealed_file).read_bytes)
        except FileNotFoundError as exc:
            raise damaged(row.matter_id, row.id, "missing", "its sealed file is missing") from exc

    async def read_attachments(
        self,
        matter_id: str,
        passphrase: str,
        ids: Sequence[str] | None = None,
    ) -> list[tuple[Attachment, bytes]]:
        """Open filed originals (all, or ``ids``) with the matter-file passphrase,
        checking each against its recorded SHA-256. Records nothing: callers log."""
        chosen = (
            [await self._attachment_row(matter_id, i) for i in ids]
            if ids is not None
            else await self._store.read(rows.attachments_of(matter_id))
        )
        if not chosen:
            return []
        opener = await asyncio.to_thread(unlock_file_key, self._dir, passphrase)
        out = []
        for row in chosen:
            sealed = await self.sealed_original(row)
            try:
                data = await asyncio.to_thread(opener.open, sealed)
            except CryptoError as exc:
                raise damaged(
                    matter_id,
                    row.id,
                    "does-not-open",
                    f"it does not open ({exc}): it was changed or damaged on disk",
                ) from exc
            if len(data) != row.size or hashlib.sha256(data).hexdigest() != row.sha256:
                raise damaged(
                    matter_id,
                    row.id,
                    "sha256",
                    "its SHA-256 is not the one recorded when it was filed (the file was swapped)",
                )
            out.append((Attachment.of(row), data))
        return out

    async def open_attachment(
        self, matter_id: str, attachment_id: str, actor: str, passphrase: str
    ) -> tuple[Attachment, bytes]:
        """An original's bytes, checked; the opening is recorded in the audit log."""
        matter = await self.show(matter_id)
        [(attachment, data)] = await self.read_attachments(matter_id, passphrase, [attachment_id])
        txn = LegalTxn()
        self._log(
            txn,
            EventType.LEGAL_ATTACHMENT_OPENED,
            actor,
            matter.request,
            matter_id,
            details=(("attachment", attachment_id),),
        )
        await self._commit(txn)
        return attachment, data
