"""Backup and restore of an embedded cell: the SQLite metadata file and the blob packs
(see storage/files.py), as services/operations/backup.py drives them.

- Metadata: SQLite's online backup API copies the live database page by page in one
  read transaction (``pages=-1``: one step), so the copy is one committed state even
  while the server writes; it is then turned into a single self-contained file
  (rollback journal, no ``-wal``).
- Blobs: a blob id names its pack, offset and length, and packs only grow (a deleted
  blob becomes a hole). The backup keeps that layout: it writes each wanted blob at
  its own offset of a sparse copy of its pack, so ids stay valid after a restore
  (also those a legal hold in HOME/control names) and nothing but the wanted blobs
  is copied. A blob read as a hole was deleted after the metadata snapshot: it is
  reported missing, and the caller takes a newer snapshot.

Everything copied is what the cell stores at rest: sealed blobs, wrapped keys.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from letterlock.errors import StorageError
from letterlock.storage.durable import fsync_dir
from letterlock.storage.files import parse_id

COUNTED_TABLES = ("accounts", "mailboxes", "messages")


@dataclass(frozen=True)
class MetadataSnapshot:
    """What one metadata snapshot holds."""

    blob_ids: frozenset[str]
    """Every blob a message of the snapshot names."""
    counts: dict[str, int]
    """Rows of ``accounts``, ``mailboxes`` and ``messages``."""
    addresses: tuple[str, ...]
    """The accounts' addresses (for reconciling the directory after a restore)."""


def _read_snapshot(conn: sqlite3.Connection) -> MetadataSnapshot:
    ids = frozenset(r[0] for r in conn.execute("SELECT DISTINCT blob_id FROM messages"))
    counts = {t: int(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0])
              for t in COUNTED_TABLES}
    addresses = tuple(r[0] for r in conn.execute("SELECT address FROM accounts "
                                                 "ORDER BY address"))
    return MetadataSnapshot(ids, counts, addresses)


def snapshot_sqlite(source: Path, target: Path) -> None:
    """Copy the live database ``source`` to ``target`` (replaced) as of one moment."""
    if not source.exists():
        raise StorageError(f"{source} does not exist")
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    try:
        src = sqlite3.connect(source, timeout=30)
        try:
            dst = sqlite3.connect(partial)
            try:
                src.backup(dst)  # all pages in one step: one read transaction
                dst.execute("PRAGMA journal_mode=DELETE")
                (check,) = dst.execute("PRAGMA quick_check").fetchone()
                if check != "ok":
                    raise StorageError(f"snapshot of {source.name} is damaged: {check}")
            finally:
                dst.close()
        finally:
            src.close()
        with open(partial, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(partial, target)
        fsync_dir(target.parent)
    except sqlite3.Error as exc:
        raise StorageError(f"snapshot of {source}: {exc}") from exc
    finally:
        partial.unlink(missing_ok=True)


def inspect_sqlite(path: Path) -> MetadataSnapshot:
    """What a cell database copied by :func:`snapshot_sqlite` holds (opened
    read-only, never changed)."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
        try:
            return _read_snapshot(conn)
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise StorageError(f"{path.name}: not a cell database: {exc}") from exc


def restore_sqlite(backup: Path, live: Path) -> None:
    """Make the database ``live`` (created if absent) hold exactly ``backup``, through
    SQLite itself (the backup API into the live file), so connections open on it
    see the restored state rather than a file swapped under them."""
    live.parent.mkdir(parents=True, exist_ok=True)
    try:
        src = sqlite3.connect(f"file:{backup}?mode=ro&immutable=1", uri=True)
        try:
            dst = sqlite3.connect(live, timeout=30)
            try:
                dst.execute("PRAGMA journal_mode=WAL")
                dst.execute("PRAGMA synchronous=FULL")
                src.backup(dst)
                dst.execute("PRAGMA journal_mode=WAL")
                dst.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                dst.close()
        finally:
            src.close()
    except sqlite3.Error as exc:
        raise StorageError(f"restoring {live}: {exc}") from exc


# --------------------------------------------------------------------------- blobs


def _pack_name(segment: int) -> str:
    return f"{segment:08x}.pack"


def _idx_name(segment: int) -> str:
    return f"{segment:08x}.idx"


def copy_blobs(source: Path, target: Path, blob_ids: Iterable[str]) -> set[str]:
    """Copy each blob of ``blob_ids`` from the blob directory ``source`` into the
    sparse packs under ``target``, at its own offset. Returns the ids that were not
    there (deleted since they were named, or never stored)."""
    target.mkdir(parents=True, exist_ok=True)
    by_segment: dict[int, list[tuple[str, int, int]]] = {}
    for blob_id in blob_ids:
        segment, offset, length = parse_id(blob_id)
        by_segment.setdefault(segment, []).append((blob_id, offset, length))
    missing: set[str] = set()
    for segment, items in sorted(by_segment.items()):
        try:
            src = os.open(source / _pack_name(segment), os.O_RDONLY)
        except FileNotFoundError:
            missing.update(i for i, _, _ in items)
            continue
        try:
            dst = os.open(target / _pack_name(segment), os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                for blob_id, offset, length in sorted(items, key=lambda t: t[1]):
                    data = os.pread(src, length, offset)
                    if len(data) != length or (length and not data.strip(b"\x00")):
                        missing.add(blob_id)  # a hole: deleted after it was named
                        continue
                    view = memoryview(data)
                    at = offset
                    while view:
                        written = os.pwrite(dst, view, at)
                        view, at = view[written:], at + written
                os.fsync(dst)
            finally:
                os.close(dst)
        except OSError as exc:
            raise StorageError(f"copying blobs of pack {segment:08x}: {exc}") from exc
        finally:
            os.close(src)
    return missing


def finish_blob_copy(target: Path, keep: Iterable[str], drop: Iterable[str]) -> None:
    """Clear the copies of ``drop`` (blobs copied for an earlier snapshot whose
    messages are gone since) and write each pack's journal listing ``keep``."""
    for blob_id in drop:
        segment, offset, length = parse_id(blob_id)
        with contextlib.suppress(FileNotFoundError):
            fd = os.open(target / _pack_name(segment), os.O_WRONLY)
            try:
                os.pwrite(fd, b"\x00" * length, offset)
                os.fsync(fd)
            finally:
                os.close(fd)
    journals: dict[int, list[str]] = {}
    for blob_id in keep:
        journals.setdefault(parse_id(blob_id)[0], []).append(blob_id)
    for segment, ids in journals.items():
        (target / _idx_name(segment)).write_bytes(
            b"".join(b"+" + i.encode() + b"\n" for i in sorted(ids)))
    if target.exists():
        fsync_dir(target)


def _journal_ids(directory: Path) -> set[str]:
    """The ids the journals of a blob directory list as live."""
    live: set[str] = set()
    for idx in directory.glob("*.idx"):
        for line in idx.read_bytes().split(b"\n"):
            if line.startswith(b"+"):
                live.add(line[1:].decode())
            elif line.startswith(b"-"):
                live.discard(line[1:].decode())
    return live


def restore_blobs(backup: Path, live: Path, next_segment: int,
                  keep: Iterable[str] = ()) -> None:
    """Replace the packs and journals of the blob directory ``live`` by the backup's
    (each written under a temporary name, flushed, renamed; holes stay holes), and
    start pack ``next_segment`` (empty) for the blobs stored from now on. Blobs of
    ``keep`` (a legal hold's) that ``live`` holds and the backup lacks stay, at
    their place."""
    live.mkdir(parents=True, exist_ok=True)
    staging = live.with_name(live.name + ".keep")
    shutil.rmtree(staging, ignore_errors=True)
    kept = set(keep) - _journal_ids(backup)
    kept -= copy_blobs(live, staging, kept) if kept else set()
    wanted = {p.name for p in backup.iterdir() if p.suffix in (".pack", ".idx")}
    for old in live.iterdir():
        if old.suffix in (".pack", ".idx") and old.name not in wanted:
            old.unlink()
    for name in sorted(wanted):
        partial = live / (name + ".restoring")
        _sparse_copy(backup / name, partial)
        os.replace(partial, live / name)
    for blob_id in sorted(kept):
        segment, offset, length = parse_id(blob_id)
        data = os.pread(fd := os.open(staging / _pack_name(segment), os.O_RDONLY),
                        length, offset)
        os.close(fd)
        out = os.open(live / _pack_name(segment), os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            os.pwrite(out, data, offset)
            os.fsync(out)
        finally:
            os.close(out)
        with open(live / _idx_name(segment), "ab") as journal:
            journal.write(b"+" + blob_id.encode() + b"\n")
    shutil.rmtree(staging, ignore_errors=True)
    fresh = live / _pack_name(next_segment)
    if not fresh.exists():
        os.close(os.open(fresh, os.O_WRONLY | os.O_CREAT, 0o600))
    fsync_dir(live)


def _sparse_copy(source: Path, target: Path) -> None:
    """Copy a file keeping its holes (SEEK_DATA/SEEK_HOLE), then flush it."""
    size = source.stat().st_size
    with open(source, "rb") as src, open(target, "wb") as dst:
        fd = src.fileno()
        pos = 0
        while pos < size:
            try:
                start = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError:  # no data after pos
                break
            end = os.lseek(fd, start, os.SEEK_HOLE)
            src.seek(start)
            dst.seek(start)
            remaining = end - start
            while remaining:
                chunk = src.read(min(remaining, 1 << 20))
                if not chunk:
                    break
                dst.write(chunk)
                remaining -= len(chunk)
            pos = end
        dst.truncate(size)
        dst.flush()
        os.fsync(dst.fileno())
