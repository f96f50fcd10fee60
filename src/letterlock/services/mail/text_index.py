"""The sealed text index: what SEARCH BODY and TEXT compare, kept per window of
messages so a search reads one blob per window instead of opening every body.

For each message it holds the front-end's searchable view of its header (for TEXT,
so that no digest need be read) and its *searchable body text*
(:func:`body_text`: every text part decoded from its transfer encoding and charset,
HTML included as text, and the header fields of attached messages, case-folded) --
the exact string IMAP SEARCH tests a BODY/TEXT needle against. The index therefore
answers exactly, with no candidate to verify: a substring of the folded text is the
RFC 9051 substring match, for any script (accents, CJK), with no tokeniser that
could miss a match.

The texts of the messages whose UIDs fall in one window of ``PACK_SPAN`` UIDs (the
digest packs' windows, services/mail/digests.py) are kept together in a text pack,
sealed with AES-256-GCM under a key derived from the account's private key; the
associated data binds a pack to its account, mailbox, UID range and part (the
canonical form of crypto/seal.py, docs/sealed-format.md). The operator
sees ciphertext and sizes only. Storage keeps a pack only while it is whole and
current (``CellStore.put_text_pack``) and drops it in the transaction that removes
any message it holds (expunge, mailbox or account deletion: crypto-shredded with
the account, whose key is the only way to read it), so an expunged message's text
is never found again. Packs survive password change and recovery (the key pair is
the same); a region move leaves them behind and the new cell's readers make them
again.

Packs are made by readers (a session holding the account key): a search that meets
a window with no pack, or with messages newer than its pack, first merges the
window's text postings (what delivery sealed to the account's public key,
services/mail/text_postings.py) into a new pack and deletes them; a search that had
to open every other body of a window writes that window's pack in the background. A pack
is a cache: one that is missing, does not open (damaged, zeroed, moved) or names
another blob for a UID is ignored (with a ``mail:text-index:damaged`` log line when
it does not open), and the bodies are opened as without an index -- never a wrong
answer.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import functools
import json
import logging
import struct
import time
from collections.abc import Callable, Mapping, Sequence

from letterlock.crypto import seal
from letterlock.errors import CryptoError, LetterlockError
from letterlock.mime import structure
from letterlock.mime.headers import decode_header_text, split_fields
from letterlock.services.accounts.accounts import Session
from letterlock.services.cells import Cells
from letterlock.services.mail import text_postings
from letterlock.services.mail.digests import PACK_SPAN, window_object, window_of
from letterlock.services.mail.hot_windows import HotWindows
from letterlock.services.operations.log_events import LogEvent, event
from letterlock.storage.models import DigestPack, MessageRecord, TextPosting

log = logging.getLogger("letterlock.text_index")

_MAGIC = b"LLT2"
_KEY_PURPOSE = b"text index"
PACK_PART = "text pack"
"""The part name a text pack is bound to (seal.associated_data)."""
_ENTRY = struct.Struct(">IHII")
"""uid, lengths of the blob id, of the text (UTF-8) and of the header view."""
_ROW_OVERHEAD = 160
"""Bytes an entry costs in memory beyond the pack's plaintext (its parsed offsets)."""
HOT_BYTES = 256 * 1024 * 1024
"""Text packs (plaintext) a process keeps (all accounts, each window for HOT_TTL_S
after its last use): a 100,000-message mailbox of ~1 KiB messages takes ~140 MB; a
mailbox larger than the budget is read from its packs at every search."""

Entry = tuple[str, str, bytes]
"""(blob id, searchable body text, the front-end's searchable view of the header)."""
Found = tuple[str, bytes]
"""(searchable body text, header view) of a message."""


@functools.lru_cache(maxsize=4096)
def part_tree(data: bytes) -> structure.Part:
    """A digest's part tree, parsed once while it is in use (parts are immutable)."""
    return structure.Part.from_json(json.loads(data))


def body_text(raw: bytes, tree_json: bytes = b"") -> str:
    """What SEARCH BODY compares a needle with: the text parts of ``raw`` decoded, and
    the header fields of attached messages, case-folded. ``tree_json`` is the part
    tree kept in the message's digest, if known."""
    return _body_text(raw, part_tree(tree_json) if tree_json else structure.parse(raw))


def _body_text(raw: bytes, tree: structure.Part) -> str:
    texts = []
    for part in structure.walk(tree):
        if part.is_multipart:
            continue
        if part.type.lower() == "text":
            texts.append(structure.part_text(raw, part))
        elif part.is_message and part.children:
            inner = part.children[0]
            texts += [decode_header_text(f.value) for f in
                      split_fields(raw[inner.header_start : inner.body_start])]
    return "\n".join(texts).casefold()


def body_text_of(raw: bytes, tree: structure.Part | None) -> str:
    """:func:`body_text` of ``raw`` whose part tree is ``tree``, if known."""
    return _body_text(raw, tree or structure.parse(raw))


def encode_pack(entries: Mapping[int, Entry], version: bytes = b"") -> bytes:
    out = [_MAGIC, struct.pack(">B", len(version)), version,
           struct.pack(">I", len(entries))]
    for uid, (blob_id, text, view) in sorted(entries.items()):
        blob = blob_id.encode("ascii")
        data = text.encode("utf-8", "surrogatepass")
        out += [_ENTRY.pack(uid, len(blob), len(data), len(view)), blob, data, view]
    return b"".join(out)


class PackView:
    """One window's text pack as a process keeps it: the plaintext itself, searched
    as bytes (the UTF-8 of folded text holds a needle's UTF-8 exactly where the text
    holds the needle), and each entry's offsets, parsed only when a hit or a read
    needs them -- a search for a rare word decodes nothing."""

    __slots__ = ("_blank", "_rows", "_starts", "count", "data", "last_uid")

    def __init__(self, data: bytes, start: int, count: int, last_uid: int) -> None:
        self.data = data
        self.count = count
        self.last_uid = last_uid
        self._starts: list[int] = [start]
        self._rows: dict[int, tuple[int, int, int, int]] | None = None
        """uid -> offsets of its blob id, text, header view and end."""
        self._blank: set[int] = set()
        """UIDs whose header view is empty (unknown: kept for TEXT)."""

    @classmethod
    def of(cls, data: bytes, version: bytes = b"", last_uid: int = 0) -> PackView | None:
        """The view of an (authenticated) pack plaintext whose last UID is
        ``last_uid``, or None if its header views are another front-end version's.
        Raises CryptoError if it is malformed."""
        if data[:4] != _MAGIC or len(data) < 9:
            raise CryptoError("not a text pack")
        vlen = data[4]
        if data[5 : 5 + vlen] != version:
            return None
        try:
            (count,) = struct.unpack_from(">I", data, 5 + vlen)
        except struct.error as exc:
            raise CryptoError("malformed text pack") from exc
        return cls(data, 9 + vlen, count, last_uid)

    def rows(self) -> dict[int, tuple[int, int, int, int]]:
        if self._rows is None:
            self._rows = self._parse()
        return self._rows

    def _parse(self) -> dict[int, tuple[int, int, int, int]]:
        data, pos = self.data, self._starts[0]
        rows: dict[int, tuple[int, int, int, int]] = {}
        starts: list[int] = []
        try:
            for _ in range(self.count):
                starts.append(pos)
                uid, blen, tlen, hlen = _ENTRY.unpack_from(data, pos)
                blob = pos + _ENTRY.size
                rows[uid] = (blob, blob + blen, blob + blen + tlen, blob + blen + tlen + hlen)
                pos = blob + blen + tlen + hlen
        except struct.error as exc:
            raise CryptoError("malformed text pack") from exc
        if pos != len(data):
            raise CryptoError("trailing bytes in a text pack")
        self._starts = starts
        self._blank = {uid for uid, row in rows.items() if row[2] == row[3]}
        return rows

    def entry(self, uid: int) -> Entry | None:
        row = self.rows().get(uid)
        if row is None:
            return None
        blob, text, view, end = row
        data = self.data
        try:
            return (data[blob:text].decode("ascii"),
                    data[text:view].decode("utf-8", "surrogatepass"), data[view:end])
        except UnicodeDecodeError as exc:
            raise CryptoError("malformed text pack") from exc

    def entries(self) -> dict[int, Entry]:
        out: dict[int, Entry] = {}
        for uid in self.rows():
            entry = self.entry(uid)
            assert entry is not None
            out[uid] = entry
        return out

    def _holding(self, needle: bytes, part: int, last: int | None = None) -> set[int]:
        """UIDs whose body text (``part`` 1) or header view (2) holds ``needle``
        (``last`` 3: either)."""
        rows = self.rows()
        if not needle:
            return set(rows)
        found: set[int] = set()
        find = self.data.find
        starts = self._starts
        uids = list(rows)
        size = len(needle)
        pos = find(needle)
        while pos >= 0:
            index = bisect.bisect_right(starts, pos) - 1
            if index < 0:  # in the pack's own header
                pos = find(needle, pos + 1)
                continue
            row = rows[uids[index]]
            if row[part] <= pos and pos + size <= row[last or part + 1]:
                found.add(uids[index])
                pos = find(needle, row[3])
            else:
                pos = find(needle, pos + 1)
        return found

    def matching(self, required: Sequence[tuple[bytes | None, bytes | None]]) -> set[int]:
        """UIDs of the entries that may match: each of ``required``'s (body needle or
        None, header needle or None) is in the body text, or the header needle is in
        the header view (or the view is empty: unknown)."""
        hits: set[int] | None = None
        for text, encoded in required:
            if text is not None and encoded == text:  # TEXT of a plain word: one pass
                found = self._holding(text, 1, 3) | self._blank
            else:
                found = set() if text is None else self._holding(text, 1)
                if encoded is not None:
                    found |= self._holding(encoded, 2) | self._blank
            hits = found if hits is None else hits & found
            if not hits:
                return set()
        return set(self.rows()) if hits is None else hits


def decode_pack(data: bytes, version: bytes = b"") -> dict[int, Entry] | None:
    """The entries, or None if the header views are another front-end version's.
    Raises CryptoError if the (authenticated) plaintext is malformed."""
    view = PackView.of(data, version)
    return None if view is None else view.entries()


def _legacy_associated(account_id: str, mailbox_id: int, first: int, last: int,
                       count: int) -> bytes:
    """What packs written before bound boxes were bound to (still read)."""
    return b"letterlock text pack v1\x00" + account_id.encode() + struct.pack(
        ">QQQQ", mailbox_id, first, last, count)


def _by_window(uids: list[int]) -> list[tuple[int, list[int]]]:
    """Ascending ``uids`` cut by window: (window start, its UIDs)."""
    chunks: list[tuple[int, list[int]]] = []
    i = 0
    while i < len(uids):
        window = window_of(uids[i])
        j = bisect.bisect_left(uids, window + PACK_SPAN, i)
        chunks.append((window, uids[i:j]))
        i = j
    return chunks


Ident = tuple[str, str, int, int]
"""(region, account id, mailbox id, window start)."""


LOAD_WINDOWS = 64
"""Packs a reader asks storage for at once (~10 MB at ~1 KiB messages)."""


class TextReader:
    """Searchable texts of one mailbox for one session (one SEARCH or a few)."""

    def __init__(self, index: TextIndex, session: Session, mailbox_id: int) -> None:
        self._index = index
        self._session = session
        self._mailbox_id = mailbox_id
        self._key = session.opener.derive_key(_KEY_PURPOSE)
        self._windows: dict[int, PackView] = {}
        self._posted: dict[int, tuple[str, Found]] = {}
        """uid -> (blob id, entry) from postings of windows not yet packed whole."""
        self._seen: set[int] = set()
        """UIDs whose postings were read (deleted once a stored pack holds them)."""

    def _ident(self, window: int) -> Ident:
        return (self._session.ref.region, self._session.ref.record.id, self._mailbox_id,
                window)

    async def _views(self, windows: Sequence[int]) -> dict[int, PackView]:
        """The usable packs of ``windows`` (ascending): hot ones, then the others
        from storage."""
        out: dict[int, PackView] = {}
        cold = []
        for w in windows:
            hot = self._windows.get(w) or self._index.hot_get(self._ident(w))
            if hot is None:
                cold.append(w)
            else:
                out[w] = hot
        for start in range(0, len(cold), LOAD_WINDOWS):
            if start:
                await asyncio.sleep(0)
            out.update(await self._load(cold[start : start + LOAD_WINDOWS]))
        return out

    async def _covered(self, uids: list[int]) -> list[tuple[list[int], PackView | None]]:
        """Ascending ``uids`` by window, each with the window's pack where one is
        usable and describes every one of them (no message newer than the pack)."""
        chunks = _by_window(uids)
        views = await self._views([w for w, _ in chunks])
        out: list[tuple[list[int], PackView | None]] = []
        for window, chunk in chunks:
            view = views.get(window)
            out.append((chunk, view if view is not None and chunk[-1] <= view.last_uid
                        else None))
        return out

    def _matching(self, view: PackView, chunk: list[int],
                  required: Sequence[tuple[bytes | None, bytes | None]]) -> list[int] | None:
        try:
            hits = view.matching(required)
        except CryptoError as exc:
            self._damaged(window_of(chunk[0]), view.last_uid, exc)
            return None
        if 4 * len(hits) >= len(chunk):
            return [u for u in chunk if u in hits]
        # Few hits (a rare word): look each up in the window's selection.
        out = []
        for uid in sorted(hits):
            k = bisect.bisect_left(chunk, uid)
            if k < len(chunk) and chunk[k] == uid:
                out.append(uid)
        return out

    async def narrow(self, uids: list[int],
                     required: Sequence[tuple[str, bytes | None]]) -> list[int]:
        """Of ascending ``uids``, those the index does not rule out: whose text holds
        each folded needle of ``required`` (or whose header view holds its header
        needle, when given), and every UID of a window without a usable pack or with
        messages newer than its pack (so that window is read, and packed, whole)."""
        needles: list[tuple[bytes | None, bytes | None]] = [
            (text.encode("utf-8", "surrogatepass"), encoded) for text, encoded in required]
        if not needles or not uids:
            return uids
        out: list[int] = []
        for chunk, view in await self._covered(uids):
            hits = None if view is None else self._matching(view, chunk, needles)
            out += chunk if hits is None else hits
        return out

    async def narrow_headers(self, uids: list[int], required: Sequence[bytes]
                             ) -> tuple[list[int], list[int]]:
        """(UIDs whose stored header view holds every string of ``required`` or is
        empty, UIDs no pack describes) of ascending ``uids``: header keys answered
        from the text packs where they exist, the digests need opening for the rest."""
        needles: list[tuple[bytes | None, bytes | None]] = [(None, n) for n in required]
        kept: list[int] = []
        rest: list[int] = []
        for chunk, view in await self._covered(uids):
            hits = None if view is None else self._matching(view, chunk, needles)
            if hits is None:
                rest += chunk
            else:
                kept += hits
        return kept, rest

    async def get(self, records: Sequence[MessageRecord]) -> dict[int, Found]:
        """uid -> (searchable text, header view), for those of ``records`` a pack
        describes (with the same blob); the others are absent (bodies to open)."""
        needed = sorted({window_of(r.uid) for r in records})
        # Only the windows of this call stay here (a search asks window by window):
        # a session holds one batch's packs, not the mailbox's.
        self._windows = await self._views(needed)
        out: dict[int, Found] = {}
        for rec in records:
            view = self._windows.get(window_of(rec.uid))
            if view is None:
                continue
            try:
                entry = view.entry(rec.uid)
            except CryptoError as exc:
                self._damaged(window_of(rec.uid), view.last_uid, exc)
                del self._windows[window_of(rec.uid)]
                continue
            if entry is not None and entry[0] == rec.blob_id:
                out[rec.uid] = (entry[1], entry[2])
        for rec in records:
            posted = self._posted.get(rec.uid)
            if rec.uid not in out and posted is not None and posted[0] == rec.blob_id:
                out[rec.uid] = posted[1]
        return out

    async def merge(self, selected: Sequence[int]) -> None:
        """Merge the text postings of the windows of ``selected`` (the mailbox's UIDs,
        ascending) that have no usable pack or messages newer than it: a window then
        described whole is packed (and its postings deleted once the pack is
        stored); the entries of the others are kept for :meth:`get` (their bodies
        need not be opened) until a search packs them. LOAD_WINDOWS at a time."""
        chunks = _by_window(selected if isinstance(selected, list) else list(selected))
        for start in range(0, len(chunks), LOAD_WINDOWS):
            if start:
                await asyncio.sleep(0)
            group = chunks[start : start + LOAD_WINDOWS]
            views = await self._views([w for w, _ in group])
            stale = [(w, c) for w, c in group
                     if (v := views.get(w)) is None or c[-1] > v.last_uid]
            if stale:
                await self._merge(stale, views)

    async def _merge(self, stale: list[tuple[int, list[int]]],
                     views: dict[int, PackView]) -> None:
        store = self._index.cells.get(self._session.ref.region).store
        wanted = {u for _, chunk in stale for u in chunk}
        postings = [p for p in await store.get_text_postings(
            self._mailbox_id, stale[0][1][0], stale[-1][1][-1]) if p.uid in wanted]
        if not postings:
            return
        self._seen.update(p.uid for p in postings)
        records = await store.get_messages(self._mailbox_id, [p.uid for p in postings])
        blobs = {r.uid: r.blob_id for r in records}
        message_ids: dict[int, bytes] = {}
        for r in records:
            with contextlib.suppress(CryptoError):
                message_ids[r.uid] = seal.SealHeader.parse(r.summary).message_id
        opened = text_postings.open_postings(self._session.opener,
                                             self._session.ref.record.id, postings,
                                             message_ids, self._posting_damaged)
        view_of, version = self._index.header_view, self._index.version
        for uid, item in opened.items():
            # The header view made at delivery, if by this front-end version; else
            # made here from the posted header.
            made = (item.view if item.version == version and item.view
                    else view_of(item.header) if view_of else b"")
            self._posted[uid] = (blobs[uid], (item.text, made))
        for window, chunk in stale:
            view = views.get(window)
            try:
                entries = {} if view is None else view.entries()
            except CryptoError as exc:
                self._damaged(window, view.last_uid if view else 0, exc)
                entries = {}
            whole: dict[int, Entry] = {}
            for uid in chunk:
                posted = self._posted.get(uid)
                if uid in entries:
                    whole[uid] = entries[uid]
                elif posted is not None:
                    whole[uid] = (posted[0], *posted[1])
            if len(whole) == len(chunk) and any(u in self._posted for u in chunk):
                self.put(window, whole)
                self._windows.pop(window, None)  # hot for the process, not this reader
                for uid in chunk:
                    self._posted.pop(uid, None)

    def _posting_damaged(self, posting: TextPosting, reason: str) -> None:
        """Log a posting that does not open; it is ignored (its body is opened)."""
        event(LogEvent.TEXT_INDEX_DAMAGED, user=self._session.ref.record.address,
              mailbox=self._mailbox_id, uid=posting.uid, part=text_postings.PART,
              reason=reason)

    def _damaged(self, first: int, last: int, exc: CryptoError) -> None:
        """Log a pack that does not open or parse; it is ignored (and made again)."""
        event(LogEvent.TEXT_INDEX_DAMAGED, user=self._session.ref.record.address,
              mailbox=self._mailbox_id, first=first, last=last,
              reason=str(exc) or "does not open")
        self._index.hot_drop(self._ident(first))

    async def _load(self, windows: list[int]) -> dict[int, PackView]:
        store = self._index.cells.get(self._session.ref.region).store
        account = self._session.ref.record.id
        packs = await store.get_text_packs(self._mailbox_id, windows[0],
                                           windows[-1] + PACK_SPAN - 1)
        wanted = set(windows)
        out: dict[int, PackView] = {}
        for pack in packs:
            if pack.first_uid not in wanted:
                continue
            try:
                span = (self._mailbox_id, pack.first_uid, pack.last_uid, pack.count)
                plain = seal.open_bound_box(self._key, pack.data, account,
                                            window_object(*span), PACK_PART,
                                            _legacy_associated(account, *span))
                view = PackView.of(plain, self._index.version, pack.last_uid)
            except CryptoError as exc:
                self._damaged(pack.first_uid, pack.last_uid, exc)
                continue
            if view is None or view.count != pack.count:
                continue  # made by another front-end version: made again
            out[pack.first_uid] = view
            self._index.hot_put(self._ident(pack.first_uid), view)
        return out

    def put(self, window: int, entries: dict[int, Entry]) -> None:
        """Keep ``entries`` (every message of ``window`` now, uid -> entry) as the
        window's pack: hot at once, stored in the background."""
        if not entries:
            return
        last = max(entries)
        plain = encode_pack(entries, self._index.version)
        view = PackView.of(plain, self._index.version, last)
        assert view is not None
        self._windows[window] = view
        self._index.hot_put(self._ident(window), view)
        data = seal.seal_bound_box(
            self._key, plain, self._session.ref.record.id,
            window_object(self._mailbox_id, window, last, len(entries)), PACK_PART)
        self._index.write(self._session.ref.region,
                          DigestPack(self._mailbox_id, window, last, len(entries), data),
                          [u for u in entries if u in self._seen])


class TextIndex(HotWindows[Ident, PackView]):
    """Text readers, the background pack writer and the process's hot windows (the
    text packs searched lately, shared by the owner's sessions of this process)."""

    HOT_TTL_S = 60.0

    def __init__(self, cells: Cells, version: bytes = b"", *, hot_bytes: int = HOT_BYTES,
                 clock: Callable[[], float] = time.monotonic,
                 header_view: Callable[[bytes], bytes] | None = None) -> None:
        super().__init__(hot_bytes, clock)
        self.cells = cells
        self.header_view = header_view
        """The front-end's header view of a raw header section (for postings)."""
        self.version = version
        """Names the front-end's header view encoding (packs of another are ignored)."""
        self._writing: set[asyncio.Task[None]] = set()

    def reader(self, session: Session, mailbox_id: int) -> TextReader:
        return TextReader(self, session, mailbox_id)

    def hot_size(self, value: PackView) -> int:
        return len(value.data) + _ROW_OVERHEAD * value.count

    def forget(self, session: Session, mailbox_id: int, uids: Sequence[int]) -> None:
        """Drop the windows holding ``uids`` (expunged) from the hot windows."""
        for w in sorted({window_of(u) for u in uids}):
            self.hot_drop((session.ref.region, session.ref.record.id, mailbox_id, w))

    def write(self, region: str, pack: DigestPack, merged: Sequence[int] = ()) -> None:
        """Store ``pack`` in the background, then delete the postings of ``merged``
        (UIDs whose postings it holds) if it was stored."""
        store = self.cells.get(region).store

        async def write() -> None:
            try:
                if await store.put_text_pack(pack) and merged:
                    await store.delete_text_postings(pack.mailbox_id, merged)
            except LetterlockError as exc:
                log.info("text pack %d:%d of mailbox %d not written: %s", pack.first_uid,
                         pack.last_uid, pack.mailbox_id, exc)

        task = asyncio.get_running_loop().create_task(write())
        self._writing.add(task)
        task.add_done_callback(self._writing.discard)

    async def flush(self) -> None:
        """Wait for the packs being written (shutdown, tests)."""
        while self._writing:
            with contextlib.suppress(Exception):
                await asyncio.gather(*list(self._writing), return_exceptions=True)
