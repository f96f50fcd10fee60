"""Digests: what reading a mailbox needs of each message, kept sealed in packs so that
a session opens one blob per window of messages instead of one key agreement per
message.

Every message is sealed with its own content key, wrapped to the account's X25519
key: opening one costs a key agreement (~50 us) plus its summary's JSON, which made a
10,000-message FETCH take a second. A :class:`Digest` keeps, per message, what a
reader needs after that first opening: the content key (so the body opens with
AES-GCM alone), the header section, the part tree (for section offsets), and views
rendered by the front-end (IMAP's ENVELOPE and BODYSTRUCTURE, see imap/views.py).

Digests of the messages whose UIDs fall in one window of ``PACK_SPAN`` UIDs are kept
together in a :class:`~letterlock.storage.models.DigestPack`, sealed with AES-256-GCM
under a key derived from the account's private key (:meth:`Opener.derive_key`): only
a session holding the unlocked key can read or write one, and the operator sees only
ciphertext and the UID range. The associated data binds a pack to its account,
mailbox, range and part (the canonical form of crypto/seal.py, docs/sealed-format.md),
so a pack moved to another mailbox or account fails to open (one
``mail:message:damaged`` line, and the pack is made again).

Mail arrives without the owner's key, so packs are made by readers: a session that
needs a message no pack describes opens it the slow way, then writes the window's
pack (in the background; a pack is a cache, and storage takes it only if it is still
whole and current, see ``CellStore.put_digest_pack``). Storage removes a pack with
any message it holds, so an expunged message's digest does not outlive it; the next
reader writes the window again. Packs survive password change and recovery (the key
pair is the same) and are deleted with the account; a region move leaves them behind
(the new cell's readers make new ones).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import struct
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from letterlock.crypto import seal
from letterlock.errors import CryptoError, LetterlockError
from letterlock.mime import summary as summaries
from letterlock.services.accounts.accounts import Session
from letterlock.services.cells import Cells
from letterlock.services.mail.hot_windows import HotWindows
from letterlock.services.operations.log_events import LogEvent, event
from letterlock.storage.models import DigestPack, MessageRecord

log = logging.getLogger("letterlock.digests")

PACK_SPAN = 128
"""UIDs per pack window: a small FETCH opens at most a few windows' packs."""
_DIGEST_OVERHEAD = 400
"""Bytes a decoded digest costs beyond its header, tree and views (objects, key)."""
DECODED_PACKS = 8
"""Decoded packs a reader keeps between calls (bounds its memory)."""
_MAGIC = b"LLD2"
_LEGACY_MAGIC = b"LLD1"
"""Packs written before digests kept their message's id (read; made again later)."""
_KEY_PURPOSE = b"digest packs"
PACK_PART = "digest pack"
"""The part name a digest pack is bound to (seal.associated_data)."""


@dataclass(frozen=True, slots=True)
class Digest:
    uid: int
    blob_id: str
    key: bytes
    """The message's content key (opens its sealed body and summary)."""
    message_id: bytes
    """The id the message was sealed with (its body must carry the same); b"" for a
    message sealed before parts were bound."""
    size: int
    header: bytes
    """The raw header section, blank line included."""
    structure: bytes
    """The part tree as JSON (mime.structure.Part.to_json), or b"" if unknown."""
    views: tuple[bytes, ...]
    """Front-end renderings, in the order of :class:`Views` (b"" where absent)."""


@dataclass(frozen=True)
class Views:
    """Renderings a front-end wants kept with each digest. ``version`` names the
    renderer: packs made by another version are made again."""

    version: bytes
    count: int
    make: Callable[[summaries.MessageSummary], tuple[bytes, ...]]
    search: Callable[[bytes], bytes] | None = None
    """The header fields of a raw header section as SEARCH compares them (the text
    index's header view, services/mail/text_index.py), if the front-end keeps one."""


NO_VIEWS = Views(b"", 0, lambda _summary: ())


def _entry_struct(views: int, legacy: bool = False) -> struct.Struct:
    # uid, size, content key, message id (not in legacy packs), then the lengths of
    # blob id, header, structure, views.
    return struct.Struct((">II32sHII" if legacy else ">II32s16sHII") + "I" * views)


def encode_pack(digests: Sequence[Digest], views: Views) -> bytes:
    entry = _entry_struct(views.count)
    out = [_MAGIC, struct.pack(">B", len(views.version)), views.version,
           struct.pack(">BI", views.count, len(digests))]
    for d in digests:
        blob = d.blob_id.encode("ascii")
        out.append(entry.pack(d.uid, d.size, d.key, d.message_id, len(blob), len(d.header),
                              len(d.structure), *(len(v) for v in d.views)))
        out.append(blob)
        out.append(d.header)
        out.append(d.structure)
        out.extend(d.views)
    return b"".join(out)


def decode_pack(data: bytes, views: Views) -> list[Digest] | None:
    """The digests of a pack, or None if it was made by another renderer version.
    Raises CryptoError if the plaintext is malformed (it was authenticated, so that
    means a bug, not an attack)."""
    try:
        legacy = data[:4] == _LEGACY_MAGIC
        if data[:4] != _MAGIC and not legacy:
            raise CryptoError("not a digest pack")
        vlen = data[4]
        if data[5 : 5 + vlen] != views.version:
            return None
        count_views, count = struct.unpack_from(">BI", data, 5 + vlen)
        if count_views != views.count:
            return None
        entry = _entry_struct(count_views, legacy)
        unpack = entry.unpack_from
        first = 3 if legacy else 4  # where the lengths start
        pos = 10 + vlen
        out: list[Digest] = []
        append = out.append
        for _ in range(count):
            fields = unpack(data, pos)
            pos += entry.size
            end = pos + fields[first]
            blob_id = data[pos:end].decode("ascii")
            pos, end = end, end + fields[first + 1]
            header = data[pos:end]
            pos, end = end, end + fields[first + 2]
            structure = data[pos:end]
            pos = end
            rendered = []
            for length in fields[first + 3 :]:
                rendered.append(data[pos : pos + length])
                pos += length
            message_id = b"" if legacy or not any(fields[3]) else fields[3]
            append(Digest(fields[0], blob_id, fields[2], message_id, fields[1], header,
                          structure, tuple(rendered)))
    except (struct.error, IndexError, UnicodeDecodeError) as exc:
        raise CryptoError("malformed digest pack") from exc
    return out


def _legacy_associated(account_id: str, mailbox_id: int, first: int, last: int,
                       count: int) -> bytes:
    """What packs written before bound boxes were bound to (still read)."""
    return b"letterlock digest pack v1\x00" + account_id.encode() + struct.pack(
        ">QQQQ", mailbox_id, first, last, count)


def window_object(mailbox_id: int, first: int, last: int, count: int) -> bytes:
    """The object id a per-window pack (digest or text) is bound to: its mailbox,
    UID range and message count."""
    return struct.pack(">QQQQ", mailbox_id, first, last, count)


def expect(session: Session, part: str, message_id: bytes | None = None) -> seal.Expect:
    """What a sealed ``part`` of one of ``session``'s messages must be bound to."""
    return seal.Expect(session.ref.record.id, part, message_id or None,
                       session.opener.key_id)


class DamagedPart(CryptoError):
    """A sealed part of a message that is missing or does not open as that message's
    (``part``: body or summary; ``message``: the message id in hex, where known)."""

    def __init__(self, part: str, reason: str, message: str = "") -> None:
        super().__init__(f"{part}: {reason}")
        self.part = part
        self.reason = reason
        self.message = message


def decode_summary(plain: bytes) -> summaries.MessageSummary:
    """A message summary from its opened plaintext; one that does not decode (a
    legacy blob of another part in the summary's place) is a CryptoError."""
    try:
        return summaries.decode(plain)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CryptoError("the sealed summary does not decode as one") from exc


def _message_id_of(sealed: bytes) -> str:
    """The message id a sealed part's header names (hex), or "" if none can be read."""
    try:
        return seal.SealHeader.parse(sealed).message_id.hex()
    except CryptoError:
        return ""


def window_of(uid: int) -> int:
    """The first UID of ``uid``'s pack window."""
    return uid - (uid - 1) % PACK_SPAN


def make_digest(session: Session, record: MessageRecord, views: Views) -> Digest:
    """Open a message's sealed summary the slow way (one key agreement) and keep what
    readers need (CPU only)."""
    wanted = expect(session, "summary")
    key = session.opener.content_key(record.summary, wanted)
    summary = decode_summary(seal.open_with_key(record.summary, key, wanted))
    structure = summary.extra.get("structure")
    if summary.size != record.size:
        # The sealed copy is the truth; the metadata row was changed behind our back.
        event(LogEvent.MESSAGE_DAMAGED, user=session.ref.record.address,
              mailbox=record.mailbox_id, uid=record.uid, blob=record.blob_id,
              reason="size differs from the sealed copy")
    message_id = seal.SealHeader.parse(record.summary).message_id
    return Digest(record.uid, record.blob_id, key, message_id, summary.size, summary.header,
                  b"" if structure is None else json.dumps(structure,
                                                           separators=(",", ":")).encode(),
                  views.make(summary))


Ident = tuple[str, str, int, int]
"""(region, account id, mailbox id, window start)."""


class DigestReader:
    """Digests of one mailbox for one session, for one command or a few: windows it
    used are kept (a few at a time) for the reader's life, which the caller keeps
    short. Digests never go stale (a message's content does not change; a digest is
    used only for the record whose blob it names), so nothing here is invalidated."""

    def __init__(self, digests: DigestService, session: Session, mailbox_id: int) -> None:
        self._service = digests
        self._session = session
        self._mailbox_id = mailbox_id
        self._key = session.opener.derive_key(_KEY_PURPOSE)
        self._packs: OrderedDict[int, dict[int, Digest]] = OrderedDict()
        """window start -> uid -> digest (most recently used last)."""
        self.damaged: dict[int, str] = {}
        """uid -> the part found damaged (and logged) while making digests."""

    def _ident(self, window: int) -> Ident:
        return (self._session.ref.region, self._session.ref.record.id, self._mailbox_id,
                window)

    async def get(self, records: Sequence[MessageRecord]) -> dict[int, Digest]:
        """uid -> digest for every record (light records will do: summaries are read
        from storage only for messages no pack describes)."""
        windows = sorted({window_of(r.uid) for r in records})
        cold = []
        for w in windows:
            if w in self._packs:
                continue
            hot = self._service.hot_get(self._ident(w))
            if hot is not None:
                self._packs[w] = hot
            else:
                cold.append(w)
        await self._load(cold)
        out: dict[int, Digest] = {}
        stale: set[int] = set()
        for rec in records:
            window = window_of(rec.uid)
            pack = self._packs.get(window)
            digest = None if pack is None else pack.get(rec.uid)
            if digest is None or digest.blob_id != rec.blob_id:
                stale.add(window)
                if digest is not None:
                    # UIDs are never reused and a message's blob never changes: the
                    # row was edited (e.g. two messages' UIDs swapped).
                    event(LogEvent.MESSAGE_DAMAGED, user=self._session.ref.record.address,
                          mailbox=self._mailbox_id, uid=rec.uid, blob=rec.blob_id,
                          reason="uid names another message than its sealed digest")
            else:
                out[rec.uid] = digest
        for window in sorted(stale):
            wanted = {r.uid: r.blob_id for r in records if window_of(r.uid) == window}
            fresh = await self._rebuild(window, wanted)
            for uid in wanted:
                if uid in fresh:
                    out[uid] = fresh[uid]
        for window in windows:
            if window in self._packs:
                self._packs.move_to_end(window)
        while len(self._packs) > DECODED_PACKS:
            self._packs.popitem(last=False)
        return out

    async def kept(self, uids: Sequence[int]) -> dict[int, dict[int, Digest]]:
        """The windows holding ``uids`` that are decoded here, hot in this process or
        packed in storage (window start -> uid -> digest), without making any: a
        window that would have to be made, or a message it lacks, is absent."""
        windows = sorted({window_of(u) for u in uids})
        out: dict[int, dict[int, Digest]] = {}
        cold = []
        for w in windows:
            pack = self._packs.get(w) or self._service.hot_get(self._ident(w))
            if pack is None:
                cold.append(w)
            else:
                out[w] = pack
        await self._load(cold)
        out.update((w, self._packs[w]) for w in cold if w in self._packs)
        while len(self._packs) > DECODED_PACKS:
            self._packs.popitem(last=False)
        return out

    async def _load(self, windows: list[int]) -> None:
        if not windows:
            return
        store = self._service.cells.get(self._session.ref.region).store
        # One query per run of adjacent windows.
        runs: list[list[int]] = []
        for w in windows:
            if runs and w == runs[-1][-1] + PACK_SPAN:
                runs[-1].append(w)
            else:
                runs.append([w])
        account = self._session.ref.record.id
        views = self._service.views
        for run in runs:
            packs = await store.get_digest_packs(self._mailbox_id, run[0],
                                                 run[-1] + PACK_SPAN - 1)
            for pack in packs:
                if pack.first_uid not in run:
                    continue
                try:
                    span = (self._mailbox_id, pack.first_uid, pack.last_uid, pack.count)
                    plain = seal.open_bound_box(self._key, pack.data, account,
                                                window_object(*span), PACK_PART,
                                                _legacy_associated(account, *span))
                    digests = decode_pack(plain, views)
                except CryptoError as exc:
                    # A cache: made again from the sealed summaries, never trusted.
                    event(LogEvent.MESSAGE_DAMAGED, user=self._session.ref.record.address,
                          mailbox=self._mailbox_id, part=PACK_PART, first=pack.first_uid,
                          last=pack.last_uid, reason=str(exc) or "does not open")
                    continue
                if digests is not None:
                    decoded = {d.uid: d for d in digests}
                    self._packs[pack.first_uid] = decoded
                    self._service.hot_put(self._ident(pack.first_uid), decoded)

    async def _rebuild(self, window: int, wanted: dict[int, str]) -> dict[int, Digest]:
        """Digests of every message in ``window`` (reusing those already known), and
        the window's pack written for the next reader. A reader of this process that
        is making the same window meanwhile is waited for; if it made what ``wanted``
        (uid -> blob id) needs, that is the answer."""
        ident = self._ident(window)
        building = self._service.building.get(ident)
        if building is not None:
            with contextlib.suppress(LetterlockError):
                await asyncio.shield(building)
        # Another reader may have made the window since this one looked.
        hot = self._service.hot_get(ident)
        if hot is not None:
            merged = {**self._packs.get(window, {}), **hot}
            self._packs[window] = merged
            if all(uid in merged and merged[uid].blob_id == blob
                   for uid, blob in wanted.items()):
                return merged
        future: asyncio.Future[dict[int, Digest]] = \
            asyncio.get_running_loop().create_future()
        self._service.building[ident] = future
        try:
            made = await self._make(window)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody else must
            raise
        else:
            future.set_result(made)
        finally:
            if self._service.building.get(ident) is future:
                del self._service.building[ident]
        return made

    async def _make(self, window: int) -> dict[int, Digest]:
        store = self._service.cells.get(self._session.ref.region).store
        last = window + PACK_SPAN - 1
        light = await store.get_messages(self._mailbox_id, range(window, last + 1),
                                         with_summary=False)
        known = self._packs.get(window, {})
        reuse = {r.uid: known[r.uid] for r in light
                 if r.uid in known and known[r.uid].blob_id == r.blob_id}
        needed = [r.uid for r in light if r.uid not in reuse]
        full = await store.get_messages(self._mailbox_id, needed) if needed else []
        views = self._service.views
        made: dict[int, Digest] = dict(reuse)
        for i, rec in enumerate(full):
            try:
                made[rec.uid] = make_digest(self._session, rec, views)
            except CryptoError as exc:
                # The reader's caller answers NO for it (it has no digest); this is
                # the operator's one line about it.
                self.damaged[rec.uid] = "summary"
                event(LogEvent.MESSAGE_DAMAGED, user=self._session.ref.record.address,
                      mailbox=self._mailbox_id, uid=rec.uid, blob=rec.blob_id,
                      part="summary", message=_message_id_of(rec.summary),
                      reason=str(exc) or "does not open")
            if i % 64 == 63:
                await asyncio.sleep(0)  # other connections run between slices
        self._packs[window] = made
        self._service.hot_put(self._ident(window), made)
        present = [made[r.uid] for r in light if r.uid in made]
        if present and len(present) == len(light) and self._service.writes_packs:
            self._service.write_soon(self._session, self._mailbox_id, self._key, window,
                                     present)
        return made


class DigestService(HotWindows[Ident, dict[int, Digest]]):
    """Digest readers, the pack writer, and the process's hot windows.

    Hot windows: the windows read or made lately, decoded, shared by the sessions of
    this process that read the same mailbox (all the owner's: a reader is made only
    for a mailbox its session owns). A mailbox that many clients read at once (a
    phone, a laptop and a webmail of one person) is then opened once, not once per
    session. They hold plaintext headers in this process's memory, like the sessions
    themselves: at most ``hot_bytes`` of them (roughly: the digests' sizes plus a
    fixed cost each), each dropped ``HOT_TTL_S`` after its last use, and an expunged
    message's digest is dropped from them at once. A mailbox larger than the budget is
    read from its packs each time (a scan through an LRU cache would evict what it
    needs next), so the budget should hold the largest mailboxes read often.
    """

    HOT_TTL_S = 30.0
    WRITE_DELAY_S = 0.5
    """A window's pack is written this long after it changed: a mailbox taking mail
    quickly gets one write of its newest pack, not one per message."""

    def __init__(self, cells: Cells, views: Views | None = None, *,
                 hot_bytes: int = 64 * 1024 * 1024,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(hot_bytes, clock)
        self.cells = cells
        self.views = views or NO_VIEWS
        self.writes_packs = views is not None
        """Packs are written only with the front-end's views (a reader without them,
        e.g. an export, makes digests for itself and leaves packs as they are)."""
        self.building: dict[Ident, asyncio.Future[dict[int, Digest]]] = {}
        """Windows being made by a reader of this process (others wait for it)."""
        self._writing: dict[tuple[str, int, int], asyncio.Task[None]] = {}
        self._next: dict[tuple[str, int, int], DigestPack] = {}
        self._write_now = asyncio.Event()

    def reader(self, session: Session, mailbox_id: int) -> DigestReader:
        return DigestReader(self, session, mailbox_id)

    # -- hot windows -------------------------------------------------------------
    def hot_size(self, value: dict[int, Digest]) -> int:
        return sum(_DIGEST_OVERHEAD + len(d.header) + len(d.structure)
                   + sum(len(v) for v in d.views) for d in value.values())

    def forget(self, session: Session, mailbox_id: int, uids: Sequence[int]) -> None:
        """Drop the digests of ``uids`` (expunged) from the hot windows."""
        for uid in uids:
            ident = (session.ref.region, session.ref.record.id, mailbox_id, window_of(uid))
            hit = self._hot.get(ident)
            if hit is not None and uid in hit[0]:
                self._hot[ident] = ({u: d for u, d in hit[0].items() if u != uid}, hit[1],
                                    hit[2])

    # -- writing packs ------------------------------------------------------------
    def write_soon(self, session: Session, mailbox_id: int, key: bytes, window: int,
                   digests: list[Digest]) -> None:
        """Seal and store the window's pack in the background, WRITE_DELAY_S from now;
        the newest pack asked for by then (or while a write is under way) is the one
        written."""
        ident = (session.ref.region, mailbox_id, window)
        last = digests[-1].uid
        data = seal.seal_bound_box(key, encode_pack(digests, self.views),
                                   session.ref.record.id,
                                   window_object(mailbox_id, window, last, len(digests)),
                                   PACK_PART)
        self._next[ident] = DigestPack(mailbox_id, window, last, len(digests), data)
        if ident in self._writing:
            return
        store = self.cells.get(session.ref.region).store

        async def write() -> None:
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._write_now.wait(), self.WRITE_DELAY_S)
                while (pack := self._next.pop(ident, None)) is not None:
                    try:
                        await store.put_digest_pack(pack)
                    except LetterlockError as exc:
                        log.info("digest pack %d:%d of mailbox %d not written: %s",
                                 pack.first_uid, pack.last_uid, mailbox_id, exc)
            finally:
                self._writing.pop(ident, None)

        self._writing[ident] = asyncio.get_running_loop().create_task(write())

    async def before_expunge(self, session: Session, mailbox_id: int,
                             uids: Sequence[int]) -> Callable[[Sequence[int]], None]:
        """Read the packs of the windows ``uids`` fall in, before they are expunged
        (storage drops every pack holding an expunged message). Returns the function
        to call with the UIDs actually expunged: it writes those packs again without
        them, so the next reader need not open every message of the window again."""
        if not uids:
            return lambda _gone: None
        reader = self.reader(session, mailbox_id)
        windows = sorted({window_of(u) for u in uids})
        packs: dict[int, dict[int, Digest]] = {}
        if self.writes_packs:
            cold = []
            for w in windows:
                hot = self.hot_get(reader._ident(w))
                if hot is not None:
                    packs[w] = hot
                else:
                    cold.append(w)
            with contextlib.suppress(LetterlockError):
                await reader._load(cold)
            packs.update((w, d) for w, d in reader._packs.items() if w in windows)

        def after(gone: Sequence[int]) -> None:
            self.forget(session, mailbox_id, gone)
            removed = set(gone)
            for window, digests in packs.items():
                kept = [d for uid, d in sorted(digests.items()) if uid not in removed]
                if kept and len(kept) < len(digests):
                    self.write_soon(session, mailbox_id, reader._key, window, kept)

        return after
    async def flush(self) -> None:
        """Write waiting packs now and wait for them (shutdown, tests)."""
        self._write_now.set()
        try:
            while self._writing:
                await asyncio.gather(*list(self._writing.values()), return_exceptions=True)
        finally:
            self._write_now.clear()
