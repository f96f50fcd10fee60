"""The manifest of a region backup (``DIR/manifest.json``): which region, when, from
which storage, how many of what, the audit log's head at the time, and the size and
SHA-256 of every other file of the backup. Written last (its presence says the backup
is whole), carrying a checksum of itself; checked file by file before a restore.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from letterlock.errors import InvalidInput
from letterlock.storage.durable import write_atomically

MANIFEST = "manifest.json"
FORMAT = "letterlock-region-backup/1"


class BackupDamaged(InvalidInput):
    """A backup directory that is incomplete, altered or not a backup at all."""


@dataclass(frozen=True)
class FileEntry:
    size: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    backup_id: str
    region: str
    country: str
    storage: str
    """``sqlite+files`` or ``postgres+s3``: the layout of the files."""
    started: str
    snapshot_at: str
    """When the metadata snapshot the backup holds was taken (ISO 8601, UTC)."""
    finished: str
    rounds: int
    counts: dict[str, int]
    audit_size: int
    """The audit log's size (signed tree head) when the backup finished."""
    audit_root: str
    files: dict[str, FileEntry]

    def to_json(self) -> dict[str, Any]:
        body = {"format": FORMAT, "backup_id": self.backup_id, "region": self.region,
                "country": self.country, "storage": self.storage, "started": self.started,
                "snapshot_at": self.snapshot_at, "finished": self.finished,
                "rounds": self.rounds, "counts": dict(sorted(self.counts.items())),
                "audit_head": {"tree_size": self.audit_size, "root_hash": self.audit_root},
                "files": {k: {"bytes": v.size, "sha256": v.sha256}
                          for k, v in sorted(self.files.items())}}
        return {**body, "checksum": _checksum(body)}


def _checksum(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"))
                          .encode()).hexdigest()


def hash_file(path: Path) -> FileEntry:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return FileEntry(size, digest.hexdigest())


def backup_files(directory: Path) -> list[str]:
    """Every file of a backup directory but the manifest, as relative POSIX paths."""
    names = (p.relative_to(directory).as_posix() for p in directory.rglob("*")
             if p.is_file() or p.is_symlink())
    return sorted(n for n in names if n != MANIFEST)


def hash_tree(directory: Path) -> dict[str, FileEntry]:
    return {name: hash_file(directory / name) for name in backup_files(directory)}


def write_manifest(directory: Path, manifest: Manifest) -> None:
    write_atomically(directory / MANIFEST,
                     json.dumps(manifest.to_json(), indent=1).encode() + b"\n", 0o600)


def _field(doc: dict[str, Any], name: str, kind: type) -> Any:
    value = doc.get(name)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise BackupDamaged(f"{MANIFEST}: field {name!r} is missing or not a {kind.__name__}")
    return value


def read_manifest(directory: Path) -> Manifest:
    """The manifest of ``directory``, checked against its own checksum. Raises
    BackupDamaged naming what is wrong."""
    path = directory / MANIFEST
    if not directory.is_dir():
        raise BackupDamaged(f"{directory} is not a directory")
    try:
        doc = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise BackupDamaged(f"{path} is missing: not a backup, or one that did not "
                            "finish") from None
    except (OSError, ValueError) as exc:
        raise BackupDamaged(f"{path} is not readable JSON: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise BackupDamaged(f"{path}: not a letterlock region backup (format {FORMAT})")
    checksum = doc.pop("checksum", None)
    if checksum != _checksum(doc):
        raise BackupDamaged(f"{path} is damaged (its checksum does not match)")
    head = _field(doc, "audit_head", dict)
    files: dict[str, FileEntry] = {}
    for name, entry in _field(doc, "files", dict).items():
        if (not isinstance(entry, dict) or not isinstance(entry.get("bytes"), int)
                or not isinstance(entry.get("sha256"), str)
                or name.startswith("/") or ".." in name.split("/")):
            raise BackupDamaged(f"{path}: bad entry for file {name!r}")
        files[name] = FileEntry(entry["bytes"], entry["sha256"])
    counts = _field(doc, "counts", dict)
    return Manifest(_field(doc, "backup_id", str), _field(doc, "region", str),
                    _field(doc, "country", str), _field(doc, "storage", str),
                    _field(doc, "started", str), _field(doc, "snapshot_at", str),
                    _field(doc, "finished", str), _field(doc, "rounds", int),
                    {str(k): int(v) for k, v in counts.items()},
                    int(head.get("tree_size", -1)), str(head.get("root_hash", "")), files)


def verify_files(directory: Path, manifest: Manifest) -> None:
    """Raise BackupDamaged naming the first file that is missing, of another size or
    content, or not in the manifest."""
    present = set(backup_files(directory))
    extra = sorted(present - set(manifest.files))
    if extra:
        raise BackupDamaged(f"{directory / extra[0]} is not part of the backup "
                            f"({len(extra)} unexpected file(s))")
    for name, want in sorted(manifest.files.items()):
        path = directory / name
        if not path.is_file():
            raise BackupDamaged(f"{path} is missing")
        if os.path.getsize(path) != want.size:
            raise BackupDamaged(f"{path} has {os.path.getsize(path)} bytes, the backup "
                                f"wrote {want.size}")
        if hash_file(path).sha256 != want.sha256:
            raise BackupDamaged(f"{path} is damaged (SHA-256 does not match)")
