"""What the operator console does with the backup root (``operations.backup_dir``):
the backups and exports under it, each a directory of its own named by the server,
and the last verification of the audit log.

A browser only ever names an entry directly under the root (:func:`entry`): never a
path, never ``..``, never a hidden name.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from letterlock.audit.check import LogReport
from letterlock.audit.events import AuditSink, EventFinder, EventType
from letterlock.audit.verify import SignedHead, VerificationError
from letterlock.errors import InvalidInput
from letterlock.services.operations.backup import METADATA_DIR
from letterlock.services.operations.backup_manifest import (
    MANIFEST,
    BackupDamaged,
    Manifest,
    read_manifest,
    verify_files,
)
from letterlock.storage.durable import write_atomically

VERIFIED_FILE = "audit-verified.json"
"""HOME/control/audit-verified.json: the console's last full check of the audit log."""


def entry(root: Path, name: str) -> Path:
    """``root/name`` for a name the browser sent; InvalidInput unless it is one plain
    name of something under the root."""
    name = name.strip()
    if (not name or name.startswith(".") or "/" in name or "\\" in name
            or "\0" in name or len(name) > 200):
        raise InvalidInput(f"{name!r} is not the name of an entry of the backup directory")
    path = root / name
    if not path.exists():
        raise InvalidInput(f"{name} is not in the backup directory {root}")
    return path


def new_entry(root: Path, kind: str) -> Path:
    """A new, unused ``root/KIND-YYYYmmddTHHMMSSZ-xxxx`` (not yet made)."""
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return root / f"{kind}-{stamp}-{secrets.token_hex(2)}"


@dataclass(frozen=True)
class Listed:
    """One directory under the root: a backup (its manifest, or why it is not one)
    or something else (an export, mail to import)."""

    name: str
    manifest: Manifest | None
    problem: str | None

    @property
    def is_backup(self) -> bool:
        return self.manifest is not None or self.problem is not None


def listing(root: Path) -> list[Listed]:
    """Every directory under the root, newest name first (names carry their time)."""
    if not root.is_dir():
        return []
    out: list[Listed] = []
    for path in sorted(root.iterdir(), key=lambda p: p.name, reverse=True):
        if not path.is_dir() or path.name.startswith(".") or path.name.endswith(".part"):
            continue
        manifest: Manifest | None = None
        problem: str | None = None
        if (path / MANIFEST).exists():
            try:
                manifest = read_manifest(path)
            except BackupDamaged as exc:
                problem = str(exc)
        elif (path / METADATA_DIR).is_dir():
            problem = "no manifest yet: a backup still running, or one that did not finish"
        out.append(Listed(path.name, manifest, problem))
    return out


def verify_backup(root: Path, name: str) -> Manifest:
    """The manifest of backup ``name``, every file checked against it (what a restore
    checks first). Raises BackupDamaged or InvalidInput naming what is wrong."""
    path = entry(root, name)
    manifest = read_manifest(path)
    verify_files(path, manifest)
    return manifest


@dataclass(frozen=True)
class LastBackup:
    at: datetime
    actor: str
    backup: str
    messages: str


class BackupHistory:
    """The latest ``admin:region:backed-up`` event of each region, wherever the backup
    went (the console or ``letterlock backup``). Each call reads only the events
    logged since the one before."""

    def __init__(self) -> None:
        self._seen = 0
        self._last: dict[str, LastBackup] = {}

    async def latest(self, audit: AuditSink) -> dict[str, LastBackup]:
        if not isinstance(audit, EventFinder):
            return {}
        new = await audit.events_since(self._seen)
        self._seen += len(new)
        for e in new:
            if e.type == EventType.ADMIN_REGION_BACKED_UP:
                details = dict(e.details)
                self._last[details.get("region", "?")] = LastBackup(
                    e.at, e.actor, details.get("backup", ""), details.get("messages", "?"))
        return dict(self._last)


def tree_usage(directory: Path) -> tuple[int, int]:
    """Files and bytes under ``directory`` now (one that is being written, too)."""
    files = size = 0
    for base, _dirs, names in os.walk(directory):
        for name in names:
            try:
                size += os.lstat(os.path.join(base, name)).st_size
            except OSError:
                continue
            files += 1
    return files, size


@dataclass(frozen=True)
class Verification:
    at: str
    operator: str
    intact: bool
    events: int
    heads_checked: int
    reveals_checked: int
    findings: list[str]
    against: int | None = None
    """The size of the head kept from the verification before, which this one checked
    the log still contains (None: there was none)."""
    head: dict[str, Any] | None = None
    """The latest signed head of an intact log: the next verification checks the log
    still contains it, signed with the same key."""


def kept_head(control_dir: Path) -> SignedHead | None:
    """The head the last intact verification kept, if any (and readable)."""
    last = last_verification(control_dir)
    if last is None or last.head is None:
        return None
    try:
        return SignedHead.from_json(last.head)
    except VerificationError:
        return None


def save_verification(control_dir: Path, report: LogReport, operator: str,
                      kept: SignedHead | None) -> Verification:
    """Keep the result of ``report`` (checked against ``kept``); the head it keeps
    for the next one is the log's latest if intact, else ``kept`` again."""
    head = report.latest_head if report.intact and report.latest_head else kept
    done = Verification(datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
                        operator, report.intact, report.events, report.heads_checked,
                        report.reveals_checked,
                        [f"{'FAIL' if f.fatal else 'warn'} {f}" for f in report.findings],
                        kept.tree_size if kept else None,
                        head.to_json() if head else None)
    write_atomically(control_dir / VERIFIED_FILE,
                     json.dumps(done.__dict__, indent=1).encode() + b"\n", 0o600)
    return done


def last_verification(control_dir: Path) -> Verification | None:
    try:
        doc = json.loads((control_dir / VERIFIED_FILE).read_bytes())
        against, head = doc.get("against"), doc.get("head")
        return Verification(str(doc["at"]), str(doc["operator"]), bool(doc["intact"]),
                            int(doc["events"]), int(doc["heads_checked"]),
                            int(doc["reveals_checked"]), [str(f) for f in doc["findings"]],
                            against if isinstance(against, int) else None,
                            head if isinstance(head, dict) else None)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
