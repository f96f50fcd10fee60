"""Backup and restore of one region (`letterlock backup REGION DIR`, `letterlock
restore REGION DIR`), for every storage a cell can have.

Consistent while the server runs. The metadata is copied as one snapshot (SQLite's
online backup API; a REPEATABLE READ transaction on PostgreSQL), then the blobs it
names. Delivery makes a blob durable before the metadata that names it is committed,
so every blob a snapshot names was stored before the snapshot; the only way one can
be absent afterwards is that its message was expunged (and the blob deleted) after
the snapshot. The copy then reports it missing and a newer snapshot is taken, copying
only what is new, until one snapshot has all its blobs (``rounds`` in the manifest).
Blobs that only legal records name (expunged mail a hold keeps) are copied too.

Still sealed: the backup holds what the cell stores at rest (sealed blobs and
summaries, wrapped keys, plain flags and mailbox names), nothing is opened.

Restore checks the manifest (region, storage kind, size and SHA-256 of every file)
before it changes anything, refuses while the server runs and, without ``force``, a
region that holds data. Blobs go back before the metadata that names them. The
directory (address -> region, in HOME/control) is then made to agree with the
restored cell, and the restore is one audit event: the audit log and everything in
HOME/control are never rewound (docs/operating.md, "Backup and restore").
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from letterlock.audit.events import AuditEvent, AuditSink, EventFinder, EventType
from letterlock.audit.sink import AuditLog
from letterlock.errors import InvalidInput, LetterlockError, Refused, StorageError
from letterlock.services.cells import Cell, Cells
from letterlock.services.legal.matters import LegalService
from letterlock.services.operations.backup_manifest import (
    Manifest,
    hash_tree,
    read_manifest,
    verify_files,
    write_manifest,
)
from letterlock.services.operations.log_events import LogEvent, event
from letterlock.services.peers import PeerBus
from letterlock.storage import backup_files, backup_scaleout
from letterlock.storage.backup_files import MetadataSnapshot
from letterlock.storage.contracts import ControlStore
from letterlock.storage.files import FileBlobStore, parse_id
from letterlock.storage.postgres import PostgresCellStore
from letterlock.storage.s3 import S3BlobStore
from letterlock.storage.sqlite import SqliteCellStore

MAX_ROUNDS = 8
"""Snapshots tried before giving up (each round copies only what is new)."""
METADATA_DIR = "metadata"


# --------------------------------------------------------------------------- storage sides


class _Metadata(Protocol):
    kind: str

    async def snapshot(self, target: Path) -> MetadataSnapshot: ...

    async def restore(self, source: Path) -> None: ...


class _Blobs(Protocol):
    kind: str
    folder: str

    async def copy(self, ids: set[str], target: Path) -> set[str]: ...

    async def finish(self, target: Path, keep: set[str], drop: set[str]) -> None: ...

    async def restore(self, source: Path, reserved: set[str]) -> None: ...


@dataclass
class _SqliteMetadata:
    """The cell database and the region's other SQLite files beside it (the
    region's half of the address book), each copied as one snapshot of its own."""

    path: Path
    kind: str = "sqlite"

    def _files(self) -> list[Path]:
        return sorted(self.path.parent.glob("*.sqlite3"))

    async def snapshot(self, target: Path) -> MetadataSnapshot:
        target.mkdir(parents=True, exist_ok=True)
        # The cell last: the blobs copied next are those its snapshot names.
        for path in [p for p in self._files() if p != self.path] + [self.path]:
            await asyncio.to_thread(backup_files.snapshot_sqlite, path, target / path.name)
        return await asyncio.to_thread(backup_files.inspect_sqlite, target / self.path.name)

    async def restore(self, source: Path) -> None:
        for path in sorted(source.glob("*.sqlite3")):
            await asyncio.to_thread(backup_files.restore_sqlite, path,
                                    self.path.parent / path.name)


@dataclass
class _PostgresMetadata:
    store: PostgresCellStore
    kind: str = "postgres"

    async def snapshot(self, target: Path) -> MetadataSnapshot:
        await self.store.open()
        return await backup_scaleout.snapshot_postgres(self.store.db.url, target)

    async def restore(self, source: Path) -> None:
        await self.store.open()
        await backup_scaleout.restore_postgres(self.store.db.url, source)


@dataclass
class _FileBlobs:
    root: Path
    kind: str = "files"
    folder: str = "blobs"

    async def copy(self, ids: set[str], target: Path) -> set[str]:
        return await asyncio.to_thread(backup_files.copy_blobs, self.root, target, ids)

    async def finish(self, target: Path, keep: set[str], drop: set[str]) -> None:
        await asyncio.to_thread(backup_files.finish_blob_copy, target, keep, drop)

    async def restore(self, source: Path, reserved: set[str]) -> None:
        # Ids name places in packs: appends after the restore go to a pack of their
        # own, so no new blob gets an id something (a legal hold) named before.
        used = [int(p.stem, 16) for d in (source, self.root) if d.exists()
                for p in d.glob("*.pack")]
        used += [parse_id(i)[0] for i in reserved]
        await asyncio.to_thread(backup_files.restore_blobs, source, self.root,
                                max(used, default=-1) + 1, reserved)


@dataclass
class _ObjectBlobs:
    store: S3BlobStore
    kind: str = "s3"
    folder: str = "objects"

    async def copy(self, ids: set[str], target: Path) -> set[str]:
        return await backup_scaleout.copy_objects(self.store, target, ids)

    async def finish(self, target: Path, keep: set[str], drop: set[str]) -> None:
        await asyncio.to_thread(backup_scaleout.drop_objects, target, drop)

    async def restore(self, source: Path, reserved: set[str]) -> None:
        # Random ids are never handed out again; what legal records name stays.
        await backup_scaleout.restore_objects(self.store, source, keep=reserved)


def _sides(cell: Cell) -> tuple[_Metadata, _Blobs]:
    store, blobs = cell.store, cell.blobs
    meta: _Metadata
    if isinstance(store, SqliteCellStore):
        meta = _SqliteMetadata(store.db.path)
    elif isinstance(store, PostgresCellStore):
        meta = _PostgresMetadata(store)
    else:
        raise StorageError(f"region {cell.region.id}: its metadata store cannot be backed up")
    side: _Blobs
    if isinstance(blobs, FileBlobStore):
        side = _FileBlobs(blobs.root)
    elif isinstance(blobs, S3BlobStore):
        side = _ObjectBlobs(blobs)
    else:
        raise StorageError(f"region {cell.region.id}: its blob store cannot be backed up")
    return meta, side


# --------------------------------------------------------------------------- backup


@dataclass(frozen=True)
class BackupResult:
    manifest: Manifest
    bytes: int
    seconds: float


def _now() -> datetime:
    return datetime.now(UTC)


def _stamp(at: datetime) -> str:
    return at.isoformat(timespec="seconds").replace("+00:00", "Z")


def _prepare_target(target: Path) -> bool:
    """Make ``target`` an empty private directory; returns whether it was created.
    Raises InvalidInput if it holds anything."""
    if target.exists():
        if not target.is_dir():
            raise InvalidInput(f"{target} is not a directory")
        if any(target.iterdir()):
            raise InvalidInput(f"{target} is not empty: back up into a new directory")
        os.chmod(target, 0o700)
        return False
    target.mkdir(parents=True, mode=0o700)
    return True


def _discard(target: Path, created: bool) -> None:
    if created:
        shutil.rmtree(target, ignore_errors=True)
        return
    for child in target.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class RestoreResult:
    manifest: Manifest
    accounts: int
    messages: int
    assigned: tuple[str, ...] = ()
    """Addresses of the backup the directory had lost (no deletion logged since the
    backup): assigned to the region again."""
    deleted_since: tuple[str, ...] = ()
    """Accounts deleted after the backup (the audit log says so): not brought back."""
    moved_away: tuple[str, ...] = ()
    """Accounts the directory places in another region now (moved after the backup):
    their old copy was not kept here."""
    lost: tuple[str, ...] = ()
    """Accounts of the region made after the backup: not in it, taken out of the
    directory (the address can be created again)."""
    held_missing: int = 0
    """Blobs legal records name that the backup does not hold."""
    audit_index: int = -1


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _refuse(region_id: str, source: Path, exc: LetterlockError) -> LetterlockError:
    event(LogEvent.RESTORE_REFUSED, region=region_id, dir=str(source), reason=str(exc))
    return exc


# --------------------------------------------------------------------------- service


class BackupService:
    """Backup and restore of regions, for the CLI (and any other front-end)."""

    def __init__(self, cells: Cells, control: ControlStore, legal: LegalService,
                 audit: AuditSink, peers: PeerBus, home: Path) -> None:
        self._home = home.absolute()
        self._cells = cells
        self._control = control
        self._legal = legal
        self._audit = audit
        self._peers = peers

    async def _audit_head(self) -> tuple[int, str]:
        if isinstance(self._audit, AuditLog):
            head = await self._audit.head()
            return head.tree_size, head.root_hash.hex()
        return -1, ""

    # -- backup -------------------------------------------------------------------------
    async def backup(self, region_id: str, target: Path, *,
                     actor: str = "operator") -> BackupResult:
        """Back up region ``region_id`` into the new or empty directory ``target``.
        Raises UnknownRegion, InvalidInput (``target`` not empty) or StorageError; on
        failure nothing is left in ``target``."""
        cell = self._cells.get(region_id)
        meta, blobs = _sides(cell)
        if target.absolute().is_relative_to(self._home) or \
                target.resolve().is_relative_to(self._home.resolve()):
            raise InvalidInput(f"{target} is inside HOME ({self._home}): keep backups "
                               "outside the data directory")
        started, clock = _now(), time.monotonic()
        backup_id = f"{region_id}-{started.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}"
        created = _prepare_target(target)
        event(LogEvent.BACKUP_STARTED, region=region_id, backup=backup_id, dir=str(target))
        try:
            manifest = await self._copy(cell, meta, blobs, target, backup_id, started, actor)
        except BaseException as exc:
            _discard(target, created)
            event(LogEvent.BACKUP_FAILED, region=region_id, backup=backup_id,
                  reason=str(exc) or type(exc).__name__)
            raise
        size = sum(e.size for e in manifest.files.values())
        seconds = round(time.monotonic() - clock, 3)
        event(LogEvent.BACKUP_FINISHED, region=region_id, backup=backup_id,
              messages=manifest.counts.get("messages", 0),
              blobs=manifest.counts.get("blobs", 0), bytes=size, rounds=manifest.rounds,
              seconds=seconds)
        return BackupResult(manifest, size, seconds)

    async def _copy(self, cell: Cell, meta: _Metadata, blobs: _Blobs, target: Path,
                    backup_id: str, started: datetime, actor: str) -> Manifest:
        blob_dir = target / blobs.folder
        copied: set[str] = set()
        rounds = 0
        while True:
            rounds += 1
            snapshot_at = _now()
            snap = await meta.snapshot(target / METADATA_DIR)
            legal = await self._legal.region_blob_ids(cell.region.id)
            wanted = set(snap.blob_ids) | legal
            new = wanted - copied
            missing = await blobs.copy(new, blob_dir) if new else set()
            copied |= new - missing
            lost = set(snap.blob_ids) - copied
            if not lost:
                break
            if rounds >= MAX_ROUNDS:
                raise StorageError(f"region {cell.region.id}: after {rounds} snapshots "
                                   f"{len(lost)} blob(s) named by the latest were deleted "
                                   "before they could be copied; try again")
        keep = copied & wanted
        blob_dir.mkdir(exist_ok=True)
        await blobs.finish(blob_dir, keep, copied - keep)
        counts = {**snap.counts, "blobs": len(keep),
                  "held_blobs": len(keep - set(snap.blob_ids))}
        await self._audit.record(AuditEvent(
            EventType.ADMIN_REGION_BACKED_UP, actor, _now(),
            details=(("region", cell.region.id), ("backup", backup_id),
                     ("snapshot_at", _stamp(snapshot_at)),
                     ("messages", str(counts.get("messages", 0))))))
        size, root = await self._audit_head()
        files = await asyncio.to_thread(hash_tree, target)
        manifest = Manifest(backup_id, cell.region.id, cell.region.country,
                            f"{meta.kind}+{blobs.kind}", _stamp(started), _stamp(snapshot_at),
                            _stamp(_now()), rounds, counts, size, root, files)
        await asyncio.to_thread(write_manifest, target, manifest)
        return manifest

    # -- restore ------------------------------------------------------------------------
    async def check_restore(self, region_id: str, source: Path, *,
                            force: bool) -> Manifest:
        """Everything a restore checks before it changes anything. Raises
        BackupDamaged, Refused or UnknownRegion (each logged as a refusal)."""
        try:
            cell = self._cells.get(region_id)
            meta, blobs = _sides(cell)
            manifest = await asyncio.to_thread(read_manifest, source)
            if manifest.region != region_id:
                raise Refused(f"{source} is a backup of region {manifest.region}, "
                              f"not of {region_id}")
            if manifest.country != cell.region.country:
                raise Refused(f"{source} was made when region {region_id} was in "
                              f"{manifest.country}; it is in {cell.region.country} now")
            storage = f"{meta.kind}+{blobs.kind}"
            if manifest.storage != storage:
                raise Refused(f"{source} holds {manifest.storage} storage; region "
                              f"{region_id} is on {storage}")
            await asyncio.to_thread(verify_files, source, manifest)
            running = sorted(p for p in self._peers.peer_pids if _alive(p))
            if running:
                raise Refused("the server is running (process "
                              f"{', '.join(map(str, running))}): stop it before restoring")
            accounts = await cell.store.list_accounts()
            if not force and (accounts or await cell.blobs.list_ids()):
                raise Refused(f"region {region_id} is not empty ({len(accounts)} "
                              "account(s)): restore --force replaces what it holds")
        except LetterlockError as exc:
            raise _refuse(region_id, source, exc) from None
        return manifest

    async def restore(self, region_id: str, source: Path, *, force: bool = False,
                      actor: str = "operator") -> RestoreResult:
        """Replace what region ``region_id`` holds by the backup in ``source`` (see
        the module docstring). Raises as :meth:`check_restore`, or StorageError."""
        manifest = await self.check_restore(region_id, source, force=force)
        cell = self._cells.get(region_id)
        meta, blobs = _sides(cell)
        event(LogEvent.RESTORE_STARTED, region=region_id, backup=manifest.backup_id,
              dir=str(source), snapshot_at=manifest.snapshot_at)
        legal = await self._legal.region_blob_ids(region_id)
        # Blobs before the metadata that names them, as delivery does.
        await blobs.restore(source / blobs.folder, legal)
        await meta.restore(source / METADATA_DIR)
        result = await self._reconcile(cell, manifest, legal)
        index = await self._audit.record(AuditEvent(
            EventType.ADMIN_REGION_RESTORED, actor, _now(),
            details=(("region", region_id), ("backup", manifest.backup_id),
                     ("snapshot_at", manifest.snapshot_at),
                     ("audit_size_at_backup", str(manifest.audit_size)),
                     ("accounts", str(result.accounts)), ("messages", str(result.messages)),
                     ("assigned", str(len(result.assigned))),
                 ("deleted_since", str(len(result.deleted_since))),
                     ("moved_away", str(len(result.moved_away))),
                     ("lost", str(len(result.lost))),
                     ("held_missing", str(result.held_missing)))))
        event(LogEvent.RESTORE_FINISHED, region=region_id, backup=manifest.backup_id,
              accounts=result.accounts, messages=result.messages, lost=len(result.lost),
          deleted_since=len(result.deleted_since),
              moved_away=len(result.moved_away), held_missing=result.held_missing,
              index=index)
        return replace(result, audit_index=index)

    async def _reconcile(self, cell: Cell, manifest: Manifest,
                         legal: set[str]) -> RestoreResult:
        """Make the directory agree with the restored cell. The directory says where
        an account lives, so a restored copy of one living elsewhere now is removed."""
        region_id = cell.region.id
        directory = dict(await self._control.list_assignments())
        restored = {a.address for a in await cell.store.list_accounts()}
        deleted = await self._deleted_after(manifest.audit_size)
        assigned: list[str] = []
        moved_away: list[str] = []
        deleted_since: list[str] = []
        for address in sorted(restored):
            home = directory.get(address)
            if home is None and address not in deleted:
                await self._control.assign(address, region_id)
                assigned.append(address)
            elif home != region_id:
                # Moved away or deleted since the backup: a restore never brings an
                # account back where it no longer lives, nor one its owner had deleted.
                orphans = await cell.store.delete_account(address)
                doomed = [b for b in orphans if b not in legal]
                if doomed:
                    await cell.blobs.delete_many(doomed)
                (deleted_since if home is None else moved_away).append(address)
        lost = sorted(a for a, home in directory.items()
                      if home == region_id and a not in restored)
        for address in lost:
            await self._control.unassign(address)
        held_missing = len(legal - set(await cell.blobs.list_ids())) if legal else 0
        messages = manifest.counts.get("messages", 0)
        return RestoreResult(manifest, len(restored) - len(moved_away) - len(deleted_since),
                             messages, tuple(assigned), tuple(deleted_since),
                             tuple(moved_away), tuple(lost), held_missing)

    async def _deleted_after(self, start: int) -> set[str]:
        """Addresses whose account deletion the audit log holds from ``start`` on."""
        if not isinstance(self._audit, EventFinder) or start < 0:
            return set()
        return {e.account for e in await self._audit.events_since(start)
                if e.type is EventType.ADMIN_ACCOUNT_DELETED and e.account}
