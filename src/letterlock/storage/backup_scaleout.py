"""Backup and restore of a scale-out cell: the region's PostgreSQL database and its S3
bucket, as services/operations/backup.py drives them.

- Metadata: every table of the region's database is copied (``COPY ... TO STDOUT``,
  text format) inside one ``REPEATABLE READ READ ONLY`` transaction: one snapshot of
  the whole database, taken while the server keeps writing. Restore empties the
  tables and copies the rows back in one transaction, then moves each identity
  sequence past the restored ids.
- Blobs: each wanted object is read from the bucket and written to a file named by
  its id (ids are random, ``uuid4().hex``); restore puts each back under that id.
  An object that is gone was deleted after the snapshot named it: it is reported
  missing, and the caller takes a newer snapshot.

Rows and objects are what the cell stores at rest (sealed summaries and blobs,
wrapped keys); nothing is opened.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from letterlock.errors import StorageError, UnknownMessage
from letterlock.storage.address_contracts import BOOK_SCHEMA
from letterlock.storage.backup_files import COUNTED_TABLES, MetadataSnapshot
from letterlock.storage.durable import fsync_dir
from letterlock.storage.postgres_cell_rows import CELL_SCHEMA
from letterlock.storage.s3 import S3BlobStore
from letterlock.storage.sieve_postgres import SCHEMA as SIEVE_SCHEMA

TABLES_FILE = "tables.json"
FIRST_TABLES = ("accounts", "mailboxes")
"""Restored before the others (the others refer to them)."""
BATCH = 64


async def _tables(conn: psycopg.AsyncConnection[Any]) -> dict[str, list[str]]:
    cur = await conn.execute(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = 'public' AND table_name IN (SELECT table_name FROM "
        "information_schema.tables WHERE table_schema = 'public' "
        "AND table_type = 'BASE TABLE') ORDER BY table_name, ordinal_position")
    out: dict[str, list[str]] = {}
    for table, column in await cur.fetchall():
        out.setdefault(str(table), []).append(str(column))
    return out


def _ordered(tables: Iterable[str]) -> list[str]:
    names = sorted(tables)
    return [t for t in FIRST_TABLES if t in names] + [t for t in names
                                                      if t not in FIRST_TABLES]


async def snapshot_postgres(url: str, target: Path) -> MetadataSnapshot:
    """Copy every table of the database at ``url`` into ``target`` (a directory,
    replaced) as of one moment."""
    target.mkdir(parents=True, exist_ok=True)
    for old in target.iterdir():
        old.unlink()
    try:
        async with await psycopg.AsyncConnection.connect(url) as conn:
            await conn.set_isolation_level(psycopg.IsolationLevel.REPEATABLE_READ)
            await conn.set_read_only(True)
            async with conn.transaction():
                tables = await _tables(conn)
                for table, columns in tables.items():
                    query = sql.SQL("COPY {} ({}) TO STDOUT").format(
                        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns)))
                    with open(target / f"{table}.copy", "wb") as out:
                        async with conn.cursor().copy(query) as copy:
                            async for chunk in copy:
                                out.write(chunk)
                        out.flush()
                        os.fsync(out.fileno())
                cur = await conn.execute("SELECT DISTINCT blob_id FROM messages")
                ids = frozenset(str(r[0]) for r in await cur.fetchall())
                counts = {}
                for table in COUNTED_TABLES:
                    cur = await conn.execute(sql.SQL("SELECT count(*) FROM {}").format(
                        sql.Identifier(table)))
                    row = await cur.fetchone()
                    counts[table] = int(row[0]) if row else 0
                cur = await conn.execute("SELECT address FROM accounts ORDER BY address")
                addresses = tuple(str(r[0]) for r in await cur.fetchall())
    except psycopg.Error as exc:
        raise StorageError(f"snapshot of PostgreSQL {conn_name(url)}: {exc}") from exc
    (target / TABLES_FILE).write_text(json.dumps(tables, indent=1, sort_keys=True),
                                      encoding="utf-8")
    fsync_dir(target)
    return MetadataSnapshot(ids, counts, addresses)


def conn_name(url: str) -> str:
    try:
        return str(psycopg.conninfo.conninfo_to_dict(url).get("dbname", "?"))
    except psycopg.Error:
        return "?"


async def database_empty(url: str) -> bool:
    """Whether the region's database holds no account (it may not exist yet)."""
    try:
        async with await psycopg.AsyncConnection.connect(url) as conn:
            cur = await conn.execute("SELECT to_regclass('accounts') IS NULL "
                                     "OR NOT EXISTS (SELECT 1 FROM accounts)")
            row = await cur.fetchone()
            return bool(row and row[0])
    except psycopg.OperationalError:
        return True


REGION_SCHEMAS = (CELL_SCHEMA, BOOK_SCHEMA, SIEVE_SCHEMA)
"""The tables of every store a region's PostgreSQL database holds."""


async def restore_postgres(url: str, source: Path) -> None:
    """Make the database at ``url`` (its schema made already) hold exactly the rows
    of the snapshot in ``source``, in one transaction."""
    try:
        saved: dict[str, list[str]] = json.loads((source / TABLES_FILE).read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise StorageError(f"{source / TABLES_FILE}: {exc}") from exc
    try:
        async with await psycopg.AsyncConnection.connect(url) as conn, conn.transaction():
            # Every store kept in a region's database makes its tables on first use;
            # a fresh database (the region destroyed) has only those used so far.
            for schema in REGION_SCHEMAS:
                await conn.execute(schema.encode())
            live = await _tables(conn)
            unknown = sorted(set(saved) - set(live))
            if unknown:
                raise StorageError(f"the backup has tables this database lacks: "
                                   f"{', '.join(unknown)} (a newer version made it)")
            await conn.execute(sql.SQL("TRUNCATE {}").format(
                sql.SQL(", ").join(map(sql.Identifier, sorted(live)))))
            for table in _ordered(saved):
                query = sql.SQL("COPY {} ({}) FROM STDIN").format(
                    sql.Identifier(table),
                    sql.SQL(", ").join(map(sql.Identifier, saved[table])))
                async with conn.cursor().copy(query) as copy:
                    with open(source / f"{table}.copy", "rb") as fh:
                        while chunk := fh.read(1 << 20):
                            await copy.write(chunk)
            cur = await conn.execute(
                "SELECT table_name, column_name FROM information_schema.columns "
                "WHERE table_schema = 'public' AND is_identity = 'YES'")
            for table, column in await cur.fetchall():
                await conn.execute(sql.SQL(
                    "SELECT setval(pg_get_serial_sequence({t}, {c}), "
                    "coalesce(max({col}), 0) + 1, false) FROM {tab}").format(
                        t=sql.Literal(table), c=sql.Literal(column),
                        col=sql.Identifier(column), tab=sql.Identifier(table)))
    except psycopg.Error as exc:
        raise StorageError(f"restoring PostgreSQL {conn_name(url)}: {exc}") from exc
    except OSError as exc:
        raise StorageError(f"reading the backup: {exc}") from exc


# --------------------------------------------------------------------------- objects


async def copy_objects(store: S3BlobStore, target: Path, blob_ids: Iterable[str]) -> set[str]:
    """Copy each object of ``blob_ids`` to ``target/<id>``. Returns the ids that are
    not in the bucket (deleted since they were named)."""
    target.mkdir(parents=True, exist_ok=True)
    wanted = sorted(blob_ids)
    missing: set[str] = set()

    async def one(blob_id: str) -> None:
        try:
            data = await store.get(blob_id)
        except UnknownMessage:
            missing.add(blob_id)
            return
        await asyncio.to_thread(_write_file, target / blob_id, data)

    for start in range(0, len(wanted), BATCH):
        await asyncio.gather(*(one(b) for b in wanted[start : start + BATCH]))
    fsync_dir(target)
    return missing


def _write_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def drop_objects(target: Path, blob_ids: Iterable[str]) -> None:
    for blob_id in blob_ids:
        (target / blob_id).unlink(missing_ok=True)


async def restore_objects(store: S3BlobStore, source: Path, *,
                          keep: Iterable[str] = ()) -> None:
    """Put every object file of ``source`` back under its id, after deleting the
    bucket's objects the backup does not have (but those of ``keep``: a legal
    hold's)."""
    names = sorted(p.name for p in source.iterdir()) if source.exists() else []
    stale = sorted(set(await store.list_ids()) - set(names) - set(keep))
    if stale:
        await store.delete_many(stale)
    for start in range(0, len(names), BATCH):
        part = names[start : start + BATCH]
        datas = await asyncio.gather(*(asyncio.to_thread((source / n).read_bytes)
                                       for n in part))
        await store.put_named(list(zip(part, datas, strict=True)))
