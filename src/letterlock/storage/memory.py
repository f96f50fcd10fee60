"""In-memory reference implementations of the storage contracts.

Used by fast tests and as the executable statement of what the contracts mean; the
durable implementations are tested against the same suite.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime

from letterlock.errors import AlreadyExists, UnknownAccount, UnknownMailbox, UnknownMessage
from letterlock.storage.models import (
    AccountRecord,
    Appended,
    Changes,
    DigestPack,
    Domain,
    Expunged,
    FlagChange,
    MailboxIndex,
    MailboxRecord,
    MessageRecord,
    NewMessage,
    Region,
    TextPosting,
    apply_flag_mode,
    runs_of,
)


class MemoryControlStore:
    def __init__(self) -> None:
        self._regions: dict[str, Region] = {}
        self._domains: dict[str, Domain] = {}
        self._directory: dict[str, str] = {}
        self._settings: dict[str, str] = {}

    async def add_region(self, region: Region) -> None:
        if region.id in self._regions:
            raise AlreadyExists(f"region {region.id} exists")
        self._regions[region.id] = region

    async def list_regions(self) -> list[Region]:
        return sorted(self._regions.values(), key=lambda r: r.id)

    async def add_domain(self, name: str) -> Domain:
        if name in self._domains:
            raise AlreadyExists(f"domain {name} exists")
        domain = Domain(name, datetime.now(UTC))
        self._domains[name] = domain
        return domain

    async def list_domains(self) -> list[Domain]:
        return sorted(self._domains.values(), key=lambda d: d.name)

    async def assign(self, address: str, region_id: str) -> None:
        if address in self._directory:
            raise AlreadyExists(f"{address} exists")
        self._directory[address] = region_id

    async def reassign(self, address: str, region_id: str) -> None:
        if address not in self._directory:
            raise UnknownAccount(address)
        self._directory[address] = region_id

    async def unassign(self, address: str) -> None:
        if self._directory.pop(address, None) is None:
            raise UnknownAccount(address)

    async def lookup(self, address: str) -> str | None:
        return self._directory.get(address)

    async def list_assignments(self) -> list[tuple[str, str]]:
        return sorted(self._directory.items())

    async def get_setting(self, key: str) -> str | None:
        return self._settings.get(key)

    async def set_setting(self, key: str, value: str) -> None:
        self._settings[key] = value

    async def close(self) -> None:
        pass


class MemoryBlobStore:
    def __init__(self) -> None:
        self._blobs: dict[str, bytes] = {}

    async def put_many(self, datas: Sequence[bytes]) -> list[str]:
        ids = []
        for data in datas:
            blob_id = uuid.uuid4().hex
            self._blobs[blob_id] = bytes(data)
            ids.append(blob_id)
        return ids

    async def get(self, blob_id: str) -> bytes:
        try:
            return self._blobs[blob_id]
        except KeyError:
            raise UnknownMessage(f"blob {blob_id} not found") from None

    async def get_many(self, blob_ids: Sequence[str]) -> dict[str, bytes]:
        return {blob_id: await self.get(blob_id) for blob_id in blob_ids}

    async def delete_many(self, blob_ids: Sequence[str]) -> None:
        for blob_id in blob_ids:
            self._blobs.pop(blob_id, None)

    async def list_ids(self) -> list[str]:
        return sorted(self._blobs)

    async def close(self) -> None:
        pass


def _is_child(name: str, parent: str) -> bool:
    return name == parent or name.startswith(parent + "/")


def _light(records: list[MessageRecord], with_summary: bool) -> list[MessageRecord]:
    return records if with_summary else [replace(m, summary=b"") for m in records]


class MemoryCellStore:
    def __init__(self) -> None:
        self._accounts: dict[str, AccountRecord] = {}
        self._mailboxes: dict[int, MailboxRecord] = {}
        self._messages: dict[int, dict[int, MessageRecord]] = {}
        self._vanished: dict[int, list[tuple[int, int]]] = {}
        self._vanished_flags: dict[tuple[int, int], frozenset[str]] = {}
        self._packs: dict[int, dict[int, DigestPack]] = {}
        self._text_packs: dict[int, dict[int, DigestPack]] = {}
        self._postings: dict[int, dict[int, TextPosting]] = {}
        self._recent: dict[int, int] = {}
        """mailbox id -> first uid -> pack."""
        """(mailbox id, uid) -> flags the message had when it was expunged."""
        self._subscriptions: dict[str, set[str]] = {}
        """account id -> subscribed names (mailboxes or not)."""
        self._ids = itertools.count(1)
        self._last_validity = 0

    def _next_validity(self) -> int:
        self._last_validity = max(self._last_validity + 1, int(time.time()))
        return self._last_validity

    async def create_account(self, account: AccountRecord) -> None:
        if account.address in self._accounts:
            raise AlreadyExists(f"{account.address} exists")
        self._accounts[account.address] = account

    async def get_account(self, address: str) -> AccountRecord | None:
        return self._accounts.get(address)

    async def list_accounts(self) -> list[AccountRecord]:
        return sorted(self._accounts.values(), key=lambda a: a.address)

    async def update_account_keys(self, address: str, wrapped_by_password: bytes,
                                  wrapped_by_recovery: bytes) -> None:
        account = self._accounts.get(address)
        if account is None:
            raise UnknownAccount(address)
        self._accounts[address] = replace(account, wrapped_by_password=wrapped_by_password,
                                          wrapped_by_recovery=wrapped_by_recovery)

    async def set_custody(self, address: str, custody: str, openpgp_cert: bytes) -> None:
        account = self._accounts.get(address)
        if account is None:
            raise UnknownAccount(address)
        self._accounts[address] = replace(account, custody=custody,
                                          openpgp_cert=openpgp_cert)

    async def delete_account(self, address: str) -> list[str]:
        account = self._accounts.pop(address, None)
        if account is None:
            raise UnknownAccount(address)
        blobs: list[str] = []
        for box in [b for b in self._mailboxes.values() if b.account_id == account.id]:
            blobs += [m.blob_id for m in self._messages.pop(box.id).values()]
            del self._mailboxes[box.id]
            self._vanished.pop(box.id, None)
            self._packs.pop(box.id, None)
            self._text_packs.pop(box.id, None)
            self._postings.pop(box.id, None)
        self._subscriptions.pop(account.id, None)
        return sorted({b for b in blobs if not self._referenced(b)})

    def _referenced(self, blob_id: str) -> bool:
        return any(m.blob_id == blob_id for msgs in self._messages.values()
                   for m in msgs.values())

    def _box(self, account_id: str, name: str) -> MailboxRecord:
        for box in self._mailboxes.values():
            if box.account_id == account_id and box.name == name:
                return self._with_count(box)
        raise UnknownMailbox(name)

    def _with_count(self, box: MailboxRecord) -> MailboxRecord:
        return replace(box, messages=len(self._messages[box.id]),
                       subscribed=box.name in self._subscriptions.get(box.account_id, ()))

    async def create_mailbox(self, account_id: str, name: str, special_use: str | None,
                             subscribed: bool) -> MailboxRecord:
        if any(b.account_id == account_id and b.name == name
               for b in self._mailboxes.values()):
            raise AlreadyExists(f"mailbox {name} exists")
        box = MailboxRecord(next(self._ids), account_id, name, self._next_validity(), 1, 1,
                            special_use, False, 0)
        self._mailboxes[box.id] = box
        self._messages[box.id] = {}
        self._vanished[box.id] = []
        if subscribed:
            self._subscriptions.setdefault(account_id, set()).add(name)
        return self._with_count(box)

    async def list_mailboxes(self, account_id: str) -> list[MailboxRecord]:
        return sorted((self._with_count(b) for b in self._mailboxes.values()
                       if b.account_id == account_id), key=lambda b: b.name)

    async def get_mailbox(self, account_id: str, name: str) -> MailboxRecord:
        return self._box(account_id, name)

    async def get_mailbox_by_id(self, mailbox_id: int) -> MailboxRecord:
        box = self._mailboxes.get(mailbox_id)
        if box is None:
            raise UnknownMailbox(str(mailbox_id))
        return self._with_count(box)

    async def rename_mailbox(self, account_id: str, old: str, new: str) -> None:
        self._box(account_id, old)
        moving = [b for b in self._mailboxes.values()
                  if b.account_id == account_id and _is_child(b.name, old)]
        targets = {new + b.name[len(old):] for b in moving}
        if any(b.account_id == account_id and b.name in targets and b not in moving
               for b in self._mailboxes.values()):
            raise AlreadyExists(f"mailbox {new} exists")
        subscribed = self._subscriptions.setdefault(account_id, set())
        for box in moving:
            target = new + box.name[len(old):]
            if box.name in subscribed:
                subscribed.add(target)
            self._mailboxes[box.id] = replace(box, name=target,
                                              uidvalidity=self._next_validity())

    async def delete_mailbox(self, account_id: str, name: str) -> list[str]:
        box = self._box(account_id, name)
        blobs = [m.blob_id for m in self._messages.pop(box.id).values()]
        del self._mailboxes[box.id]
        del self._vanished[box.id]
        self._packs.pop(box.id, None)
        self._text_packs.pop(box.id, None)
        self._postings.pop(box.id, None)
        return sorted({b for b in blobs if not self._referenced(b)})

    async def subscribe(self, account_id: str, name: str, on: bool) -> None:
        names = self._subscriptions.setdefault(account_id, set())
        if on:
            names.add(name)
        else:
            names.discard(name)

    async def list_subscriptions(self, account_id: str) -> list[str]:
        return sorted(self._subscriptions.get(account_id, ()))

    async def account_usage(self, account_id: str) -> tuple[int, int]:
        msgs = [m for box in self._mailboxes.values() if box.account_id == account_id
                for m in self._messages[box.id].values()]
        return len(msgs), sum({m.blob_id: m.size for m in msgs}.values())

    def _bump(self, mailbox_id: int) -> int:
        box = self._mailboxes[mailbox_id]
        modseq = box.highestmodseq + 1
        self._mailboxes[mailbox_id] = replace(box, highestmodseq=modseq)
        return modseq

    async def append_messages(self, messages: Sequence[NewMessage]) -> list[Appended]:
        for msg in messages:
            if msg.mailbox_id not in self._mailboxes:
                raise UnknownMailbox(str(msg.mailbox_id))
        out = []
        for msg in messages:
            box = self._mailboxes[msg.mailbox_id]
            modseq = self._bump(box.id)
            uid = box.uidnext
            self._mailboxes[box.id] = replace(self._mailboxes[box.id], uidnext=uid + 1)
            self._messages[box.id][uid] = MessageRecord(
                box.id, uid, msg.blob_id, msg.size, msg.internaldate, msg.flags, modseq,
                msg.summary)
            if msg.posting:
                self._postings.setdefault(box.id, {})[uid] = TextPosting(
                    box.id, uid, msg.posting_key, msg.posting)
            out.append(Appended(box.id, box.uidvalidity, uid, modseq))
        return out

    async def list_messages(self, mailbox_id: int, *,
                            with_summary: bool = True) -> list[MessageRecord]:
        await self.get_mailbox_by_id(mailbox_id)
        msgs = self._messages[mailbox_id]
        return _light([msgs[uid] for uid in sorted(msgs)], with_summary)

    async def claim_recent(self, mailbox_id: int, up_to: int) -> int:
        await self.get_mailbox_by_id(mailbox_id)
        before = self._recent.get(mailbox_id, 0)
        self._recent[mailbox_id] = max(before, up_to)
        return before

    async def recent_mark(self, mailbox_id: int) -> int:
        await self.get_mailbox_by_id(mailbox_id)
        return self._recent.get(mailbox_id, 0)

    async def mailbox_index(self, mailbox_id: int) -> MailboxIndex:
        box = await self.get_mailbox_by_id(mailbox_id)
        msgs = [self._messages[mailbox_id][u] for u in sorted(self._messages[mailbox_id])]
        unseen = [m.uid for m in msgs if "\\Seen" not in m.flags]
        return MailboxIndex(
            runs_of(m.uid for m in msgs),
            frozenset(f for m in msgs for f in m.flags if not f.startswith("\\")),
            max([box.highestmodseq, *(m.modseq for m in msgs)]), len(unseen),
            unseen[0] if unseen else None,
            sum(1 for m in msgs if "\\Deleted" in m.flags), sum(m.size for m in msgs))

    async def get_messages(self, mailbox_id: int, uids: Sequence[int], *,
                           with_summary: bool = True) -> list[MessageRecord]:
        await self.get_mailbox_by_id(mailbox_id)
        msgs = self._messages[mailbox_id]
        return _light([msgs[uid] for uid in sorted(set(uids)) if uid in msgs], with_summary)

    async def store_flags(self, mailbox_id: int, uids: Sequence[int], mode: str,
                          flags: frozenset[str],
                          unchanged_since: int | None = None) -> tuple[list[FlagChange],
                                                                       list[int]]:
        changes: list[FlagChange] = []
        refused: list[int] = []
        for msg in await self.get_messages(mailbox_id, uids):
            if unchanged_since is not None and msg.modseq > unchanged_since:
                refused.append(msg.uid)
                continue
            new = apply_flag_mode(msg.flags, mode, flags)
            if new == msg.flags:
                continue
            modseq = self._bump(mailbox_id)
            self._messages[mailbox_id][msg.uid] = replace(msg, flags=new, modseq=modseq)
            changes.append(FlagChange(msg.uid, new, modseq))
        return changes, refused

    async def expunge(self, mailbox_id: int, uids: Sequence[int]) -> list[Expunged]:
        out = []
        for msg in await self.get_messages(mailbox_id, uids):
            del self._messages[mailbox_id][msg.uid]
            self._drop_packs_holding(mailbox_id, msg.uid)
            self._postings.get(mailbox_id, {}).pop(msg.uid, None)
            modseq = self._bump(mailbox_id)
            self._vanished[mailbox_id].append((msg.uid, modseq))
            self._vanished_flags[(mailbox_id, msg.uid)] = msg.flags
            orphan = None if self._referenced(msg.blob_id) else msg.blob_id
            out.append(Expunged(msg.uid, modseq, orphan))
        return out

    async def expunged_flags(self, mailbox_id: int,
                             uids: Sequence[int]) -> dict[int, FlagChange]:
        await self.get_mailbox_by_id(mailbox_id)
        wanted = set(uids)
        return {uid: FlagChange(uid, self._vanished_flags.get((mailbox_id, uid), frozenset()),
                                modseq)
                for uid, modseq in self._vanished[mailbox_id] if uid in wanted}

    async def copy_messages(self, src_mailbox_id: int, uids: Sequence[int],
                            dst_mailbox_id: int) -> list[tuple[int, Appended]]:
        await self.get_mailbox_by_id(dst_mailbox_id)
        src = await self.get_messages(src_mailbox_id, uids)
        appended = await self.append_messages([
            NewMessage(dst_mailbox_id, m.blob_id, m.size, m.internaldate, m.flags, m.summary)
            for m in src])
        return [(m.uid, a) for m, a in zip(src, appended, strict=True)]

    async def changes_since(self, mailbox_id: int, modseq: int, *,
                            with_summary: bool = True) -> Changes:
        box = await self.get_mailbox_by_id(mailbox_id)
        changed = tuple(m for m in await self.list_messages(mailbox_id,
                                                            with_summary=with_summary)
                        if m.modseq > modseq)
        vanished = tuple(sorted(uid for uid, ms in self._vanished[mailbox_id] if ms > modseq))
        return Changes(box.highestmodseq, changed, vanished)

    def _drop_packs_holding(self, mailbox_id: int, uid: int) -> None:
        for kept in (self._packs, self._text_packs):
            packs = kept.get(mailbox_id, {})
            for first in [f for f, p in packs.items() if p.first_uid <= uid <= p.last_uid]:
                del packs[first]

    async def get_digest_packs(self, mailbox_id: int, first_uid: int,
                               last_uid: int) -> list[DigestPack]:
        return await self._get_packs(self._packs, mailbox_id, first_uid, last_uid)

    async def put_digest_pack(self, pack: DigestPack) -> bool:
        return await self._put_pack(self._packs, pack)

    async def get_text_packs(self, mailbox_id: int, first_uid: int,
                             last_uid: int) -> list[DigestPack]:
        return await self._get_packs(self._text_packs, mailbox_id, first_uid, last_uid)

    async def put_text_pack(self, pack: DigestPack) -> bool:
        return await self._put_pack(self._text_packs, pack)

    async def _get_packs(self, kept: dict[int, dict[int, DigestPack]], mailbox_id: int,
                         first_uid: int, last_uid: int) -> list[DigestPack]:
        await self.get_mailbox_by_id(mailbox_id)
        packs = kept.get(mailbox_id, {})
        return [packs[f] for f in sorted(packs)
                if packs[f].first_uid <= last_uid and packs[f].last_uid >= first_uid]

    async def _put_pack(self, kept: dict[int, dict[int, DigestPack]],
                        pack: DigestPack) -> bool:
        await self.get_mailbox_by_id(pack.mailbox_id)
        msgs = self._messages[pack.mailbox_id]
        present = sum(1 for uid in msgs if pack.first_uid <= uid <= pack.last_uid)
        packs = kept.setdefault(pack.mailbox_id, {})
        old = packs.get(pack.first_uid)
        if present != pack.count or (old is not None and old.last_uid > pack.last_uid):
            return False
        packs[pack.first_uid] = pack
        return True

    async def get_text_postings(self, mailbox_id: int, first_uid: int,
                                last_uid: int) -> list[TextPosting]:
        await self.get_mailbox_by_id(mailbox_id)
        kept = self._postings.get(mailbox_id, {})
        return [kept[u] for u in sorted(kept) if first_uid <= u <= last_uid]

    async def delete_text_postings(self, mailbox_id: int, uids: Sequence[int]) -> None:
        kept = self._postings.get(mailbox_id, {})
        for uid in uids:
            kept.pop(uid, None)

    async def close(self) -> None:
        pass

