"""Quotas (issue 16 point 2): which limits apply, what is counted, and that APPEND,
COPY and delivery store nothing past them while MOVE and expunge still work."""

from __future__ import annotations

import pytest

from letterlock.app import App
from letterlock.errors import InvalidInput, QuotaExceeded
from letterlock.services.accounts.quotas import Quota, parse_size, stored_size
from support.env import PASSWORD

ALICE = "alice@example.test"
BOB = "bob@example.test"


def _msg(n: int, size: int = 1000) -> bytes:
    head = f"Subject: m{n}\r\n\r\n".encode()
    return head + b"x" * (size - len(head))


def test_sizes_are_read_as_operators_write_them() -> None:
    assert parse_size("800000") == 800000
    assert parse_size("2K") == 2048
    assert parse_size("1.5GiB") == 3 << 29
    assert parse_size("10mb") == 10 << 20
    for bad in ("lots", "-5M", "", "nan"):
        with pytest.raises(InvalidInput):
            parse_size(bad)


async def test_the_most_specific_limits_apply(app: App) -> None:
    await app.accounts.create(ALICE, "us-east", PASSWORD)
    quotas = app.quotas
    assert (await quotas.limits(ALICE)).unlimited
    await quotas.set_limits("default", Quota(messages=100))
    await quotas.set_limits("@example.test", Quota(storage=5 << 20))
    assert await quotas.limits(ALICE) == Quota(storage=5 << 20)
    assert await quotas.limits("carol@other.test") == Quota(messages=100)
    await quotas.set_limits(ALICE, Quota(storage=1 << 20, messages=10))
    assert await quotas.limits(ALICE) == Quota(1 << 20, 10)
    await quotas.set_limits(ALICE, Quota())  # cleared: the domain's again
    assert await quotas.limits(ALICE) == Quota(storage=5 << 20)
    with pytest.raises(InvalidInput):
        await quotas.set_limits("nobody", Quota(messages=1))
    with pytest.raises(InvalidInput):
        await quotas.set_limits(ALICE, Quota(messages=-1))


async def test_usage_counts_sealed_messages_in_the_accounts_region(app: App) -> None:
    await app.accounts.create(ALICE, "us-east", PASSWORD)
    ref = await app.accounts.resolve(ALICE)
    await app.accounts.create(BOB, "eu-dublin", PASSWORD)
    for n in range(3):
        await app.mailboxes.append(ref, "INBOX", _msg(n))
    usage = await app.quotas.usage(ref, fresh=True)
    assert usage.messages == 3 and usage.storage == 3 * stored_size(1000)
    bob = await app.accounts.resolve(BOB)
    assert (await app.quotas.usage(bob, fresh=True)).messages == 0


async def test_append_copy_move_and_expunge_against_a_message_limit(app: App) -> None:
    await app.accounts.create(ALICE, "us-east", PASSWORD)
    ref = await app.accounts.resolve(ALICE)
    await app.quotas.set_limits(ALICE, Quota(messages=3))
    await app.mailboxes.append_many(ref, "INBOX", [(_msg(n), (), None) for n in range(2)])
    with pytest.raises(QuotaExceeded):  # two more would make four: none is stored
        await app.mailboxes.append_many(ref, "INBOX", [(_msg(n), (), None)
                                                       for n in range(2, 4)])
    session = await app.accounts.authenticate(ALICE, PASSWORD)
    inbox = await app.mailboxes.get_mailbox(session, "INBOX")
    assert inbox.messages == 2
    await app.mailboxes.create_mailbox(session, "Keep")
    await app.mailboxes.append(ref, "INBOX", _msg(9))  # the third: at the limit
    with pytest.raises(QuotaExceeded):
        await app.mailboxes.copy(session, inbox.id, [1], "Keep")
    pairs, gone = await app.mailboxes.move(session, inbox.id, [1], "Keep")
    assert len(pairs) == 1 and len(gone) == 1  # a move adds nothing
    await app.mailboxes.expunge(session, inbox.id,
                                [m.uid for m in await app.mailboxes.messages(session,
                                                                             inbox.id)][:1])
    await app.mailboxes.append(ref, "INBOX", _msg(10))  # room again after the expunge


async def test_storage_limit_counts_what_is_sealed(app: App) -> None:
    await app.accounts.create(ALICE, "us-east", PASSWORD)
    ref = await app.accounts.resolve(ALICE)
    await app.quotas.set_limits(ALICE, Quota(storage=3 * stored_size(1000)))
    for n in range(3):
        await app.mailboxes.append(ref, "INBOX", _msg(n))
    with pytest.raises(QuotaExceeded):
        await app.mailboxes.append(ref, "INBOX", _msg(3, 10))


async def test_delivery_reports_a_full_mailbox_per_recipient(app: App) -> None:
    await app.accounts.create(ALICE, "us-east", PASSWORD)
    await app.accounts.create(BOB, "eu-dublin", PASSWORD)
    alice, bob = await app.accounts.resolve(ALICE), await app.accounts.resolve(BOB)
    await app.quotas.set_limits(BOB, Quota(messages=1))
    first = await app.delivery.deliver(_msg(1), [alice, bob])
    assert [r.ok for r in first] == [True, True]
    second = await app.delivery.deliver(_msg(2), [alice, bob])
    assert [(r.ok, r.over_quota) for r in second] == [(True, False), (False, True)]


async def test_owner_is_warned_once_at_80_and_95_per_cent(app: App) -> None:
    await app.accounts.create(BOB, "eu-dublin", PASSWORD)
    bob = await app.accounts.resolve(BOB)
    await app.quotas.set_limits(BOB, Quota(messages=10))

    async def subjects() -> list[str]:
        session = await app.accounts.authenticate(BOB, PASSWORD)
        box = await app.mailboxes.get_mailbox(session, "INBOX")
        msgs = await app.mailboxes.messages(session, box.id)
        bodies = await app.mailboxes.bodies(session, msgs)
        return [bodies[m.uid].split(b"Subject: ")[1].split(b"\r\n")[0].decode()
                for m in msgs]

    for n in range(7):
        await app.delivery.deliver(_msg(n), [bob])
    assert not any("full" in s for s in await subjects())
    await app.delivery.deliver(_msg(7), [bob])  # 8 of 10: 80 %
    assert (await subjects())[-1] == "Your mailbox is 80 % full"
    # The warning itself counts: 9 of 10 now; the next message makes 10 (100 %).
    await app.delivery.deliver(_msg(8), [bob])
    assert (await subjects())[-1] == "Your mailbox is 95 % full"
    results = await app.delivery.deliver(_msg(9), [bob])
    assert results[0].over_quota
    warnings = [s for s in await subjects() if "full" in s]
    assert warnings == ["Your mailbox is 80 % full", "Your mailbox is 95 % full"]
