"""Export of a whole matter as one signed zip archive.

What it holds (docs/legal-formats.md, "Matter export")::

    matter.json          the matter: request, facts, recommendation, decision,
                         deadlines, holds, notices, latest proposal
    file.json            case number, notes, the originals' names, sizes and SHA-256,
                         the letters
    stages.json          every decision put to a second operator, and each stage's
                         production package
    audit-events.jsonl   the audit log's events about the matter, in log order
    packages/NAME/manifest.json, manifest.sig   each production package's signed
                         manifest (the handed-over data itself stays in the package)
    attachments/ID/NAME  the originals, opened with the matter-file passphrase, or
    attachments/ID.sealed  as sealed on disk when none is given
    letters/ID/...       the signed letters (letters.py)
    manifest.json, manifest.sig   every other file's path, size and SHA-256, signed
                         with the legal signing key (production.py's)

The manifest has the production package's shape, so ``letterlock legal
verify-package`` checks an export as it checks a package. Before anything is
written, every original is checked against the SHA-256 recorded in the matter and
in the audit event that filed it.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from letterlock.audit.events import AuditSink, EventFinder, EventType
from letterlock.audit.records import event_to_json
from letterlock.policy import format_time
from letterlock.services.legal.matter import Matter
from letterlock.services.legal.matter_file import (
    Attachment,
    MatterFileSteps,
    damaged,
)
from letterlock.services.legal.production import signing_key
from letterlock.storage import legal_file_sqlite as rows
from letterlock.storage.legal_sqlite import LegalTxn

EXPORT_FORMAT = "letterlock-matter-export/1"


@dataclass(frozen=True)
class MatterExport:
    name: str
    """A file name for the archive: ``<matter>-export-<time>.zip``."""
    data: bytes
    sha256: str
    items: int


def _j(value: object) -> bytes:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False).encode()


def _safe(name: str) -> str:
    """An archive member name from an original's name (no directories)."""
    return "".join(ch if ch.isalnum() or ch in "._- " else "_" for ch in name).strip() or "original"


def _zip(files: Sequence[tuple[str, bytes]], at: datetime) -> bytes:
    buffer = io.BytesIO()
    stamp = (max(at.year, 1980), at.month, at.day, at.hour, at.minute, at.second)
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, data in files:
            info = zipfile.ZipInfo(path, date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o600 << 16
            zf.writestr(info, data)
    return buffer.getvalue()


def _package_files(work_dir: Path, matter_id: str) -> list[tuple[str, bytes]]:
    """Each stage's package manifest and signature."""
    out = []
    root = work_dir / "packages"
    names = sorted(
        p.name
        for p in root.glob(f"{matter_id}*")
        if p.is_dir() and (p.name == matter_id or p.name.startswith(f"{matter_id}-stage"))
    )
    for name in names:
        for part in ("manifest.json", "manifest.sig"):
            path = root / name / part
            if path.is_file():
                out.append((f"packages/{name}/{part}", path.read_bytes()))
    return out


def _letter_files(work_dir: Path, letters: Sequence[rows.LetterRow]) -> list[tuple[str, bytes]]:
    out = []
    for letter in letters:
        folder = work_dir / letter.directory
        for path in sorted(p for p in folder.iterdir() if p.is_file()):
            out.append((f"letters/{letter.id}/{path.name}", path.read_bytes()))
    return out


class MatterExportSteps(MatterFileSteps):
    """``export`` of LegalService (its base, like FourEyes), over the matter file."""

    _audit: AuditSink

    async def matter_events(self, matter_id: str) -> list[dict[str, Any]]:
        """The audit log's events about the matter (sealed ones from the operator's
        copy), in log order; empty when the log cannot be searched."""
        if not isinstance(self._audit, EventFinder):
            return []
        return [
            event_to_json(e) for e in await self._audit.events_since(0) if e.matter == matter_id
        ]

    async def export(
        self, matter_id: str, actor: str, passphrase: str | None = None
    ) -> MatterExport:
        """The whole matter as a signed zip (module docstring). With ``passphrase``
        the originals are in it opened, else as sealed; either way each is checked
        against its recorded SHA-256 first (TamperedAttachment)."""
        matter = await self.show(matter_id)
        file = await self.matter_file(matter_id)
        events = await self.matter_events(matter_id)
        _check_against_log(matter_id, file.attachments, events)
        files: list[tuple[str, bytes]] = [
            ("matter.json", _j(matter.to_json())),
            ("file.json", _j(file.to_json())),
            ("stages.json", _j(await self._stages(matter))),
            (
                "audit-events.jsonl",
                b"".join(
                    json.dumps(e, sort_keys=True, ensure_ascii=False).encode() + b"\n"
                    for e in events
                ),
            ),
        ]
        files += await asyncio.to_thread(_package_files, self._dir, matter_id)
        if passphrase is not None:
            for attachment, data in await self.read_attachments(matter_id, passphrase):
                files.append((f"attachments/{attachment.id}/{_safe(attachment.name)}", data))
        else:
            # Sealed as on disk; the seal is checked when opened with the passphrase.
            for row in await self._store.read(rows.attachments_of(matter_id)):
                files.append((f"attachments/{row.id}.sealed", await self.sealed_original(row)))
        letters = await self._store.read(rows.letters_of(matter_id))
        files += await asyncio.to_thread(_letter_files, self._dir, letters)
        now = self._clock()
        originals = "opened" if passphrase is not None else "sealed"
        key = await asyncio.to_thread(signing_key, self._dir)
        manifest = {
            "format": EXPORT_FORMAT,
            "matter": matter_id,
            "exported_at": format_time(now),
            "exported_by": actor,
            "originals": originals,
            "items": [
                {"path": p, "size": len(d), "sha256": hashlib.sha256(d).hexdigest()}
                for p, d in files
            ],
            "public_key": key.public_key()
            .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            .hex(),
        }
        body = json.dumps(
            manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode()
        files += [("manifest.json", body), ("manifest.sig", key.sign(body).hex().encode() + b"\n")]
        data = await asyncio.to_thread(_zip, files, now)
        digest = hashlib.sha256(data).hexdigest()
        txn = LegalTxn()
        self._log(
            txn,
            EventType.LEGAL_MATTER_EXPORTED,
            actor,
            matter.request,
            matter_id,
            details=(("sha256", digest), ("originals", originals)),
        )
        await self._commit(txn)
        return MatterExport(
            f"{matter_id}-export-{now:%Y%m%dT%H%M%SZ}.zip", data, digest, len(files) - 2
        )

    async def _stages(self, matter: Matter) -> dict[str, Any]:
        proposals = [
            {"outcome": outcome, **json.loads(text)}
            for _, text, outcome in await self._store.proposals(matter.id)
        ]
        packages = sorted(
            {
                p.split("/")[1]
                for p, _ in await asyncio.to_thread(_package_files, self._dir, matter.id)
            }
        )
        return {
            "proposals": proposals,
            "packages": packages,
            "decision": None if matter.decision is None else matter.decision.to_json(),
        }


def _check_against_log(
    matter_id: str, attachments: Sequence[Attachment], events: Sequence[dict[str, Any]]
) -> None:
    """Each original's recorded SHA-256 must be the one its filing event logged (the
    log is append-only and verifiable; the legal database is not)."""
    logged: dict[str, str] = {}
    for event in events:
        if event.get("type") != EventType.LEGAL_ATTACHMENT_ADDED.value:
            continue
        details = {str(k): str(v) for k, v in event.get("details", [])}
        if "attachment" in details and "sha256" in details:
            logged[details["attachment"]] = details["sha256"]
    for attachment in attachments:
        found = logged.get(attachment.id)
        if found is not None and found != attachment.sha256:
            raise damaged(
                matter_id,
                attachment.id,
                "sha256-not-logged",
                "the SHA-256 in the "
                "legal database differs from the one the audit log recorded when "
                "it was filed",
            )
