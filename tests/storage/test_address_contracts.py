"""The address stores (storage/address_contracts.py) on SQLite and PostgreSQL: one
contract suite for both halves (control: names, routes, domain aliases; region:
targets and send-as grants)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from letterlock.errors import AlreadyExists, NotFound
from letterlock.storage.address_contracts import AddressBook, AddressDirectory, AddressKind
from letterlock.storage.addresses_sqlite import SqliteAddressBook, SqliteAddressDirectory

KINDS = ["sqlite", "postgres"]


@pytest.fixture(params=KINDS)
async def directory(request: pytest.FixtureRequest,
                    tmp_path: Path) -> AsyncIterator[AddressDirectory]:
    store: AddressDirectory
    if request.param == "postgres":
        from letterlock.storage.addresses_postgres import PostgresAddressDirectory

        store = PostgresAddressDirectory(request.getfixturevalue("postgres_db"))
    else:
        store = SqliteAddressDirectory(tmp_path / "addresses.sqlite3")
    yield store
    await store.close()


@pytest.fixture(params=KINDS)
async def book(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AddressBook]:
    store: AddressBook
    if request.param == "postgres":
        from letterlock.storage.addresses_postgres import PostgresAddressBook

        store = PostgresAddressBook(request.getfixturevalue("postgres_db"))
    else:
        store = SqliteAddressBook(tmp_path / "book.sqlite3")
    yield store
    await store.close()


async def test_names_and_routes(directory: AddressDirectory) -> None:
    await directory.add_name("team@example.test", AddressKind.GROUP)
    await directory.add_name("@example.test", AddressKind.CATCH_ALL)
    with pytest.raises(AlreadyExists):
        await directory.add_name("team@example.test", AddressKind.ALIAS)
    assert await directory.get_name("team@example.test") is AddressKind.GROUP
    assert await directory.get_name("nobody@example.test") is None
    assert await directory.list_names() == [("@example.test", AddressKind.CATCH_ALL),
                                            ("team@example.test", AddressKind.GROUP)]
    assert await directory.routes("team@example.test") == []
    for region in ("us-east", "eu-dublin", "us-east"):  # idempotent
        await directory.set_route("team@example.test", region, True)
    assert await directory.routes("team@example.test") == ["eu-dublin", "us-east"]
    await directory.set_route("team@example.test", "us-east", False)
    await directory.set_route("team@example.test", "us-east", False)
    assert await directory.routes("team@example.test") == ["eu-dublin"]
    await directory.remove_name("team@example.test")
    assert await directory.routes("team@example.test") == []
    assert await directory.get_name("team@example.test") is None
    with pytest.raises(NotFound):
        await directory.remove_name("team@example.test")


async def test_domain_aliases(directory: AddressDirectory) -> None:
    await directory.add_domain_alias("alias.test", "example.test")
    with pytest.raises(AlreadyExists):
        await directory.add_domain_alias("alias.test", "other.test")
    assert await directory.domain_alias_target("alias.test") == "example.test"
    assert await directory.domain_alias_target("example.test") is None
    assert await directory.list_domain_aliases() == [("alias.test", "example.test")]
    await directory.remove_domain_alias("alias.test")
    with pytest.raises(NotFound):
        await directory.remove_domain_alias("alias.test")
    assert await directory.list_domain_aliases() == []


async def test_targets(book: AddressBook) -> None:
    await book.add_target("team@example.test", "bob@example.test", AddressKind.GROUP)
    await book.add_target("team@example.test", "alice@example.test", AddressKind.GROUP)
    await book.add_target("sales@example.test", "bob@example.test", AddressKind.ALIAS)
    with pytest.raises(AlreadyExists):
        await book.add_target("team@example.test", "bob@example.test", AddressKind.GROUP)
    assert await book.targets("team@example.test") == ["alice@example.test",
                                                       "bob@example.test"]
    assert await book.targets("nobody@example.test") == []
    assert await book.addresses_of("bob@example.test") == [
        ("sales@example.test", AddressKind.ALIAS), ("team@example.test", AddressKind.GROUP)]
    assert await book.remove_target("team@example.test", "alice@example.test")
    assert not await book.remove_target("team@example.test", "alice@example.test")
    assert await book.targets("team@example.test") == ["bob@example.test"]


async def test_grants_and_removing_an_account(book: AddressBook) -> None:
    assert await book.set_grant("alice@example.test", "boss@example.test", True)
    assert not await book.set_grant("alice@example.test", "boss@example.test", True)
    assert await book.set_grant("alice@example.test", "@other.test", True)
    assert await book.grants("alice@example.test") == ["@other.test", "boss@example.test"]
    assert await book.set_grant("alice@example.test", "@other.test", False)
    assert not await book.set_grant("alice@example.test", "@other.test", False)
    await book.add_target("sales@example.test", "alice@example.test", AddressKind.ALIAS)
    await book.add_target("@example.test", "alice@example.test", AddressKind.CATCH_ALL)
    await book.add_target("sales@example.test", "bob@example.test", AddressKind.ALIAS)
    assert await book.remove_account("alice@example.test") == [
        ("@example.test", AddressKind.CATCH_ALL), ("sales@example.test", AddressKind.ALIAS)]
    assert await book.grants("alice@example.test") == []
    assert await book.addresses_of("alice@example.test") == []
    assert await book.targets("sales@example.test") == ["bob@example.test"]
