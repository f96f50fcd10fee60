"""Addresses beyond an account's own: aliases, groups, catch-alls, domain aliases,
sub-addressing (RFC 5233) and send-as grants.

Region pinning stays whole. What links an address to an account is stored in that
account's region (its :class:`AddressBook`); the control side (the
:class:`AddressDirectory`) knows only that an address exists and which regions hold
its targets, as the directory knows only which region an account lives in. A group
with members in two regions has a row in each region's book, each naming that
region's members only, so delivery seals one copy per member into the member's own
region and no region learns of another's members.

Delivery asks :meth:`AddressService.targets` (see DeliveryService.classify for the
order in which account, alias, sub-address, role mailbox and catch-all are tried);
submission asks :meth:`AddressService.owns` (RFC 6409 4.1: only the authenticated
account's own addresses, or those an operator granted, may be the sender).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from letterlock.audit.events import AuditEvent, AuditSink, EventType
from letterlock.errors import (
    AlreadyExists,
    InvalidAddress,
    InvalidInput,
    NotFound,
    UnknownAccount,
    UnknownDomain,
)
from letterlock.services.accounts.accounts import AccountRef, AccountService
from letterlock.services.accounts.addresses import (
    domain_of,
    normalise_address,
    normalise_domain,
)
from letterlock.storage.address_contracts import AddressBook, AddressDirectory, AddressKind
from letterlock.storage.contracts import ControlStore

__all__ = ["AddressInfo", "AddressKind", "AddressService", "catch_all_key"]

def catch_all_key(domain: str) -> str:
    """How a domain's catch-all is named in the stores: ``@domain``."""
    return f"@{domain}"


@dataclass(frozen=True)
class AddressInfo:
    address: str
    """The alias or group address, or ``@domain`` for a catch-all."""
    kind: AddressKind
    targets: tuple[str, ...]
    """The accounts it leads to (every region's, read from each)."""


class AddressService:
    def __init__(self, directory: AddressDirectory, open_book: Callable[[str], AddressBook],
                 control: ControlStore, accounts: AccountService, audit: AuditSink, *,
                 separator: str = "+") -> None:
        self._directory = directory
        self._open_book = open_book
        self._books: dict[str, AddressBook] = {}
        self._control = control
        self._accounts = accounts
        self._audit = audit
        self.separator = separator
        """The sub-address separator (``smtp.subaddress_separator``); empty: off."""

    def book(self, region_id: str) -> AddressBook:
        """The region's address book (opened on first use)."""
        book = self._books.get(region_id)
        if book is None:
            book = self._books[region_id] = self._open_book(region_id)
        return book

    async def close(self) -> None:
        for book in self._books.values():
            await book.close()
        self._books.clear()
        await self._directory.close()

    # -- resolution (the delivery and submission paths) ------------------------------

    def base_address(self, address: str) -> str | None:
        """``user@d`` for ``user+tag@d`` (RFC 5233), or None when sub-addressing is
        off or the local part has no separator (or starts with it)."""
        if not self.separator:
            return None
        local, _, domain = address.rpartition("@")
        base, sep, _ = local.partition(self.separator)
        return f"{base}@{domain}" if sep and base else None

    async def domain_target(self, domain: str) -> str | None:
        """The hosted domain ``domain`` stands for, when it is a domain alias."""
        return await self._directory.domain_alias_target(domain)

    async def targets(self, address: str) -> list[str]:
        """The accounts an alias, group or catch-all (``@domain``) leads to, read
        from each region that holds some ([] when ``address`` is none of them)."""
        out: list[str] = []
        for region in await self._directory.routes(address):
            out += await self.book(region).targets(address)
        return out

    async def lookup(self, address: str) -> tuple[AddressKind, list[str]] | None:
        """What alias, group or catch-all ``address`` is and the accounts it leads to;
        None when it is none of them or leads nowhere (one indexed read then)."""
        accounts = await self.targets(address)
        if not accounts:
            return None
        kind = await self._directory.get_name(address)
        return None if kind is None else (kind, accounts)

    async def owns(self, ref: AccountRef, address: str) -> bool:
        """Whether the account may use ``address`` as its sender (MAIL FROM, From:,
        Sender:): its own address or an alias of it, either with a sub-address tag,
        in a hosted domain or a domain alias of one, or an address (or ``@domain``)
        an operator granted it. Groups and catch-alls are not owned by their members."""
        try:
            normal = normalise_address(address)
        except InvalidInput:
            return False
        if normal == ref.address:
            return True  # the common case, without a query
        local, _, domain = normal.rpartition("@")
        target = await self.domain_target(domain)
        if target is not None:
            normal, domain = f"{local}@{target}", target
        candidates = [normal]
        base = self.base_address(normal)
        if base is not None:
            candidates.append(base)
        for candidate in candidates:
            if candidate == ref.address:
                return True
            if await self._directory.get_name(candidate) is AddressKind.ALIAS \
                    and ref.address in await self.book(ref.region).targets(candidate):
                return True
        grants = await self.book(ref.region).grants(ref.address)
        return any(c in grants for c in candidates) or catch_all_key(domain) in grants

    # -- administration ----------------------------------------------------------------

    async def _hosted(self) -> set[str]:
        return {d.name for d in await self._control.list_domains()}

    async def _new_name(self, address: str) -> str:
        """``address`` normalised, checked to be free for an alias or group."""
        normal = normalise_address(address)
        domain = domain_of(normal)
        if domain not in await self._hosted():
            target = await self.domain_target(domain)
            if target is not None:
                raise InvalidAddress(f"{domain} is a domain alias of {target}: "
                                     f"add the address in {target}")
            raise UnknownDomain(f"domain {domain} is not hosted here")
        if await self._control.lookup(normal) is not None:
            raise AlreadyExists(f"{normal} is an account")
        return normal

    async def _account(self, address: str) -> AccountRef:
        return await self._accounts.resolve(address)

    async def _link(self, address: str, ref: AccountRef, kind: AddressKind) -> None:
        await self.book(ref.region).add_target(address, ref.address, kind)
        await self._directory.set_route(address, ref.region, True)

    async def _unlink(self, address: str, account: str, region: str) -> bool:
        book = self.book(region)
        removed = await book.remove_target(address, account)
        if not await book.targets(address):
            await self._directory.set_route(address, region, False)
        return removed

    async def _record(self, event_type: EventType, actor: str, account: str | None,
                      **details: str) -> None:
        await self._audit.record(AuditEvent(event_type, actor, datetime.now(UTC), account=account,
                                            details=tuple(details.items())))

    async def add_alias(self, alias: str, account: str, *, actor: str = "operator") -> str:
        """Make ``alias`` another address of ``account`` (it receives mail and may be
        used as sender). Returns the normalised alias. Raises AlreadyExists,
        UnknownAccount, UnknownDomain, InvalidAddress."""
        ref = await self._account(account)
        normal = await self._new_name(alias)
        await self._directory.add_name(normal, AddressKind.ALIAS)
        try:
            await self._link(normal, ref, AddressKind.ALIAS)
        except BaseException:
            await self._directory.remove_name(normal)
            raise
        await self._record(EventType.ADMIN_ADDRESS_ADDED, actor, ref.address,
                           address=normal, kind=str(AddressKind.ALIAS))
        return normal

    async def add_group(self, group: str, members: list[str] = [], *,  # noqa: B006
                        actor: str = "operator") -> str:
        """Create the group address ``group`` with ``members`` (more can be added).
        Raises as :meth:`add_alias`; nothing is created when a member is unknown."""
        refs = [await self._account(m) for m in members]
        normal = await self._new_name(group)
        await self._directory.add_name(normal, AddressKind.GROUP)
        await self._record(EventType.ADMIN_ADDRESS_ADDED, actor, None, address=normal,
                           kind=str(AddressKind.GROUP))
        for ref in refs:
            await self._add_member(normal, ref, actor)
        return normal

    async def _group(self, group: str) -> str:
        normal = normalise_address(group)
        if await self._directory.get_name(normal) is not AddressKind.GROUP:
            raise NotFound(f"no group {normal}")
        return normal

    async def _add_member(self, group: str, ref: AccountRef, actor: str) -> None:
        await self._link(group, ref, AddressKind.GROUP)
        await self._record(EventType.ADMIN_ADDRESS_ADDED, actor, ref.address, address=group,
                           kind="group-member")

    async def add_member(self, group: str, account: str, *, actor: str = "operator") -> None:
        """Raises NotFound (no such group), UnknownAccount, AlreadyExists."""
        normal = await self._group(group)
        await self._add_member(normal, await self._account(account), actor)

    async def remove_member(self, group: str, account: str, *,
                            actor: str = "operator") -> None:
        normal = await self._group(group)
        ref = await self._account(account)
        if not await self._unlink(normal, ref.address, ref.region):
            raise NotFound(f"{ref.address} is not a member of {normal}")
        await self._record(EventType.ADMIN_ADDRESS_REMOVED, actor, ref.address,
                           address=normal, kind="group-member")

    async def kind_of(self, address: str) -> AddressKind | None:
        """What ``address`` (or ``@domain``) is, when it is an alias, group or
        catch-all."""
        try:
            return await self._directory.get_name(normalise_address(address))
        except InvalidInput:
            return None

    async def members(self, group: str) -> list[str]:
        return sorted(await self.targets(await self._group(group)))

    async def set_catch_all(self, domain: str, account: str, *,
                            actor: str = "operator") -> None:
        """Mail to any address of hosted ``domain`` that nothing else takes goes to
        ``account`` (replacing an earlier catch-all of the domain)."""
        name = normalise_domain(domain)
        if name not in await self._hosted():
            raise UnknownDomain(f"domain {name} is not hosted here")
        ref = await self._account(account)
        key = catch_all_key(name)
        if await self._directory.get_name(key) is not None:
            await self.remove(key, actor=actor)
        await self._directory.add_name(key, AddressKind.CATCH_ALL)
        await self._link(key, ref, AddressKind.CATCH_ALL)
        await self._record(EventType.ADMIN_ADDRESS_ADDED, actor, ref.address, address=key,
                           kind=str(AddressKind.CATCH_ALL))

    async def remove(self, address: str, *, actor: str = "operator") -> AddressKind:
        """Remove an alias, a group (with its memberships) or a catch-all (``@domain``).
        Raises NotFound."""
        key = (catch_all_key(normalise_domain(address[1:])) if address.startswith("@")
               else normalise_address(address))
        kind = await self._directory.get_name(key)
        if kind is None:
            raise NotFound(f"no alias, group or catch-all {key}")
        for region in await self._directory.routes(key):
            for account in await self.book(region).targets(key):
                await self.book(region).remove_target(key, account)
        await self._directory.remove_name(key)
        await self._record(EventType.ADMIN_ADDRESS_REMOVED, actor, None, address=key,
                           kind=str(kind))
        return kind

    async def entries(self, account: str | None = None) -> list[AddressInfo]:
        """Every alias, group and catch-all (only those leading to ``account``)."""
        out = []
        for address, kind in await self._directory.list_names():
            targets = tuple(sorted(await self.targets(address)))
            if account is None or normalise_address(account) in targets:
                out.append(AddressInfo(address, kind, targets))
        return out

    async def add_domain_alias(self, alias: str, target: str, *,
                               actor: str = "operator") -> None:
        """Mail to any address of domain ``alias`` is handled as the same local part
        of hosted domain ``target``."""
        name, goal = normalise_domain(alias), normalise_domain(target)
        hosted = await self._hosted()
        if goal not in hosted:
            raise UnknownDomain(f"domain {goal} is not hosted here")
        if name in hosted:
            raise AlreadyExists(f"{name} is a hosted domain")
        await self._directory.add_domain_alias(name, goal)
        await self._record(EventType.ADMIN_ADDRESS_ADDED, actor, None,
                           address=catch_all_key(name), kind="domain-alias", target=goal)

    async def remove_domain_alias(self, alias: str, *, actor: str = "operator") -> None:
        name = normalise_domain(alias)
        await self._directory.remove_domain_alias(name)
        await self._record(EventType.ADMIN_ADDRESS_REMOVED, actor, None,
                           address=catch_all_key(name), kind="domain-alias")

    async def list_domain_aliases(self) -> list[tuple[str, str]]:
        return await self._directory.list_domain_aliases()

    async def grant_send_as(self, account: str, address: str, *, on: bool = True,
                            actor: str = "operator") -> bool:
        """Let ``account`` send as ``address`` (an address, or ``@domain`` for every
        address of a domain), or with ``on`` False stop it. Returns whether anything
        changed."""
        ref = await self._account(account)
        what = (catch_all_key(normalise_domain(address[1:])) if address.startswith("@")
                else normalise_address(address))
        changed = await self.book(ref.region).set_grant(ref.address, what, on)
        if changed:
            await self._record(EventType.ADMIN_SEND_AS_GRANTED if on else
                               EventType.ADMIN_SEND_AS_REVOKED, actor, ref.address,
                               address=what)
        return changed

    async def grants(self, account: str) -> list[str]:
        ref = await self._account(account)
        return await self.book(ref.region).grants(ref.address)

    # -- account lifecycle (hooks called by AccountService) ------------------------------

    async def address_taken(self, address: str) -> bool:
        """Whether ``address`` is an alias or group (an account may not take it)."""
        return await self._directory.get_name(address) is not None

    async def account_deleted(self, address: str, region: str) -> None:
        """Drop the account's rows: its aliases and catch-alls go with it (they would
        lead nowhere); it leaves its groups; its grants end."""
        try:
            rows = await self.book(region).remove_account(address)
        except UnknownAccount:
            return
        for name, kind in rows:
            if kind is AddressKind.GROUP:
                if not await self.book(region).targets(name):
                    await self._directory.set_route(name, region, False)
            else:
                with contextlib.suppress(NotFound):
                    await self.remove(name, actor="account-deleted")

    async def account_moved(self, address: str, src: str, dst: str) -> None:
        """Move the account's rows to its new region's book, so nothing about it is
        left in the old region."""
        grants = await self.book(src).grants(address)
        rows = await self.book(src).remove_account(address)
        for name, kind in rows:
            with contextlib.suppress(AlreadyExists):
                await self.book(dst).add_target(name, address, kind)
            await self._directory.set_route(name, dst, True)
            if not await self.book(src).targets(name):
                await self._directory.set_route(name, src, False)
        for what in grants:
            await self.book(dst).set_grant(address, what, True)
