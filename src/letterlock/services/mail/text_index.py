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
associated data binds a pack to its account, mailbox and UID range. The operator
sees ciphertext and sizes only. Storage keeps a pack only while it is whole and
current (``CellStore.put_text_pack``) and drops it in the transaction that removes
any message it holds (expunge, mailbox or account deletion: crypto-shredded with
the account, whose key is the only way to read it), so an expunged message's text
is never found again. Packs survive password change and recovery (the key pair is
the same); a region move leaves them behind and the new cell's readers make them
again.

Packs are made by readers (a session holding the account key): a search that had
to open every body of a window writes that window's pack in the background. A pack
is a cache: one that is missing, does not open (damaged, zeroed, moved) or names
another blob for a UID is ignored (with a ``mail:text-index:damaged`` log line when
it does not open), and the bodies are opened as without an index -- never a wrong
answer.
"""

from __future__ import annotations

import asyncio
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
from letterlock.services.mail.digests import PACK_SPAN, window_of
from letterlock.services.mail.hot_windows import HotWindows
from letterlock.services.operations.log_events import LogEvent, event
from letterlock.storage.models import DigestPack, MessageRecord

log = logging.getLogger("letterlock.text_index")

_MAGIC = b"LLT2"
_KEY_PURPOSE = b"text index"
_ENTRY = struct.Struct(">IHII")
"""uid, lengths of the blob id, of the text (UTF-8) and of the header view."""
_TEXT_OVERHEAD = 200
HOT_BYTES = 256 * 1024 * 1024
"""Decoded texts and header views a process keeps (all accounts, each window for
HOT_TTL_S after its last use): a 100,000-message mailbox of ~1 KiB messages takes
~150 MB; a mailbox larger than the budget is read from its packs at every search
(~3 s at 100,000 messages instead of ~1 s)."""
"""Bytes an entry costs in memory beyond its text."""

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
    tree = part_tree(tree_json) if tree_json else structure.parse(raw)
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


def encode_pack(entries: Mapping[int, Entry], version: bytes = b"") -> bytes:
    out = [_MAGIC, struct.pack(">B", len(version)), version,
           struct.pack(">I", len(entries))]
    for uid, (blob_id, text, view) in sorted(entries.items()):
        blob = blob_id.encode("ascii")
        data = text.encode("utf-8", "surrogatepass")
        out += [_ENTRY.pack(uid, len(blob), len(data), len(view)), blob, data, view]
    return b"".join(out)


def decode_pack(data: bytes, version: bytes = b"") -> dict[int, Entry] | None:
    """The entries, or None if the header views are another front-end version's.
    Raises CryptoError if the (authenticated) plaintext is malformed."""
    try:
        if data[:4] != _MAGIC:
            raise CryptoError("not a text pack")
        vlen = data[4]
        if data[5 : 5 + vlen] != version:
            return None
        (count,) = struct.unpack_from(">I", data, 5 + vlen)
        pos = 9 + vlen
        out: dict[int, Entry] = {}
        for _ in range(count):
            uid, blen, tlen, hlen = _ENTRY.unpack_from(data, pos)
            pos += _ENTRY.size
            blob = data[pos : pos + blen].decode("ascii")
            pos += blen
            text = data[pos : pos + tlen].decode("utf-8", "surrogatepass")
            pos += tlen
            out[uid] = (blob, text, data[pos : pos + hlen])
            pos += hlen
        if pos != len(data):
            raise CryptoError("trailing bytes in a text pack")
    except (struct.error, UnicodeDecodeError, IndexError) as exc:
        raise CryptoError("malformed text pack") from exc
    return out


def _associated(account_id: str, mailbox_id: int, first: int, last: int, count: int) -> bytes:
    return b"letterlock text pack v1\x00" + account_id.encode() + struct.pack(
        ">QQQQ", mailbox_id, first, last, count)


Ident = tuple[str, str, int, int]
"""(region, account id, mailbox id, window start)."""


class TextReader:
    """Searchable texts of one mailbox for one session (one SEARCH or a few)."""

    def __init__(self, index: TextIndex, session: Session, mailbox_id: int) -> None:
        self._index = index
        self._session = session
        self._mailbox_id = mailbox_id
        self._key = session.opener.derive_key(_KEY_PURPOSE)
        self._windows: dict[int, dict[int, Entry]] = {}

    def _ident(self, window: int) -> Ident:
        return (self._session.ref.region, self._session.ref.record.id, self._mailbox_id,
                window)

    async def get(self, records: Sequence[MessageRecord]) -> dict[int, Found]:
        """uid -> (searchable text, header view), for those of ``records`` a pack
        describes (with the same blob); the others are absent (bodies to open)."""
        needed = {window_of(r.uid) for r in records}
        # Only the windows of this call stay decoded here (a search asks window by
        # window): a session holds one batch's texts, not the mailbox's.
        self._windows = {w: e for w, e in self._windows.items() if w in needed}
        windows = sorted(needed - set(self._windows))
        cold = []
        for w in windows:
            hot = self._index.hot_get(self._ident(w))
            if hot is None:
                cold.append(w)
            else:
                self._windows[w] = hot
        if cold:
            await self._load(cold)
        out: dict[int, Found] = {}
        for rec in records:
            entry = self._windows.get(window_of(rec.uid), {}).get(rec.uid)
            if entry is not None and entry[0] == rec.blob_id:
                out[rec.uid] = (entry[1], entry[2])
        return out

    async def _load(self, windows: list[int]) -> None:
        store = self._index.cells.get(self._session.ref.region).store
        account = self._session.ref.record.id
        packs = await store.get_text_packs(self._mailbox_id, windows[0],
                                           windows[-1] + PACK_SPAN - 1)
        wanted = set(windows)
        for pack in packs:
            if pack.first_uid not in wanted:
                continue
            try:
                plain = seal.open_box(self._key, pack.data, _associated(
                    account, self._mailbox_id, pack.first_uid, pack.last_uid, pack.count))
                entries = decode_pack(plain, self._index.version)
            except CryptoError as exc:
                event(LogEvent.TEXT_INDEX_DAMAGED, user=self._session.ref.record.address,
                      mailbox=self._mailbox_id, first=pack.first_uid, last=pack.last_uid,
                      reason=str(exc) or "does not open")
                continue
            if entries is None:
                continue  # made by another front-end version: made again
            self._windows[pack.first_uid] = entries
            self._index.hot_put(self._ident(pack.first_uid), entries)

    def put(self, window: int, entries: dict[int, Entry]) -> None:
        """Keep ``entries`` (every message of ``window`` now, uid -> entry) as the
        window's pack: hot at once, stored in the background."""
        if not entries:
            return
        self._windows[window] = entries
        self._index.hot_put(self._ident(window), entries)
        last = max(entries)
        data = seal.seal_box(self._key, encode_pack(entries, self._index.version), _associated(
            self._session.ref.record.id, self._mailbox_id, window, last, len(entries)))
        self._index.write(self._session.ref.region,
                          DigestPack(self._mailbox_id, window, last, len(entries), data))


class TextIndex(HotWindows[Ident, dict[int, Entry]]):
    """Text readers, the background pack writer and the process's hot windows (the
    decoded texts searched lately, shared by the owner's sessions of this process)."""

    HOT_TTL_S = 60.0

    def __init__(self, cells: Cells, version: bytes = b"", *, hot_bytes: int = HOT_BYTES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(hot_bytes, clock)
        self.cells = cells
        self.version = version
        """Names the front-end's header view encoding (packs of another are ignored)."""
        self._writing: set[asyncio.Task[None]] = set()

    def reader(self, session: Session, mailbox_id: int) -> TextReader:
        return TextReader(self, session, mailbox_id)

    def hot_size(self, value: dict[int, Entry]) -> int:
        return sum(_TEXT_OVERHEAD + len(t) + len(h) for _, t, h in value.values())

    def forget(self, session: Session, mailbox_id: int, uids: Sequence[int]) -> None:
        """Drop the windows holding ``uids`` (expunged) from the hot windows."""
        for w in sorted({window_of(u) for u in uids}):
            self.hot_drop((session.ref.region, session.ref.record.id, mailbox_id, w))

    def write(self, region: str, pack: DigestPack) -> None:
        store = self.cells.get(region).store

        async def write() -> None:
            try:
                await store.put_text_pack(pack)
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
