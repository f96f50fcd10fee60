"""Queued mail for addresses this server hosts is delivered here, not sent to an MX.

The outbound queue takes whatever the server itself writes (Sieve vacation replies,
rejections, redirects; messages the MX workers hand over) as well as mail for other
domains. A recipient in a hosted domain must not be looked up in DNS: its domain may
have no MX at all (a test or internal domain), or an MX that is this very server.
Before routing, the queue asks the delivery service what each recipient is: an
account, alias or group of ours gets its copy stored at once (through the
recipient's own filter, with the queued envelope sender), an unknown local user is a
permanent failure (5.1.1), and only foreign addresses are routed.
"""

from __future__ import annotations

from collections.abc import Sequence

from letterlock.services.accounts.accounts import AccountRef
from letterlock.services.mail.delivery import DeliveryService, FilterEnvelope, RecipientKind
from letterlock.services.mail.outbound_session import Outcome
from letterlock.services.mail.queue_entry import FAILED, PENDING, SENT

HERE = "local delivery"
"""What the queue's log line names as the host that took a locally delivered copy."""


async def deliver_here(delivery: DeliveryService, mail_from: str, addresses: Sequence[str],
                       message: bytes) -> tuple[dict[str, Outcome], list[str]]:
    """(outcomes of the addresses of hosted domains, the foreign addresses to route)."""
    outcomes: dict[str, Outcome] = {}
    foreign: list[str] = []
    targets: dict[str, tuple[AccountRef, ...]] = {}
    for address in addresses:
        recipient = await delivery.classify(address)
        if recipient.kind is RecipientKind.FOREIGN:
            foreign.append(address)
        elif recipient.kind is RecipientKind.LOCAL and recipient.accounts:
            targets[address] = recipient.accounts
        elif recipient.kind is RecipientKind.INVALID:
            outcomes[address] = Outcome(FAILED, "5.1.3", "bad recipient address", HERE)
        else:
            outcomes[address] = Outcome(FAILED, "5.1.1", "no such user here", HERE)
    if not targets:
        return outcomes, foreign
    refs: dict[str, AccountRef] = {}
    led_by: dict[str, str] = {}
    for address, accounts in targets.items():
        for ref in accounts:
            refs.setdefault(ref.address, ref)
            led_by.setdefault(ref.address, address)
    safe = mail_from if mail_from.isascii() and mail_from.isprintable() else "invalid"
    raw = f"Return-Path: <{safe}>\r\n".encode("ascii") + message
    results = {r.address: r for r in await delivery.deliver(
        raw, list(refs.values()), envelope=FilterEnvelope(mail_from, led_by))}
    for address, accounts in targets.items():
        got = [results.get(ref.address) for ref in accounts]
        if all(r is not None and r.ok for r in got):
            outcomes[address] = Outcome(SENT, "2.0.0", "delivered here", HERE)
        elif any(r is not None and r.rejected is not None for r in got):
            outcomes[address] = Outcome(FAILED, "5.7.1", "refused by the recipient's "
                                        "filter", HERE)
        elif any(r is not None and r.over_quota for r in got):
            outcomes[address] = Outcome(FAILED, "5.2.2", "the recipient's mailbox is "
                                        "full", HERE)
        else:
            outcomes[address] = Outcome(PENDING, "4.3.0", "local delivery failed; "
                                        "will retry", HERE)
    return outcomes, foreign
