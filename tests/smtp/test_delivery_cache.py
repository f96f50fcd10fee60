"""The delivery path remembers hosted domains, resolved accounts and INBOX ids so a
recipient costs no storage round trip; these tests guard that remembering never
delivers to the wrong place: changes made in this process are seen at once, and a
remembered mailbox that vanished is looked up again instead of failing the mail."""

from __future__ import annotations

import pytest

from letterlock.app import App
from letterlock.services.accounts.accounts import AccountRef
from letterlock.services.mail.delivery import RecipientKind
from smtp.conftest import ALICE
from support.env import PASSWORD


def _message(marker: str) -> bytes:
    return (f"From: x@remote.test\r\nTo: {ALICE}\r\nSubject: {marker}\r\n\r\n"
            f"body {marker}\r\n").encode()


async def _inbox(app: App, address: str) -> list[bytes]:
    session = await app.accounts.authenticate(address, PASSWORD)
    box = await app.mailboxes.get_mailbox(session, "INBOX")
    msgs = await app.mailboxes.messages(session, box.id)
    bodies = await app.mailboxes.bodies(session, msgs)
    return [bodies[m.uid] for m in msgs]


async def _deliver(app: App, marker: str) -> AccountRef:
    recipient = await app.delivery.classify(ALICE)
    assert recipient.kind is RecipientKind.LOCAL and recipient.account is not None
    [result] = await app.delivery.deliver(_message(marker), [recipient.account])
    assert result.ok, result.error
    return recipient.account


async def test_new_domain_and_account_are_seen_at_once(app: App) -> None:
    assert (await app.delivery.classify("dan@new.test")).kind is RecipientKind.FOREIGN
    await app.add_domain("new.test")
    assert (await app.delivery.classify("dan@new.test")).kind is RecipientKind.UNKNOWN_USER
    await app.accounts.create("dan@new.test", "us-east", PASSWORD)
    assert (await app.delivery.classify("dan@new.test")).kind is RecipientKind.LOCAL


async def test_move_in_this_process_redirects_delivery_at_once(accounts: App) -> None:
    before = await _deliver(accounts, "before-move")
    assert before.region == "us-east"
    await accounts.accounts.move(ALICE, "eu-dublin", settle_s=0)
    after = await _deliver(accounts, "after-move")
    assert after.region == "eu-dublin"
    bodies = await _inbox(accounts, ALICE)
    assert [b"before-move" in b for b in bodies] == [True, False]
    assert b"after-move" in bodies[1]


async def test_delete_then_recreate_delivers_to_the_new_account(accounts: App) -> None:
    old = await _deliver(accounts, "old")
    await accounts.accounts.delete(ALICE)
    assert (await accounts.delivery.classify(ALICE)).kind is RecipientKind.UNKNOWN_USER
    await accounts.accounts.create(ALICE, "us-east", PASSWORD)
    new = await _deliver(accounts, "new")
    assert new.record.id != old.record.id
    [body] = await _inbox(accounts, ALICE)
    assert b"new" in body


async def test_a_vanished_remembered_inbox_is_looked_up_again(accounts: App) -> None:
    """Another process moved the account away and back: the INBOX id this process
    remembers names no mailbox any more; the delivery still lands."""
    ref = await _deliver(accounts, "first")
    cell = accounts.cells.get("us-east")
    orphans = await cell.store.delete_account(ALICE)  # what the other process did
    await cell.blobs.delete_many(orphans)
    await cell.store.create_account(ref.record)
    await cell.store.create_mailbox(ref.record.id, "INBOX", None, True)
    [result] = await accounts.delivery.deliver(_message("second"), [ref])
    assert result.ok, result.error
    [body] = await _inbox(accounts, ALICE)
    assert b"second" in body


@pytest.mark.parametrize("address", ["nobody@example.test", "x@elsewhere.test"])
async def test_unknown_recipients_are_not_remembered(accounts: App, address: str) -> None:
    first = await accounts.delivery.classify(address)
    assert first.kind in (RecipientKind.UNKNOWN_USER, RecipientKind.FOREIGN)
    if first.kind is RecipientKind.FOREIGN:
        await accounts.add_domain("elsewhere.test")
    await accounts.accounts.create(address, "us-east", PASSWORD)
    assert (await accounts.delivery.classify(address)).kind is RecipientKind.LOCAL
