"""The filter store contract (storage/sieve_contracts.py) on memory, SQLite and
PostgreSQL: one active script at most, a server copy only while active, renames that
refuse a taken name, vacation memory, options (junk_filing.py), everything gone with the
account."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from letterlock.errors import AlreadyExists, NotFound
from letterlock.storage.sieve_contracts import SieveStore
from letterlock.storage.sieve_memory import MemorySieveStore
from letterlock.storage.sieve_sqlite import SqliteSieveStore

A = "alice@example.test"


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SieveStore]:
    made: SieveStore
    if request.param == "memory":
        made = MemorySieveStore()
    elif request.param == "postgres":
        from letterlock.storage.sieve_postgres import PostgresSieveStore

        made = PostgresSieveStore(request.getfixturevalue("postgres_db"))
    else:
        made = SqliteSieveStore(tmp_path / "sieve.sqlite3", fsync=False)
    yield made
    await made.close()


async def test_put_list_activate(store: SieveStore) -> None:
    await store.put(A, "one", b"s1", 10, b"ignored: not active")
    await store.put(A, "two", b"s2", 20, None)
    assert [(r.name, r.active, r.delivery) for r in await store.list(A)] == [
        ("one", False, None), ("two", False, None)]
    await store.activate(A, "two", b"d2")
    active = await store.active(A)
    assert active is not None and (active.name, active.delivery) == ("two", b"d2")
    await store.put(A, "two", b"s2b", 21, b"d2b")  # replacing the active one
    again = await store.get(A, "two")
    assert again is not None and (again.sealed, again.size, again.active,
                                  again.delivery) == (b"s2b", 21, True, b"d2b")
    await store.activate(A, "one", b"d1")
    two = await store.get(A, "two")
    assert two is not None and (two.active, two.delivery) == (False, None)
    await store.activate(A, None, None)
    assert await store.active(A) is None
    assert all(r.delivery is None for r in await store.list(A))
    with pytest.raises(NotFound):
        await store.activate(A, "nope", b"x")


async def test_rename_delete(store: SieveStore) -> None:
    await store.put(A, "one", b"s1", 1, None)
    await store.put(A, "two", b"s2", 1, None)
    with pytest.raises(AlreadyExists):
        await store.rename(A, "one", "two")
    with pytest.raises(NotFound):
        await store.rename(A, "zero", "three")
    await store.rename(A, "one", "uno")
    assert [r.name for r in await store.list(A)] == ["two", "uno"]
    await store.delete(A, "two")
    with pytest.raises(NotFound):
        await store.delete(A, "two")
    assert await store.get("bob@example.test", "uno") is None


async def test_vacation_and_account_deletion(store: SieveStore) -> None:
    assert await store.vacation_until(A, b"k") is None
    await store.remember_vacation(A, b"k", 9e12)
    assert await store.vacation_until(A, b"k") == 9e12
    await store.put(A, "one", b"s1", 1, None)
    await store.delete_account(A)
    assert await store.list(A) == [] and await store.vacation_until(A, b"k") is None


async def test_options_set_cleared_and_gone_with_the_account(store: SieveStore) -> None:
    B = "bob@example.test"
    assert await store.option(A, "junk") is None
    await store.set_option(A, "junk", "inbox")
    await store.set_option(B, "junk", "folder")
    await store.set_option(A, "junk", "inbox")  # idempotent
    assert await store.option(A, "junk") == "inbox"
    assert await store.options(A) == {"junk": "inbox"}
    await store.set_option(A, "junk", None)  # back to the default
    assert await store.option(A, "junk") is None and await store.options(A) == {}
    await store.set_option(A, "junk", "inbox")
    await store.delete_account(A)
    assert await store.options(A) == {} and await store.option(B, "junk") == "folder"
