"""The mailbox service: every front-end's way to mailboxes and messages.

Reads and changes need a :class:`Session` (the owner, key unlocked); appends need only
an :class:`AccountRef` (the public key), because sealing needs nothing secret.
Semantics follow RFC 9051 and RFC 7162; storage guarantees atomicity and durability.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime

from letterlock.crypto import seal
from letterlock.errors import (
    AlreadyExists,
    CryptoError,
    InvalidInput,
    UnknownMailbox,
)
from letterlock.mime import summary as summaries
from letterlock.services.accounts.accounts import AccountRef, Session
from letterlock.services.accounts.quotas import QuotaService
from letterlock.services.cells import Cell, Cells
from letterlock.services.mail.digests import (
    DamagedPart,
    Digest,
    DigestReader,
    DigestService,
    Views,
    decode_summary,
    expect,
)
from letterlock.services.mail.filing import JUNK, Filing, FilingHook
from letterlock.services.mail.mailbox_folders import (
    MailboxFolders,
    check_mailbox_name,
)
from letterlock.services.mail.notify import ChangeHub
from letterlock.services.mail.sealing import SealPool, seal_with_summary
from letterlock.services.mail.text_index import TextIndex, TextReader
from letterlock.services.mail.text_postings import HeaderView, PostingSealer
from letterlock.services.operations.log_events import LogEvent, enabled, event
from letterlock.storage.models import (
    Appended,
    Changes,
    Expunged,
    FlagChange,
    MailboxIndex,
    MailboxRecord,
    MessageRecord,
    NewMessage,
)

SYSTEM_FLAGS = {f.lower(): f for f in ("\\Seen", "\\Answered", "\\Flagged", "\\Deleted",
                                       "\\Draft")}

INBOX_CACHE_TTL_S = 10.0
INBOX_CACHE_MAX = 10_000
OWNERS_MAX = 100_000
INDEXES_MAX = 1_000
"""Mailbox indexes (UID runs and counts: small) a process keeps for SELECT and STATUS."""

INLINE_SEAL_BYTES = 16 * 1024
"""Without a helper process, messages up to this size are sealed on the calling
thread (see seal_message)."""

RetentionHook = Callable[[AccountRef, Sequence[str]], Awaitable[set[str]]]
"""``hook(account, blob_ids)`` returns the ids it keeps (e.g. under a legal hold)."""


def canonical_flags(flags: Sequence[str]) -> frozenset[str]:
    """System flags in their canonical spelling; keywords as given.
    Raises InvalidInput for ``\\Recent`` or an unknown system flag."""
    out = set()
    for flag in flags:
        if flag.startswith("\\"):
            canonical = SYSTEM_FLAGS.get(flag.lower())
            if canonical is None:
                raise InvalidInput(f"flag {flag} cannot be set")
            out.add(canonical)
        elif flag:
            out.add(flag)
    return frozenset(out)


class MailboxService(MailboxFolders):
    def __init__(self, cells: Cells, hub: ChangeHub, chunk_bytes: int = seal.DEFAULT_CHUNK,
                 sealer: SealPool | None = None, digest_views: Views | None = None,
                 hot_digest_bytes: int = 64 * 1024 * 1024,
                 quotas: QuotaService | None = None) -> None:
        self._cells = cells
        self.quotas = quotas
        """Checked before an APPEND or COPY stores anything (None: no quotas)."""
        self.digests = DigestService(cells, digest_views, hot_bytes=hot_digest_bytes)
        """Sealed per-message digests for reading (services/mail/digests.py); packs are
        written only when the front-end's ``digest_views`` are given."""
        self.text_index = TextIndex(cells, digest_views.version if digest_views else b"",
                                    header_view=digest_views.search if digest_views else None)
        """Sealed searchable texts for SEARCH BODY/TEXT (services/mail/text_index.py)."""
        self.bodies_opened = 0
        """Message bodies opened by readers since start (tests: what an index spared)."""
        self.postings = PostingSealer()
        """Seals new messages' text postings (services/mail/text_postings.py)."""
        self._view: HeaderView | None = None
        """The header view postings carry, if made at delivery: not by default (it
        cost ~25% more CPU per delivered message; readers make it, from the posted
        header, once per message when they merge postings)."""
        self.hub = hub
        self._chunk = chunk_bytes
        self._sealer = sealer
        self._reapers: list[RetentionHook] = []
        self._filing_hooks: list[FilingHook] = []
        self._seal_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="seal")
        self._owners: dict[tuple[str, int], str] = {}
        self._recent_marks: dict[tuple[str, int], int] = {}
        self._indexes: dict[tuple[str, int], MailboxIndex] = {}
        """(region, mailbox id) -> the mailbox's index as last read (SELECT, STATUS)."""
        """(region, mailbox id) -> \\Recent mark last seen in the store."""
        """(region, mailbox id) -> owning account id, for mailboxes already checked."""
        self._inbox_ids: dict[tuple[str, str], tuple[int, float]] = {}
        """(region, account id) -> (INBOX mailbox id, monotonic expiry)."""

    @property
    def sealer(self) -> SealPool | None:
        """The sealing helper processes, if any (see services/mail/sealing.py)."""
        return self._sealer

    def close(self) -> None:
        self._seal_pool.shutdown(wait=True)

    def _cell(self, ref: AccountRef) -> Cell:
        return self._cells.get(ref.region)

    # -- blobs no longer referenced ------------------------------------------------
    def add_retention_hook(self, hook: RetentionHook) -> None:
        """Register ``hook(account, blob_ids) -> awaitable[set of ids to keep]`` that may
        keep sealed data which would otherwise be deleted (legal holds)."""
        self._reapers.append(hook)

    def add_filing_hook(self, hook: FilingHook) -> None:
        """Register ``hook(filing)``, told of every copy, move and append by an owner
        once it is durable (see services/mail/filing.py)."""
        self._filing_hooks.append(hook)

    def _filed(self, filing: Filing) -> None:
        for hook in self._filing_hooks:
            hook(filing)

    async def junk_mailbox(self, ref: AccountRef) -> str:
        """The name of ``ref``'s Junk mailbox: the one marked \\Junk (RFC 6154), else
        the one named Junk, made (marked \\Junk) where there is none."""
        store = self._cell(ref).store
        boxes = await store.list_mailboxes(ref.record.id)
        for box in boxes:
            if box.special_use == "\\Junk":
                return box.name
        for box in boxes:
            if box.name.lower() == JUNK.lower():
                return box.name
        with contextlib.suppress(AlreadyExists):  # made by a delivery at the same time
            await store.create_mailbox(ref.record.id, JUNK, "\\Junk", True)
        return JUNK

    async def _release_blobs(self, ref: AccountRef, blob_ids: Sequence[str]) -> None:
        keep: set[str] = set()
        for hook in self._reapers:
            kept = await hook(ref, blob_ids)
            keep |= set(kept)
        doomed = [b for b in blob_ids if b not in keep]
        if doomed:
            await self._cell(ref).blobs.delete_many(doomed)

    # -- appends ------------------------------------------------------------------
    async def seal_message(self, ref: AccountRef, raw: bytes, mailbox_id: int,
                           flags: frozenset[str] = frozenset(),
                           internaldate: datetime | None = None) -> tuple[NewMessage, bytes]:
        """Seal a message and its summary to the account key (CPU only, no I/O).

        With sealing helpers (services/mail/sealing.py) the work happens in another
        process. Without one, messages up to INLINE_SEAL_BYTES are sealed right
        here: that takes a few hundred microseconds, and a trip through the thread
        pool (waking a thread, handing the interpreter lock back and forth) cost more
        CPU than it saved (bench/smtp.py, 1 KiB: about 15% less server CPU per
        message). Larger ones go to the sealing threads so the event loop never
        stalls for long."""
        record = ref.record
        started = time.perf_counter()
        pending = (None if self._sealer is None
                   else self._sealer.seal(raw, record.public_key, record.key_id, record.id))
        if pending is not None:
            blob, summary, posted = await pending
        elif len(raw) <= INLINE_SEAL_BYTES:
            blob, summary, posted = seal_with_summary(raw, record.public_key, record.key_id,
                                                      self._chunk, record.id, self._view)
        else:
            blob, summary, posted = await asyncio.get_running_loop().run_in_executor(
                self._seal_pool, seal_with_summary, raw, record.public_key, record.key_id,
                self._chunk, record.id, self._view)
        event(LogEvent.SEALED, seconds=time.perf_counter() - started, size=len(raw))
        key, posting = self.postings.seal_for(record.id, record.public_key, mailbox_id,
                                              summary, posted)
        msg = NewMessage(mailbox_id, "", len(raw),
                         internaldate or datetime.now(UTC).replace(microsecond=0),
                         flags, summary, posting, key)
        return msg, blob

    async def mailbox_for_delivery(self, ref: AccountRef, name: str) -> int:
        """The id of mailbox ``name`` of ``ref`` (INBOX if it does not exist).

        INBOX ids are remembered for a short while: INBOX can be neither deleted nor
        renamed away, and mailbox ids are never reused, so a remembered id is either
        right or names no mailbox at all (the append then fails, and the caller
        calls :meth:`forget_delivery_mailbox`)."""
        name = check_mailbox_name(name)
        key = (ref.region, ref.record.id)
        now = time.monotonic()
        if name == "INBOX":
            hit = self._inbox_ids.get(key)
            if hit is not None and hit[1] > now:
                return hit[0]
        store = self._cell(ref).store
        try:
            box_id = (await store.get_mailbox(ref.record.id, name)).id
        except UnknownMailbox:
            box_id = (await store.get_mailbox(ref.record.id, "INBOX")).id
        if name == "INBOX":
            if len(self._inbox_ids) >= INBOX_CACHE_MAX:
                self._inbox_ids.clear()
            self._inbox_ids[key] = (box_id, now + INBOX_CACHE_TTL_S)
        return box_id

    def forget_delivery_mailbox(self, ref: AccountRef) -> None:
        """Drop the remembered INBOX id of ``ref`` (an append to it failed)."""
        self._inbox_ids.pop((ref.region, ref.record.id), None)

    async def append(self, ref: AccountRef, mailbox: str, raw: bytes,
                     flags: Sequence[str] = (), internaldate: datetime | None = None,
                     ) -> Appended:
        """Seal and store one message; returns once it is durable."""
        [appended] = await self.append_many(ref, mailbox, [(raw, flags, internaldate)])
        return appended

    async def append_many(self, ref: AccountRef, mailbox: str,
                          messages: Sequence[tuple[bytes, Sequence[str], datetime | None]],
                          ) -> list[Appended]:
        """Seal and store messages in one group commit (all or none), UIDs ascending
        in the order given; returns once they are durable."""
        name = check_mailbox_name(mailbox)
        if self.quotas is not None:
            await self.quotas.check(ref, [len(raw) for raw, _, _ in messages])
        if name == "INBOX":
            # INBOX always exists: its id is remembered as for deliveries.
            box_id = await self.mailbox_for_delivery(ref, name)
        else:
            box_id = (await self._cell(ref).store.get_mailbox(ref.record.id, name)).id
        items = [(ref, await self.seal_message(ref, raw, box_id, canonical_flags(flags), when))
                 for raw, flags, when in messages]
        if name == "INBOX":
            appended = await self.append_delivered(items, name)
        else:
            appended = await self.append_sealed(ref, [item for _, item in items])
        if self._filing_hooks and appended:
            target = await self._cell(ref).store.get_mailbox(ref.record.id, name)
            self._filed(Filing(ref, None, None, target, tuple(a.uid for a in appended),
                               tuple(raw for raw, _, _ in messages)))
        return appended

    async def append_delivered(self, items: Sequence[tuple[AccountRef, tuple[NewMessage, bytes]]],
                               mailbox: str) -> list[Appended]:
        """Store copies sealed for several accounts of one region, addressed to the
        mailbox ids :meth:`mailbox_for_delivery` gave for ``mailbox``, in one group
        commit. A remembered id that no longer exists (the account was deleted, or
        moved away and back, by another process) is forgotten and looked up once more."""
        try:
            return await self.append_sealed(items[0][0], [i for _, i in items])
        except UnknownMailbox:
            pass
        fresh = []
        for ref, (msg, blob) in items:
            self.forget_delivery_mailbox(ref)
            box = await self.mailbox_for_delivery(ref, mailbox)
            # (a posting is bound to its mailbox: one for another is left out)
            fresh.append((replace(msg, mailbox_id=box, posting=b"", posting_key=b""), blob))
        return await self.append_sealed(items[0][0], fresh)

    async def append_sealed(self, ref: AccountRef, items: Sequence[tuple[NewMessage, bytes]],
                            ) -> list[Appended]:
        """Store messages sealed by :meth:`seal_message` in one group commit."""
        cell = self._cell(ref)
        result = await cell.committer.append([m for m, _ in items], [b for _, b in items])
        self.hub.notify_many(a.mailbox_id for a in result)
        return result

    # -- reading ------------------------------------------------------------------
    async def messages(self, session: Session, mailbox_id: int, *,
                       with_summary: bool = True) -> list[MessageRecord]:
        """Every message of the mailbox. ``with_summary`` False leaves the sealed
        summaries out (``summary`` is b""): the light index for opening a mailbox."""
        await self._check_owner(session, mailbox_id)
        return await self._cell(session.ref).store.list_messages(
            mailbox_id, with_summary=with_summary)

    async def claim_recent(self, session: Session, mailbox_id: int, top: int, *,
                           take: bool = True) -> int:
        """IMAP4rev1 \\Recent: claim the messages up to UID ``top`` that no session has
        claimed (``take`` False only looks: EXAMINE, STATUS). Returns the mark before:
        the messages with UIDs above it, up to ``top``, are recent to this session
        alone. The store keeps the claim, so it holds across server processes and
        restarts."""
        if top <= 0:
            return 0
        await self._check_owner(session, mailbox_id)
        key = (session.ref.region, mailbox_id)
        known = self._recent_marks.get(key, 0)
        if known >= top:
            return top  # this process saw them claimed already (marks only rise)
        store = self._cell(session.ref).store
        mark = (await store.claim_recent(mailbox_id, top) if take
                else await store.recent_mark(mailbox_id))
        if len(self._recent_marks) >= OWNERS_MAX:
            self._recent_marks.clear()
        self._recent_marks[key] = max(mark, top) if take else mark
        return mark

    async def mailbox_index(self, session: Session, mailbox_id: int) -> MailboxIndex:
        """UIDs and counts of the mailbox, without a record per message (SELECT,
        STATUS)."""
        box = await self._owned(session, mailbox_id)
        key = (session.ref.region, mailbox_id)
        cached = self._indexes.get(key)
        if cached is not None and cached.highestmodseq == box.highestmodseq:
            # Every change to a mailbox raises its HIGHESTMODSEQ, so an index taken at
            # the same one is the same (and other processes' changes raise it too).
            return cached
        index = await self._cell(session.ref).store.mailbox_index(mailbox_id)
        if len(self._indexes) >= INDEXES_MAX:
            self._indexes.clear()
        self._indexes[key] = index
        return index

    async def get_messages(self, session: Session, mailbox_id: int,
                           uids: Sequence[int], *,
                           with_summary: bool = True) -> list[MessageRecord]:
        await self._check_owner(session, mailbox_id)
        return await self._cell(session.ref).store.get_messages(
            mailbox_id, uids, with_summary=with_summary)

    def open_summary(self, session: Session, msg: MessageRecord) -> summaries.MessageSummary:
        """Unseal a message's summary (CPU only)."""
        return decode_summary(session.opener.open(msg.summary, expect(session, "summary")))

    def digest_reader(self, session: Session, mailbox_id: int) -> DigestReader:
        """A reader of the mailbox's digests for ``session`` (the caller has checked the
        mailbox is the session's, e.g. by listing it)."""
        return self.digests.reader(session, mailbox_id)

    def text_reader(self, session: Session, mailbox_id: int) -> TextReader:
        """A reader of the mailbox's sealed text index (same precondition)."""
        return self.text_index.reader(session, mailbox_id)

    async def bodies(self, session: Session, msgs: Sequence[MessageRecord],
                     digests: Mapping[int, Digest] | None = None) -> dict[int, bytes]:
        """Full plaintext of several messages (uid -> bytes), one storage round trip.

        Each opens with the content key of the message's own sealed summary (from its
        digest where given, else from the summary itself), bound to the account, the
        message id its summary names and the part "body" (crypto/seal.py): a blob
        that is not this message's body (one swapped in from another message or
        account, a summary in its place) fails (CryptoError, saying what was found)
        instead of showing another message's body."""
        cell = self._cell(session.ref)
        blobs = await cell.blobs.get_many([m.blob_id for m in msgs])
        keys: dict[int, tuple[bytes, bytes]] = {}
        light: dict[int, list[int]] = {}
        for m in msgs:
            digest = None if digests is None else digests.get(m.uid)
            if digest is not None and digest.blob_id == m.blob_id:
                keys[m.uid] = (digest.key, digest.message_id)
            elif m.summary:
                keys[m.uid] = _summary_key(session, m.summary)
            else:
                light.setdefault(m.mailbox_id, []).append(m.uid)
        for mailbox_id, uids in light.items():
            for full in await cell.store.get_messages(mailbox_id, uids):
                keys[full.uid] = _summary_key(session, full.summary)
        out: dict[int, bytes] = {}
        self.bodies_opened += len(msgs)
        timed = enabled(LogEvent.UNSEALED)
        account, key_id = session.ref.record.id, session.opener.key_id
        for m in msgs:
            started = time.perf_counter() if timed else 0.0
            key = keys.get(m.uid)
            try:
                if key is None:  # expunged meanwhile: no summary to bind it to
                    out[m.uid] = session.opener.open(
                        blobs[m.blob_id], seal.Expect(account, "body", None, key_id))
                else:
                    out[m.uid] = seal.open_with_key(blobs[m.blob_id], key[0], seal.Expect(
                        account, "body", key[1] or None, key_id))
            except CryptoError as exc:
                raise DamagedPart("body", str(exc),
                                  "" if key is None else key[1].hex()) from exc
            if timed:
                event(LogEvent.UNSEALED, seconds=time.perf_counter() - started,
                      size=len(out[m.uid]))
        return out

    async def _owned(self, session: Session, mailbox_id: int) -> MailboxRecord:
        box = await self._cell(session.ref).store.get_mailbox_by_id(mailbox_id)
        if box.account_id != session.ref.record.id:
            raise UnknownMailbox(str(mailbox_id))
        self._remember_owner(session, mailbox_id)
        return box

    async def _check_owner(self, session: Session, mailbox_id: int) -> None:
        """Raise UnknownMailbox unless the mailbox is the session's. Owners are
        remembered: a mailbox id is never reused nor given to another account, so the
        answer cannot change (a mailbox deleted since is refused by storage itself)."""
        key = (session.ref.region, mailbox_id)
        if self._owners.get(key) == session.ref.record.id:
            return
        await self._owned(session, mailbox_id)

    def _remember_owner(self, session: Session, mailbox_id: int) -> None:
        if len(self._owners) >= OWNERS_MAX:
            self._owners.clear()
        self._owners[(session.ref.region, mailbox_id)] = session.ref.record.id

    async def mailbox_by_id(self, session: Session, mailbox_id: int) -> MailboxRecord:
        return await self._owned(session, mailbox_id)

    # -- changes ------------------------------------------------------------------
    async def store_flags(self, session: Session, mailbox_id: int, uids: Sequence[int],
                          mode: str, flags: Sequence[str],
                          unchanged_since: int | None = None,
                          ) -> tuple[list[FlagChange], list[int]]:
        await self._check_owner(session, mailbox_id)
        result = await self._cell(session.ref).store.store_flags(
            mailbox_id, uids, mode, canonical_flags(flags), unchanged_since)
        if result[0]:
            self.hub.notify(mailbox_id)
        return result

    async def expunge(self, session: Session, mailbox_id: int,
                      uids: Sequence[int]) -> list[Expunged]:
        await self._check_owner(session, mailbox_id)
        rewrite = await self.digests.before_expunge(session, mailbox_id, uids)
        gone = await self._cell(session.ref).store.expunge(mailbox_id, uids)
        rewrite([e.uid for e in gone])
        self.text_index.forget(session, mailbox_id, [e.uid for e in gone])
        if gone:
            self.hub.notify(mailbox_id)
            if self.quotas is not None:
                self.quotas.forget(session.ref)
            await self._release_blobs(session.ref,
                                      [e.orphaned_blob for e in gone if e.orphaned_blob])
        return gone

    async def expunged_flags(self, session: Session, mailbox_id: int,
                             uids: Sequence[int]) -> dict[int, FlagChange]:
        """Flags (and expunge modseq) of those of ``uids`` that were expunged."""
        await self._check_owner(session, mailbox_id)
        return await self._cell(session.ref).store.expunged_flags(mailbox_id, uids)

    async def copy(self, session: Session, mailbox_id: int, uids: Sequence[int],
                   target: str, *, moving: bool = False) -> list[tuple[int, Appended]]:
        await self._check_owner(session, mailbox_id)
        dst = await self.get_mailbox(session, target)
        if self.quotas is not None and not moving:
            await self.quotas.check(session.ref, (), copies=len(uids))
        pairs = await self._cell(session.ref).store.copy_messages(mailbox_id, uids, dst.id)
        if pairs:
            self.hub.notify(dst.id)
            if self._filing_hooks:
                source = await self._owned(session, mailbox_id)
                self._filed(Filing(session.ref, session, source, dst,
                                   tuple(a.uid for _, a in pairs)))
        return pairs

    async def move(self, session: Session, mailbox_id: int, uids: Sequence[int],
                   target: str) -> tuple[list[tuple[int, Appended]], list[Expunged]]:
        """RFC 6851 MOVE: copy then expunge the sources (blobs are shared, so nothing
        is re-sealed and no blob is released)."""
        pairs = await self.copy(session, mailbox_id, uids, target, moving=True)
        gone = await self.expunge(session, mailbox_id, [src for src, _ in pairs])
        return pairs, gone

    async def changes_since(self, session: Session, mailbox_id: int, modseq: int, *,
                            with_summary: bool = True) -> Changes:
        await self._check_owner(session, mailbox_id)
        return await self._cell(session.ref).store.changes_since(
            mailbox_id, modseq, with_summary=with_summary)


def _summary_key(session: Session, summary: bytes) -> tuple[bytes, bytes]:
    """(content key, message id) of a message from its sealed summary, which must be
    a summary of one of ``session``'s messages (CryptoError otherwise)."""
    try:
        key = session.opener.content_key(summary, expect(session, "summary"))
        return key, seal.SealHeader.parse(summary).message_id
    except CryptoError as exc:
        raise DamagedPart("summary", str(exc)) from exc
