"""Accounts: creation in a region, authentication, password change, recovery, and
bounded Argon2 concurrency."""

from __future__ import annotations

import asyncio
import threading

import pytest

from letterlock.app import App
from letterlock.crypto import keys
from letterlock.errors import (
    AlreadyExists,
    AuthenticationFailed,
    InvalidAddress,
    InvalidInput,
    UnknownDomain,
    UnknownRegion,
)
from support.env import PASSWORD

RAW = b"From: a@example.test\r\nSubject: old mail\r\n\r\nstill readable\r\n"


async def test_create_places_everything_in_the_home_region(app: App) -> None:
    ref, code = await app.accounts.create("Bob@Example.Test", "eu-dublin", PASSWORD)
    assert ref.address == "bob@example.test" and ref.region == "eu-dublin"
    assert len(code.split("-")) == 8
    assert await app.control.lookup("bob@example.test") == "eu-dublin"
    assert await app.cells.get("us-east").store.get_account("bob@example.test") is None
    record = await app.cells.get("eu-dublin").store.get_account("bob@example.test")
    assert record is not None and record.public_key == ref.record.public_key
    session = await app.accounts.authenticate("bob@example.test", PASSWORD)
    names = {b.name: b.special_use for b in await app.mailboxes.list_mailboxes(session)}
    assert names == {"INBOX": None, "Sent": "\\Sent", "Drafts": "\\Drafts",
                     "Trash": "\\Trash", "Junk": "\\Junk", "Archive": "\\Archive"}


@pytest.mark.parametrize(("address", "region", "error"), [
    ("bob@example.test", "mars", UnknownRegion),
    ("bob@elsewhere.test", "us-east", UnknownDomain),
    ("not an address", "us-east", InvalidAddress),
])
async def test_create_refuses_bad_input(app: App, address: str, region: str,
                                        error: type[Exception]) -> None:
    with pytest.raises(error):
        await app.accounts.create(address, region, PASSWORD)
    assert await app.accounts.list() == []


async def test_duplicate_and_short_password(app: App) -> None:
    await app.accounts.create("bob@example.test", "us-east", PASSWORD)
    with pytest.raises(AlreadyExists):
        await app.accounts.create("bob@example.test", "eu-dublin", PASSWORD)
    with pytest.raises(InvalidInput):
        await app.accounts.create("carol@example.test", "us-east", "short")


async def test_wrong_password_and_unknown_user_fail_alike(app: App) -> None:
    await app.accounts.create("bob@example.test", "us-east", PASSWORD)
    with pytest.raises(AuthenticationFailed):
        await app.accounts.authenticate("bob@example.test", "wrong password")
    with pytest.raises(AuthenticationFailed):
        await app.accounts.authenticate("nobody@example.test", PASSWORD)


async def test_password_change_keeps_old_mail_readable(app: App) -> None:
    ref, _ = await app.accounts.create("bob@example.test", "us-east", PASSWORD)
    await app.mailboxes.append(ref, "INBOX", RAW)
    await app.accounts.change_password("bob@example.test", PASSWORD, "a new passphrase")
    with pytest.raises(AuthenticationFailed):
        await app.accounts.authenticate("bob@example.test", PASSWORD)
    session = await app.accounts.authenticate("bob@example.test", "a new passphrase")
    inbox = await app.mailboxes.get_mailbox(session, "INBOX")
    msgs = await app.mailboxes.messages(session, inbox.id)
    assert list((await app.mailboxes.bodies(session, msgs)).values()) == [RAW]


async def test_recovery_code_restores_access(app: App) -> None:
    ref, code = await app.accounts.create("bob@example.test", "eu-dublin", PASSWORD)
    await app.mailboxes.append(ref, "INBOX", RAW)
    with pytest.raises(AuthenticationFailed):
        await app.accounts.recover("bob@example.test", keys.new_recovery_code(), "forgotten!")
    await app.accounts.recover("bob@example.test", code.lower(), "brand new password")
    session = await app.accounts.authenticate("bob@example.test", "brand new password")
    inbox = await app.mailboxes.get_mailbox(session, "INBOX")
    msgs = await app.mailboxes.messages(session, inbox.id)
    assert list((await app.mailboxes.bodies(session, msgs)).values()) == [RAW]


async def test_kdf_concurrency_is_bounded(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    await app.accounts.create("bob@example.test", "us-east", PASSWORD)
    limit = app.config.crypto.max_concurrent_kdf
    lock = threading.Lock()
    running = peak = 0
    real = keys.unwrap_with_password

    def counting(blob: bytes, password: str, key_id: bytes) -> keys.KeyPair:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        try:
            threading.Event().wait(0.02)
            return real(blob, password, key_id)
        finally:
            with lock:
                running -= 1

    monkeypatch.setattr(keys, "unwrap_with_password", counting)
    # Twelve clients (the logins of one client share one derivation, see
    # test_key_cache.py).
    sessions = await asyncio.gather(*(app.accounts.authenticate("bob@example.test", PASSWORD,
                                                                client=f"192.0.2.{i}")
                                      for i in range(12)))
    assert len(sessions) == 12
    assert peak == limit
