"""The selected mailbox as one connection sees it: the UIDs it has been told about
(message sequence numbers are positions in that list), the modification sequence it
is synchronised to, and the untagged updates (EXISTS, EXPUNGE / VANISHED, FETCH
FLAGS) that bring it up to date with changes made by other sessions or deliveries.

Per-connection memory stays small: one array of 32-bit UIDs and a few integers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager

from letterlock.imap import esearch
from letterlock.imap.esearch import UpdateContext
from letterlock.imap.parsing.primitives import STAR, SeqSet
from letterlock.imap.uidmap import UidMap
from letterlock.services.accounts.accounts import Session
from letterlock.services.mail.mailbox import MailboxService
from letterlock.storage.models import MailboxIndex, MailboxRecord

SYSTEM_FLAGS = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")


class RecentClaims:
    """IMAP4rev1 \\Recent (RFC 3501 2.3.2): a message is recent to the first session
    that sees it after it arrived. The store keeps, per mailbox, the highest UID
    claimed (MailboxService.claim_recent), so a message is recent to one session only
    across every IMAP process and after a restart. IMAP4rev2 sessions do not see
    \\Recent at all."""

    async def claim(self, mailboxes: MailboxService, session: Session, mailbox_id: int,
                    top: int, above: Callable[[int], Iterable[int]], *,
                    take: bool) -> set[int]:
        """The UIDs recent to this session: of the mailbox's messages up to ``top``,
        those ``above(mark)`` names above the store's mark (``take`` False: EXAMINE
        and STATUS look without claiming, RFC 3501 6.3.2)."""
        mark = await mailboxes.claim_recent(session, mailbox_id, top, take=take)
        return {u for u in above(mark) if u <= top}


class BadSequence(Exception):
    """A message sequence number that does not exist (answered with BAD)."""


def compress(numbers: Iterable[int]) -> str:
    """``1:3,5`` form of ascending numbers."""
    out: list[str] = []
    start = prev = -2
    for n in sorted(set(numbers)):
        if n == prev + 1:
            prev = n
            continue
        if start >= 0:
            out.append(str(start) if start == prev else f"{start}:{prev}")
        start = prev = n
    if start >= 0:
        out.append(str(start) if start == prev else f"{start}:{prev}")
    return ",".join(out)


def flag_list(flags: Iterable[str]) -> bytes:
    ordered = sorted(flags, key=lambda f: (not f.startswith("\\"), f.lower()))
    return ("(" + " ".join(ordered) + ")").encode("utf-8", "surrogateescape")


class SelectedMailbox:
    __slots__ = ("_claims", "_reported", "_watch", "changed", "context_mark", "contexts", "id",
                 "keywords", "modseq", "name", "readonly", "recent", "recent_told", "saved",
                 "uidnext", "uids", "uidvalidity")

    def __init__(self, record: MailboxRecord, index: MailboxIndex,
                 readonly: bool, watch: AbstractContextManager[asyncio.Event],
                 changed: asyncio.Event, claims: RecentClaims | None = None,
                 recent: set[int] | None = None) -> None:
        """``index`` (not a record per message) is all opening a mailbox needs: a
        burst of SELECTs of a large mailbox then allocates a tuple of UIDs each,
        rather than a record per message, whose freed memory stays with the process
        (issue 17)."""
        self.id = record.id
        self.name = record.name
        self.uidvalidity = record.uidvalidity
        self.readonly = readonly
        self.uids = UidMap.from_runs(index.runs)
        self.modseq = max(record.highestmodseq, index.highestmodseq)
        self.uidnext = max(record.uidnext, self.uids.last + 1)
        self.keywords: set[str] = set(index.keywords)
        self._watch = watch
        self.changed = changed
        self._claims = claims
        """None when \\Recent is not reported (IMAP4rev2 enabled)."""
        self.recent: set[int] = recent or set()
        """UIDs recent to this session (claimed by the caller before, see select)."""
        self.recent_told = len(self.recent)
        """The RECENT count last sent to the client."""
        self.saved: list[int] = []
        """UIDs saved by SEARCH RETURN (SAVE), for ``$`` (RFC 5182)."""
        self._reported: dict[int, int] = {}
        """uid -> modseq of this session's own flag changes, already reported."""
        self.contexts: list[UpdateContext] = []
        """Searches kept up to date for the client (RETURN (UPDATE), RFC 5267 4.3)."""
        self.context_mark = self.mark()
        """The view's :meth:`mark` when the contexts' results were last computed."""

    def close(self) -> None:
        self._watch.__exit__(None, None, None)

    def mark(self) -> tuple[int, int, int]:
        """Changes when messages arrive or go, or any flag changes (the modseq)."""
        return (len(self.uids), self.uids.last, self.modseq)

    def removals(self, gone: Iterable[int]) -> list[bytes]:
        """REMOVEFROM responses for the update contexts, to precede the EXPUNGE or
        VANISHED responses for ``gone`` (RFC 5267 4.3.4)."""
        if not self.contexts:
            return []
        return esearch.expunge_removals(self.contexts, list(gone), self.seq_of)

    # -- numbering -------------------------------------------------------------------
    @property
    def exists(self) -> int:
        return len(self.uids)

    def seq_of(self, uid: int) -> int | None:
        return self.uids.seq_of(uid)

    def resolve(self, seqset: SeqSet, uid: bool) -> list[int]:
        """UIDs named by a sequence set (ascending). For sequence numbers, a number
        beyond EXISTS raises BadSequence; for UIDs, absent ones are skipped."""
        if seqset.saved:
            return [u for u in self.saved if self.uids.seq_of(u) is not None]
        if uid:
            out: set[int] = set()
            for a, b in seqset.resolve(self.uids.last):
                out.update(self.uids.between(a, b))
            return sorted(out)
        count = len(self.uids)
        seqs: set[int] = set()
        for (a, b), written in zip(seqset.resolve(count), seqset.ranges, strict=True):
            if count == 0 and STAR in written:
                continue  # "1:*" in an empty mailbox names no message
            if a < 1 or b > count:
                raise BadSequence("message sequence number out of range")
            seqs.update(range(a, b + 1))
        return [self.uids.uid_at(s) for s in sorted(seqs)]

    def flags(self, uid: int, flags: Iterable[str]) -> bytes:
        """A FLAGS list for ``uid``, with \\Recent when it is recent to this session."""
        if uid in self.recent:
            return flag_list([*flags, "\\Recent"])
        return flag_list(flags)

    def note_reported(self, uid: int, modseq: int) -> None:
        self._reported[uid] = modseq

    def remove(self, uids: Iterable[int]) -> list[int]:
        """Forget expunged UIDs; returns their sequence numbers, descending, each
        valid at the moment its EXPUNGE response is sent."""
        seqs = []
        for uid in sorted(set(uids), reverse=True):
            seq = self.uids.remove(uid)
            self.recent.discard(uid)
            if seq is not None:
                seqs.append(seq)
        return seqs

    # -- catching up -----------------------------------------------------------------
    async def refresh(self, session: Session, mailboxes: MailboxService, *,
                      allow_expunge: bool, condstore: bool, qresync: bool,
                      ) -> list[bytes]:
        """Untagged responses that bring this view up to date (empty if nothing
        changed). With ``allow_expunge`` False (during FETCH, STORE, SEARCH; RFC 9051
        7.5.1) a pending expunge defers every update to a later command."""
        # Changes another process already told of must not wait for the event loop
        # to read them: its client may have had their OK before sending us this.
        mailboxes.hub.drain()
        if not self.changed.is_set():
            return []
        self.changed.clear()
        changes = await mailboxes.changes_since(session, self.id, self.modseq,
                                                with_summary=False)
        gone = [u for u in changes.vanished if self.seq_of(u) is not None]
        if gone and not allow_expunge:
            self.changed.set()
            return []
        out: list[bytes] = []
        if gone:
            out += self.removals(gone)
            if qresync:
                out.append(b"VANISHED " + compress(gone).encode())
                self.remove(gone)
            else:
                out += [b"%d EXPUNGE" % seq for seq in self.remove(gone)]
        last = self.uids.last
        new = [m for m in changes.changed if m.uid > last]
        for m in new:
            self.uids.append(m.uid)
        new_keywords = {f for m in changes.changed for f in m.flags
                        if not f.startswith("\\")} - self.keywords
        if new_keywords:
            self.keywords |= new_keywords
            out += self.flags_responses()
        if new:
            out.append(b"%d EXISTS" % len(self.uids))
            if self._claims is not None:
                new_uids = [m.uid for m in new]
                self.recent |= await self._claims.claim(
                    mailboxes, session, self.id, new_uids[-1],
                    lambda mark: [u for u in new_uids if u > mark], take=not self.readonly)
                out += self.recent_update(force=True)
            self.uidnext = max(self.uidnext, new[-1].uid + 1)
        for m in changes.changed:
            if m.uid > last or self._reported.get(m.uid) == m.modseq:
                continue
            seq = self.seq_of(m.uid)
            if seq is None:
                continue
            item = b"FLAGS " + self.flags(m.uid, m.flags)
            if qresync:
                item = b"UID %d " % m.uid + item
            if condstore:
                item += b" MODSEQ (%d)" % m.modseq
            out.append(b"%d FETCH (%s)" % (seq, item))
        out += self.recent_update()
        self._reported.clear()
        self.modseq = max(self.modseq, changes.highestmodseq)
        return out

    def recent_update(self, force: bool = False) -> list[bytes]:
        """A RECENT response when the count of \\Recent messages changed (expunges
        lower it too), for IMAP4rev1 sessions."""
        if self._claims is None or (not force and len(self.recent) == self.recent_told):
            return []
        self.recent_told = len(self.recent)
        return [b"%d RECENT" % self.recent_told]

    def learn_keywords(self, flags: Iterable[str]) -> list[bytes]:
        """FLAGS / PERMANENTFLAGS responses to send before a FETCH that shows keywords
        this session has not been told about yet (empty if none are new)."""
        new = {f for f in flags if not f.startswith("\\")} - self.keywords
        if not new:
            return []
        self.keywords |= new
        return self.flags_responses()

    def flags_responses(self) -> list[bytes]:
        flags = flag_list([*SYSTEM_FLAGS, *self.keywords])
        permanent = b"OK [PERMANENTFLAGS " + flag_list([*SYSTEM_FLAGS, *self.keywords,
                                                        "\\*"]) + b"] Flags permitted"
        if self.readonly:
            permanent = b"OK [PERMANENTFLAGS ()] Read-only mailbox"
        return [b"FLAGS " + flags, permanent]
