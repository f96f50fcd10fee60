"""Delivery: the one path by which mail enters a mailbox from outside the owner's own
session (SMTP MX/LMTP/submission to local users, `mail import`, legal notices).

Each recipient's copy is sealed to that recipient's key and stored in that
recipient's home region; a message to recipients in two regions lands in both cells.
Delivery returns only when every copy it reports as delivered is durable.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from letterlock.crypto import openpgp
from letterlock.errors import InvalidInput, LetterlockError, QuotaExceeded, UnknownAccount
from letterlock.services.accounts.accounts import AccountRef, AccountService
from letterlock.services.accounts.addresses import domain_of, normalise_address
from letterlock.services.accounts.quota_warnings import quota_warning
from letterlock.services.mail.addresses import AddressService, catch_all_key
from letterlock.services.mail.filters.junk_filing import JUNK_KEYWORD
from letterlock.services.mail.filters.running import KEEP, FilterRunner, Plan
from letterlock.services.mail.mailbox import MailboxService, canonical_flags
from letterlock.services.operations.log_events import LogEvent, event
from letterlock.storage.contracts import ControlStore
from letterlock.storage.models import Appended

log = logging.getLogger("letterlock.delivery")

NORMALISED_CACHE_MAX = 10_000
DOMAIN_CACHE_TTL_S = 10.0
"""Seconds the hosted-domain list is reused for addresses in a hosted domain (a
domain not in it is always looked up again, so a new domain is seen at once)."""
ROLE_FALLBACK_TTL_S = 60.0
"""Seconds the default taker of a domain's postmaster@ and abuse@ mail (its first
account) is reused before it is looked for again."""

ROLE_MAILBOXES = ("postmaster", "abuse")
"""Local parts every hosted domain accepts even without an account of that name:
postmaster (RFC 5321 4.5.1, required) and abuse (RFC 2142)."""


class RecipientKind(enum.Enum):
    LOCAL = "local"
    """A hosted account: deliver here."""
    UNKNOWN_USER = "unknown-user"
    """A hosted domain but no such account."""
    FOREIGN = "foreign"
    """A domain this server does not host: relay only for authenticated senders."""
    INVALID = "invalid"


@dataclass(frozen=True)
class Recipient:
    address: str
    kind: RecipientKind
    account: AccountRef | None = None
    """The account the address leads to (the first, for a group)."""
    others: tuple[AccountRef, ...] = ()
    """The other accounts a group address leads to."""

    @property
    def accounts(self) -> tuple[AccountRef, ...]:
        """Every account a copy is delivered to (one per member of a group)."""
        return () if self.account is None else (self.account, *self.others)


@dataclass(frozen=True)
class DeliveryResult:
    address: str
    ok: bool
    error: str = ""
    stored: Appended | None = None
    """Where the copy went (mailbox, UID), when it was stored."""
    over_quota: bool = False
    """Not stored because the account is over its quota (a lasting refusal)."""
    rejected: str | None = None
    """Refused by the account's filter (Sieve reject/ereject), with its reason: the
    SMTP or LMTP reply says 550 5.7.1 with it, or the sender is told by mail."""


@dataclass(frozen=True)
class FilterEnvelope:
    """The SMTP envelope a delivery came with, for the recipients' filters."""

    sender: str
    recipients: Mapping[str, str]
    """Account address -> the RCPT address that led to it (alias, group, +detail)."""


class DeliveryService:
    def __init__(self, control: ControlStore, accounts: AccountService,
                 mailboxes: MailboxService, *, postmaster: str = "",
                 addresses: AddressService | None = None,
                 filters: FilterRunner | None = None) -> None:
        self._control = control
        self.filters = filters
        """Each account's active filter (Sieve), run for mail that comes with an
        envelope (:meth:`deliver`'s ``envelope``); None: no filtering."""
        self._addresses = addresses
        """Aliases, groups, catch-alls, domain aliases, sub-addressing; None: only
        accounts' own addresses (and the role mailboxes) are known."""
        self._accounts = accounts
        self._mailboxes = mailboxes
        self._postmaster = postmaster
        """The account that takes postmaster@ and abuse@ mail no account of its own
        takes (``smtp.postmaster``); empty: each domain's first account."""
        self._role_takers: dict[str | None, tuple[str | None, float]] = {}
        """domain (None: the server) -> (its first account, monotonic expiry)."""
        self._domains: frozenset[str] = frozenset()
        self._normal: dict[str, str] = {}
        """Recently classified address -> its normal form (a pure function)."""
        self._domains_expire = 0.0

    async def hosted_domains(self) -> set[str]:
        return {d.name for d in await self._control.list_domains()}

    async def _is_hosted(self, domain: str) -> bool:
        # Domains are only ever added, so a remembered "hosted" stays true; a domain
        # not in the remembered set is looked up again (it may have just been added).
        if domain in self._domains and self._domains_expire > time.monotonic():
            return True
        self._domains = frozenset(await self.hosted_domains())
        self._domains_expire = time.monotonic() + DOMAIN_CACHE_TTL_S
        return domain in self._domains

    async def classify(self, address: str) -> Recipient:
        """Decide what ``address`` is to this server.

        RFC 5321 4.5.1: every hosted domain has a postmaster, and a bare
        ``postmaster`` (no domain) names this server's; RFC 2142 asks the same of
        abuse@. Where no account of that address exists, mail to it goes to the
        ``smtp.postmaster`` account, else to the domain's first account, else to the
        server's first account (see docs/operating.md, "postmaster and abuse").

        Then the addresses of docs/addresses.md, in this order (as Postfix does): a
        domain alias is rewritten to its domain; an account; an alias or group; the
        same two without a sub-address tag (RFC 5233); the role mailboxes; the
        domain's catch-all. Each such decision is one log line."""
        if address.lower() == "postmaster":
            return await self._bare_postmaster()
        normal = self._normal.get(address)
        if normal is None:
            try:
                normal = normalise_address(address)  # IDNA encoding: tens of µs
            except InvalidInput:
                return Recipient(address, RecipientKind.INVALID)
            if len(self._normal) >= NORMALISED_CACHE_MAX:
                self._normal.clear()
            self._normal[address] = normal
        lookup, via = normal, ""
        if not await self._is_hosted(domain_of(normal)):
            target = (None if self._addresses is None else
                      await self._addresses.domain_target(domain_of(normal)))
            if target is None:
                return Recipient(normal, RecipientKind.FOREIGN)
            lookup, via = f"{normal.rpartition('@')[0]}@{target}", "domain-alias"
        try:
            ref = await self._accounts.resolve_for_delivery(lookup)
        except UnknownAccount:
            pass
        else:
            if via:
                _log_resolved(normal, via, (ref,))
            return Recipient(normal, RecipientKind.LOCAL, ref)
        found = await self._extra_addresses(normal, lookup, via)
        if found is not None:
            return found
        if lookup.partition("@")[0].lower() in ROLE_MAILBOXES:
            return await self._role_taker(normal, domain_of(lookup))
        if self._addresses is not None:
            found = await self._expand(normal, catch_all_key(domain_of(lookup)), via)
            if found is not None:
                return found
        return Recipient(normal, RecipientKind.UNKNOWN_USER)

    async def _extra_addresses(self, normal: str, lookup: str, via: str) -> Recipient | None:
        """An alias or group (``lookup``), or an account, alias or group without
        ``lookup``'s sub-address tag; None when it is none of these."""
        if self._addresses is None:
            return None
        found = await self._expand(normal, lookup, via)
        if found is not None:
            return found
        base = self._addresses.base_address(lookup)
        if base is None:
            return None
        try:
            ref = await self._accounts.resolve_for_delivery(base)
        except UnknownAccount:
            return await self._expand(normal, base, "subaddress")
        _log_resolved(normal, "subaddress", (ref,))
        return Recipient(normal, RecipientKind.LOCAL, ref)

    async def _expand(self, rcpt: str, address: str, via: str) -> Recipient | None:
        """The recipient ``rcpt`` is when alias, group or catch-all ``address`` leads
        to accounts, each resolved to its home region (where its copy is sealed and
        stored); None when it leads to none. ``via`` names a rewriting that led here
        (domain alias, sub-address) for the log line; else the kind is named."""
        assert self._addresses is not None
        found = await self._addresses.lookup(address)
        if found is None:
            return None
        kind, accounts = found
        refs: dict[str, AccountRef] = {}
        for account in accounts:
            try:
                refs[account] = await self._accounts.resolve_for_delivery(account)
            except UnknownAccount:
                event(LogEvent.ADDRESS_DANGLING, rcpt=rcpt, account=account)
        if not refs:
            return None
        targets = tuple(refs.values())
        _log_resolved(rcpt, via or str(kind), targets)
        return Recipient(rcpt, RecipientKind.LOCAL, targets[0], targets[1:])

    async def owns(self, ref: AccountRef, address: str) -> bool:
        """Whether the account ``ref`` may send as ``address`` (RFC 6409 4.1): its own
        address, its aliases and sub-addresses, or what an operator granted it (see
        AddressService.owns)."""
        if self._addresses is not None:
            return await self._addresses.owns(ref, address)
        try:
            return normalise_address(address) == ref.address
        except InvalidInput:
            return False

    async def _bare_postmaster(self) -> Recipient:
        for domain in sorted(await self.hosted_domains()):
            try:
                ref = await self._accounts.resolve_for_delivery(f"postmaster@{domain}")
            except UnknownAccount:
                continue
            return Recipient(f"postmaster@{domain}", RecipientKind.LOCAL, ref)
        return await self._role_taker("postmaster", None)

    async def _role_taker(self, address: str, domain: str | None) -> Recipient:
        """Who takes mail for the role ``address`` (postmaster or abuse) of
        ``domain`` (None: the server) when no account of that address exists."""
        if self._postmaster:
            try:
                ref = await self._accounts.resolve_for_delivery(
                    normalise_address(self._postmaster))
            except (UnknownAccount, InvalidInput):
                log.warning("smtp.postmaster %r is not an account", self._postmaster)
            else:
                return Recipient(address, RecipientKind.LOCAL, ref)
        for scope in (domain, None) if domain is not None else (None,):
            taker = await self._first_account(scope)
            if taker is None:
                continue
            try:
                ref = await self._accounts.resolve_for_delivery(taker)
            except UnknownAccount:  # deleted since: look again next time
                self._role_takers.pop(scope, None)
                continue
            return Recipient(address, RecipientKind.LOCAL, ref)
        return Recipient(address, RecipientKind.UNKNOWN_USER)

    async def _first_account(self, domain: str | None) -> str | None:
        now = time.monotonic()
        hit = self._role_takers.get(domain)
        if hit is not None and hit[1] > now:
            return hit[0]
        taker = await self._accounts.first_account(domain)
        self._role_takers[domain] = (taker, now + ROLE_FALLBACK_TTL_S)
        return taker

    async def deliver(self, raw: bytes, recipients: Sequence[AccountRef], *,
                      mailbox: str = "INBOX", flags: Sequence[str] = (),
                      internaldate: datetime | None = None,
                      quota: bool = True,
                      envelope: FilterEnvelope | None = None) -> list[DeliveryResult]:
        """Seal ``raw`` once per recipient and store every copy durably.

        Copies for the same region share one group commit. Per-recipient failures are
        reported, not raised, so a caller (LMTP) can answer per recipient. Each copy
        stored, or not, is one log line. With ``envelope`` (mail from SMTP or LMTP)
        each recipient's active filter decides where its copy goes first.
        """
        if envelope is not None and self.filters is not None:
            return await self._filtered(raw, recipients, envelope, mailbox, flags,
                                        internaldate, quota)
        canonical = canonical_flags(flags)
        by_region: dict[str, list[AccountRef]] = {}
        for ref in recipients:
            by_region.setdefault(ref.region, []).append(ref)

        async def one_region(refs: list[AccountRef]) -> list[DeliveryResult]:
            results = []
            items = []
            for ref in refs:
                try:
                    box = await self._mailboxes.mailbox_for_delivery(ref, mailbox)
                except LetterlockError as exc:
                    results.append(DeliveryResult(ref.address, False, str(exc)))
                    continue
                try:
                    content = await _for_custody(ref, raw)
                    if self._mailboxes.quotas is not None and quota:
                        await self._mailboxes.quotas.check(ref, [len(content)])
                except QuotaExceeded as exc:
                    results.append(DeliveryResult(ref.address, False, str(exc),
                                                  over_quota=True))
                    continue
                except LetterlockError as exc:
                    results.append(DeliveryResult(ref.address, False, str(exc)))
                    continue
                items.append((ref, await self._mailboxes.seal_message(
                    ref, content, box, canonical, internaldate)))
            if items:
                try:
                    stored = await self._mailboxes.append_delivered(items, mailbox)
                    results += [DeliveryResult(ref.address, True, stored=where)
                                for (ref, _), where in zip(items, stored, strict=True)]
                except LetterlockError as exc:
                    results += [DeliveryResult(ref.address, False, str(exc))
                                for ref, _ in items]
            for result in results:
                _log_result(result, refs[0].region)
            if self._mailboxes.quotas is not None and quota:
                await self._warn_if_full([ref for ref in refs if any(
                    r.ok and r.address == ref.address for r in results)])
            return results

        if len(by_region) == 1:
            nested = [await one_region(next(iter(by_region.values())))]
        else:
            nested = await asyncio.gather(*(one_region(refs) for refs in by_region.values()))
        order = {ref.address: i for i, ref in enumerate(recipients)}
        return sorted((r for group in nested for r in group), key=lambda r: order[r.address])

    async def _filtered(self, raw: bytes, recipients: Sequence[AccountRef],
                        envelope: FilterEnvelope, mailbox: str, flags: Sequence[str],
                        internaldate: datetime | None, quota: bool,
                        ) -> list[DeliveryResult]:
        """:meth:`deliver` after each recipient's filter: those whose filter keeps the
        message as is are delivered together, the others one by one."""
        assert self.filters is not None
        plain: list[AccountRef] = []
        results: list[DeliveryResult] = []
        for ref in recipients:
            plan = await self.filters.plan(ref, raw, envelope.sender,
                                           envelope.recipients.get(ref.address, ref.address))
            if plan.stores == KEEP and plan.reject is None:
                plain.append(ref)
            else:
                results.append(await self._by_plan(ref, raw, plan, flags, internaldate,
                                                   quota))
        if plain:
            results += await self.deliver(raw, plain, mailbox=mailbox, flags=flags,
                                          internaldate=internaldate, quota=quota)
        order = {ref.address: i for i, ref in enumerate(recipients)}
        return sorted(results, key=lambda r: order[r.address])

    async def _by_plan(self, ref: AccountRef, raw: bytes, plan: Plan, flags: Sequence[str],
                       internaldate: datetime | None, quota: bool) -> DeliveryResult:
        if plan.reject is not None:
            return DeliveryResult(ref.address, False, "rejected by the recipient's filter",
                                  rejected=plan.reject)
        if not plan.stores:  # discarded, or redirected without a copy kept
            return DeliveryResult(ref.address, True)
        outcomes = []
        for store in plan.stores:
            box = store.mailbox
            if store.create:
                try:
                    await self._mailboxes.ensure_mailbox(ref, box)
                except LetterlockError as exc:  # e.g. a name we cannot make: INBOX
                    log.info("%s: filter mailbox not created: %s", ref.address, exc)
                    box = "INBOX"
            outcomes += await self.deliver(raw, [ref], mailbox=box,
                                           flags=[*flags, *store.flags],
                                           internaldate=internaldate, quota=quota)
        failed = [o for o in outcomes if not o.ok]
        return failed[0] if failed else outcomes[0]

    async def _warn_if_full(self, refs: Sequence[AccountRef]) -> None:
        """A warning mail to each account that has just reached 80 % or 95 % of a
        limit (once per level; it is stored even if it passes the limit)."""
        quotas = self._mailboxes.quotas
        assert quotas is not None
        for ref in refs:
            try:
                level = await quotas.crossed(ref)
                if level is None:
                    continue
                limits = await quotas.limits(ref.address)
                usage = await quotas.usage(ref)
                event(LogEvent.QUOTA_WARNED, account=ref.address, level=level)
                await self.deliver(quota_warning(ref.address, level, limits, usage),
                                   [ref], quota=False)
                quotas.forget(ref)  # the warning is stored too
            except LetterlockError as exc:  # a warning is not worth failing delivery
                log.warning("quota warning for %s not sent: %s", ref.address, exc)

    async def deliver_junk(self, raw: bytes, recipients: Sequence[AccountRef],
                           ) -> list[DeliveryResult]:
        """:meth:`deliver` into each recipient's Junk mailbox (the one marked \\Junk,
        made where missing) instead of INBOX: mail the spam filter or a DMARC
        quarantine policy set aside. An owner who chose so (filters/junk_filing.py)
        gets it in INBOX with the $Junk keyword instead."""
        by_name: dict[tuple[str, tuple[str, ...]], list[AccountRef]] = {}
        for ref in recipients:
            flags: tuple[str, ...] = ()
            try:
                if self.filters is not None and await self.filters.junk_in_inbox(ref):
                    name, flags = "INBOX", (JUNK_KEYWORD,)
                else:
                    name = await self._mailboxes.junk_mailbox(ref)
            except LetterlockError as exc:  # no Junk to be had: INBOX rather than lose it
                log.warning("%s: junk kept in INBOX: %s", ref.address, exc)
                name = "INBOX"
            by_name.setdefault((name, flags), []).append(ref)
        results = [r for (name, flags), refs in by_name.items()
                   for r in await self.deliver(raw, refs, mailbox=name, flags=flags)]
        order = {ref.address: i for i, ref in enumerate(recipients)}
        return sorted(results, key=lambda r: order[r.address])

    async def deliver_batch(self, ref: AccountRef, mailbox_id: int,
                            messages: Sequence[tuple[bytes, frozenset[str], datetime | None]],
                            ) -> int:
        """Many messages for one account and mailbox (``mail import``): sealed as
        every delivery is, stored in one group commit. Returns how many were stored;
        raises on failure (nothing of the batch is then visible)."""
        items = [await self._mailboxes.seal_message(ref, await _for_custody(ref, raw),
                                                    mailbox_id,
                                                    canonical_flags(sorted(flags)), when)
                 for raw, flags, when in messages]
        return len(await self._mailboxes.append_sealed(ref, items))


def _log_resolved(rcpt: str, via: str, refs: Sequence[AccountRef]) -> None:
    event(LogEvent.ADDRESS_RESOLVED, rcpt=rcpt, via=via, targets=len(refs),
          regions=",".join(sorted({r.region for r in refs})),
          account=refs[0].address if len(refs) == 1 else None)


def _log_result(result: DeliveryResult, region: str) -> None:
    if result.ok:
        event(LogEvent.MESSAGE_STORED, rcpt=result.address, region=region)
    else:
        event(LogEvent.MESSAGE_NOT_STORED, rcpt=result.address, region=region,
              reason=result.error[:120])


E2E_INLINE_BYTES = 256 * 1024
"""Messages up to this size are encrypted for end-to-end accounts on the event loop;
larger ones in a thread."""


async def _for_custody(ref: AccountRef, raw: bytes) -> bytes:
    """What is stored for ``ref``: ``raw`` itself, or for an account in end-to-end
    custody a PGP/MIME message encrypted to the owner's own OpenPGP key.

    If that key can no longer be encrypted to (it expired since it was given), the
    message is kept rather than refused: stored sealed only, as for any account, with
    a header field telling the owner why, so that mail is not lost to a stale key."""
    record = ref.record
    if record.custody != "e2e":
        return raw
    try:
        if len(raw) <= E2E_INLINE_BYTES:
            return openpgp.encrypt_message(raw, record.openpgp_cert)
        return await asyncio.to_thread(openpgp.encrypt_message, raw, record.openpgp_cert)
    except InvalidInput as exc:
        log.warning("%s: end-to-end encryption failed, stored sealed only: %s",
                    ref.address, exc)
        reason = str(exc).encode("ascii", "replace").replace(b"\r", b" ").replace(b"\n", b" ")
        return b"X-Letterlock-E2E: not encrypted to your OpenPGP key: " + reason[:300] \
            + b"\r\n" + raw
