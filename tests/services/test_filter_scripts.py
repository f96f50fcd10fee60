"""The filter service (services/mail/filters/scripts.py): the delivery copy follows
the active script through renames and is dropped on deactivation; the account's
storage quota counts scripts (HAVESPACE answers honestly); scripts go with a deleted
account and follow a moved one."""

from __future__ import annotations

import pytest

from letterlock.app import App
from letterlock.errors import QuotaExceeded
from letterlock.services.accounts.quotas import Quota
from support.env import PASSWORD

ALICE = "alice@example.test"


async def test_delivery_copy_follows_the_active_script(app: App) -> None:
    ref, _ = await app.accounts.create(ALICE, "us-east", PASSWORD)
    session = await app.accounts.authenticate(ALICE, PASSWORD)
    store = app.filters.store(ref.region)
    await app.filters.put(session, "a", "keep;\r\n", via="test")
    assert (await store.get(ALICE, "a")).delivery is None  # type: ignore[union-attr]
    await app.filters.activate(session, "a", via="test")
    await app.filters.rename(session, "a", "b", via="test")
    record = await store.active(ALICE)
    assert record is not None and record.name == "b"
    assert app.filters.open_delivery_copy(ref, record) == "keep;\r\n"
    await app.filters.put(session, "b", "discard;\r\n", via="test")  # replaced in place
    record = await store.active(ALICE)
    assert record is not None
    assert app.filters.open_delivery_copy(ref, record) == "discard;\r\n"
    await app.filters.activate(session, None, via="test")
    assert all(r.delivery is None for r in await store.list(ALICE))


async def test_scripts_count_toward_the_storage_quota(app: App) -> None:
    ref, _ = await app.accounts.create(ALICE, "us-east", PASSWORD)
    usage = await app.quotas.usage(ref, fresh=True)
    await app.quotas.set_limits(ALICE, Quota(storage=usage.storage + 100))
    await app.filters.have_space(ref, "small", 90)
    with pytest.raises(QuotaExceeded):
        await app.filters.have_space(ref, "big", 200)
    session = await app.accounts.authenticate(ALICE, PASSWORD)
    script = "keep;\r\n" + "#" * 80 + "\r\n"
    await app.filters.put(session, "small", script, via="test")
    # Stored scripts are part of the account's usage (what IMAP GETQUOTA shows) ...
    assert (await app.quotas.usage(ref)).storage == usage.storage + len(script)
    # ... and replacing a script counts only the difference.
    await app.filters.have_space(ref, "small", 95)
    with pytest.raises(QuotaExceeded):
        await app.filters.have_space(ref, "other", 30)


async def test_scripts_go_with_the_account(app: App) -> None:
    await app.accounts.create(ALICE, "us-east", PASSWORD)
    session = await app.accounts.authenticate(ALICE, PASSWORD)
    await app.filters.put(session, "a", "keep;\r\n", via="test")
    await app.filters.activate(session, "a", via="test")
    await app.filters.store("us-east").set_option(ALICE, "junk", "inbox")
    await app.accounts.move(ALICE, "eu-dublin")
    assert await app.filters.store("us-east").list(ALICE) == []
    assert await app.filters.store("us-east").options(ALICE) == {}
    moved = await app.filters.store("eu-dublin").active(ALICE)
    assert moved is not None and moved.name == "a"
    assert await app.filters.store("eu-dublin").options(ALICE) == {"junk": "inbox"}
    await app.accounts.delete(ALICE)
    assert await app.filters.store("eu-dublin").list(ALICE) == []
    assert await app.filters.store("eu-dublin").options(ALICE) == {}
