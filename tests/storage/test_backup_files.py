"""The embedded cell's backup parts (storage/backup_files.py) on real packs and a real
SQLite file: blobs keep their ids, a blob deleted after the snapshot named it is
reported missing (the service then takes a newer snapshot), holes stay holes, and a
restored store appends to a pack of its own."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from letterlock.storage import backup_files
from letterlock.storage.files import FileBlobStore, parse_id
from letterlock.storage.sqlite import SqliteCellStore


async def test_copied_blobs_keep_their_ids_and_a_deleted_one_is_missing(tmp_path: Path) -> None:
    live = FileBlobStore(tmp_path / "live")
    ids = await live.put_many([b"sealed-one" * 100, b"sealed-two" * 100, b"sealed-three"])
    await live.delete_many([ids[1]])  # expunged after the snapshot named it
    target = tmp_path / "backup"
    missing = backup_files.copy_blobs(live.root, target, ids)
    assert missing == {ids[1]}
    backup_files.finish_blob_copy(target, {ids[0], ids[2]}, set())
    copy = FileBlobStore(target)
    assert await copy.get(ids[0]) == b"sealed-one" * 100
    assert await copy.get(ids[2]) == b"sealed-three"
    assert await copy.list_ids() == sorted([ids[0], ids[2]])
    # A blob copied for an earlier snapshot whose message is gone since is cleared.
    backup_files.finish_blob_copy(target, {ids[2]}, {ids[0]})
    assert await FileBlobStore(target).list_ids() == [ids[2]]
    assert b"sealed-one" not in (target / "00000000.pack").read_bytes()
    await live.close()
    await copy.close()


async def test_a_restored_store_appends_past_every_id_it_was_told_of(tmp_path: Path) -> None:
    live = FileBlobStore(tmp_path / "live")
    ids = await live.put_many([b"a" * 64, b"b" * 64])
    backup = tmp_path / "backup"
    assert backup_files.copy_blobs(live.root, backup, ids) == set()
    backup_files.finish_blob_copy(backup, set(ids), set())
    await live.close()

    restored = tmp_path / "restored"
    held_elsewhere = f"{5:08x}{0:012x}{10:08x}"  # an id a legal hold names
    backup_files.restore_blobs(backup, restored, parse_id(held_elsewhere)[0] + 1)
    store = FileBlobStore(restored)
    assert await store.get_many(ids) == {ids[0]: b"a" * 64, ids[1]: b"b" * 64}
    [new] = await store.put_many([b"after the restore"])
    assert parse_id(new)[0] == 6 and new not in ids
    await store.close()


async def test_snapshot_is_one_self_contained_file(tmp_path: Path) -> None:
    cell = SqliteCellStore(tmp_path / "cell.sqlite3")
    await cell.db.write(lambda c: c.execute(
        "INSERT INTO cell_meta VALUES ('marker', 42)"))
    target = tmp_path / "copy.sqlite3"
    backup_files.snapshot_sqlite(cell.db.path, target)
    await cell.close()
    assert not target.with_name("copy.sqlite3-wal").exists()
    conn = sqlite3.connect(f"file:{target}?mode=ro&immutable=1", uri=True)
    assert conn.execute("SELECT value FROM cell_meta WHERE key='marker'").fetchone() == (42,)
    conn.close()
    snap = backup_files.inspect_sqlite(target)
    assert snap.counts == {"accounts": 0, "mailboxes": 0, "messages": 0}


async def test_restore_keeps_what_a_legal_hold_names_and_the_backup_lacks(
        tmp_path: Path) -> None:
    live = FileBlobStore(tmp_path / "live")
    [old] = await live.put_many([b"in the backup" * 10])
    backup = tmp_path / "backup"
    backup_files.copy_blobs(live.root, backup, [old])
    backup_files.finish_blob_copy(backup, {old}, set())
    held, other = await live.put_many([b"held after the backup", b"not held"])
    await live.close()

    backup_files.restore_blobs(backup, live.root, 1, keep={held, old})
    store = FileBlobStore(live.root)
    assert await store.get_many([old, held]) == {old: b"in the backup" * 10,
                                                held: b"held after the backup"}
    assert sorted(await store.list_ids()) == sorted([old, held])
    assert not (live.root.parent / "live.keep").exists()
    assert b"not held" not in (live.root / "00000000.pack").read_bytes()
    assert other not in await store.list_ids()
    await store.close()
