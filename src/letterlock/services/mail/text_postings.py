"""Text postings: a new message's searchable text, sealed at delivery to the account's
public key, until a session holding the key merges it into the sealed text index
(services/mail/text_index.py).

Mail arrives without the owner's key, so the text index cannot be written then. What
SEARCH BODY/TEXT will compare is made where the message is sealed (the seal helper
processes, services/mail/sealing.py): the *searchable body text*
(:func:`text_index.body_text`) and the raw header section; a reader computes the
front-end's header view from it (``Views.search``, the function the digests' views
come with). A posting can also carry that view made at delivery (``HeaderView``:
a seal pool given one has its helpers import it by name, so no service imports a
front-end), and a reader of the same front-end version then uses it; the mail
service does not ask for it, as it cost ~25% more CPU per delivered message. That
plaintext is sealed under a **posting key**:

- a process makes, per account, an ephemeral X25519 key pair; its shared secret with
  the account's public key, through HKDF-SHA256 (salt: both public keys), is an
  AES-256-GCM key;
- the private half is used for that one agreement and dropped; the AES key lives
  only in this process's memory until the key is rotated (every ``ROTATE_S``
  seconds or ``ROTATE_POSTINGS`` postings, whichever comes first) and is then
  dropped, so nothing on the server can open the postings sealed under an older
  one (while it is current, whoever reads this process's memory also sees the
  mail arriving in clear);
- the public half is stored beside each posting; the owner's private key derives
  the same AES key, one X25519 per posting key, then AES only.

Each posting is a bound box (crypto/seal.py ``LLB2``, docs/sealed-format.md) naming
the account, the object (mailbox id and the random message id the message's sealed
parts carry) and the part ``text-posting``: a posting moved to another account,
mailbox or message does not open.

Postings are stored with their message in the same append (storage
``text_postings``), and removed in the same transaction as the message (expunge,
MOVE, mailbox and account deletion; a region move leaves them behind with the old
cell's rows, and the new cell's readers open the bodies). Storing a posting is part
of the delivery transaction (a message is never stored without the posting made
for it, nor a posting without its message); making one is best-effort: a message
without a posting (too much text, text that could not be made, copies, or stored by
an older release) is indexed by opening its body, as before. A reader that meets a
window of messages with no text pack, or messages newer than the pack, merges the
window's postings into a new pack and deletes them (search.py,
text_index.TextReader).
"""

from __future__ import annotations

import importlib
import logging
import struct
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from letterlock.crypto import seal
from letterlock.errors import CryptoError
from letterlock.mime import structure
from letterlock.storage.models import TextPosting

log = logging.getLogger("letterlock.text_postings")

PART = "text-posting"
"""The part name a posting is bound to (seal.associated_data)."""
ROTATE_S = 600.0
ROTATE_POSTINGS = 4096
KEYS_MAX = 4096
"""Accounts whose current posting key a process keeps (the oldest is dropped)."""
MAX_TEXT = 16 * 1024
"""A message with more searchable text than this gets no posting (its body is
opened by the first BODY/TEXT search that meets it): a 64 KiB posting, written
to the database's journal and again at its checkpoint, made a 64 KiB delivery cost
~50% more CPU; most mail's text is far shorter."""
_INFO = b"letterlock text posting key v1"
_LENGTH = struct.Struct(">I")
_RAW, _ZLIB = b"\x00", b"\x01"

class Posted(NamedTuple):
    """What a posting holds."""

    text: str
    """The searchable body text."""
    header: bytes
    """The raw header section."""
    version: bytes = b""
    """The front-end view version ``view`` was made by (b"": none made)."""
    view: bytes = b""
    """The front-end's header view of ``header`` (HeaderView), made at delivery."""


HeaderView = tuple[bytes, Callable[[bytes], bytes]]
"""(version, function): the front-end's header view (digests.Views.search) as the
seal helpers make it, so that a reader need not parse each header again."""


def encode(posted: Posted) -> bytes:
    """``_RAW | u32 n | text (UTF-8) | u32 n | header | u8 n | version | view``. Not
    compressed: deflate cost more CPU per delivery (its set-up alone ~30 us on a 1 KiB
    message, ~400 us on 64 KiB) than the bytes it saved cost the disk
    (:func:`decode` still reads ``_ZLIB | deflate(...)``)."""
    data = posted.text.encode("utf-8", "surrogatepass")
    return b"".join((
        _RAW, _LENGTH.pack(len(data)), data, _LENGTH.pack(len(posted.header)),
        posted.header, struct.pack(">B", len(posted.version)), posted.version, posted.view))


def decode(plain: bytes) -> Posted:
    """Raises CryptoError if ``plain`` (authenticated) is malformed."""
    try:
        if plain[:1] == _ZLIB:
            plain = zlib.decompress(plain[1:])
        elif plain[:1] == _RAW:
            plain = plain[1:]
        else:
            raise CryptoError("unknown text posting format")
        (n,) = _LENGTH.unpack_from(plain)
        text = plain[4 : 4 + n].decode("utf-8", "surrogatepass")
        (h,) = _LENGTH.unpack_from(plain, 4 + n)
        pos = 8 + n + h
        header = plain[8 + n : pos]
        v = plain[pos]
        if pos + 1 + v > len(plain):
            raise CryptoError("malformed text posting")
        return Posted(text, header, plain[pos + 1 : pos + 1 + v], plain[pos + 1 + v :])
    except (struct.error, UnicodeDecodeError, zlib.error, IndexError) as exc:
        raise CryptoError("malformed text posting") from exc


def make(raw: bytes, header: bytes, tree: structure.Part | None,
         body_text: Callable[[bytes, structure.Part | None], str],
         header_view: HeaderView | None = None) -> bytes:
    """The posting plaintext of ``raw`` (b"" for none: too much text), with the header
    view when ``header_view`` is given."""
    text = body_text(raw, tree)
    if len(text) > MAX_TEXT:
        return b""
    if header_view is None:
        return encode(Posted(text, header))
    return encode(Posted(text, header, header_view[0], header_view[1](header)))


def reference(header_view: HeaderView) -> list[str]:
    """Arguments naming ``header_view`` for a seal helper process ([] if its
    function cannot be imported by name: the helpers then make no view)."""
    version, function = header_view
    name = f"{function.__module__}:{function.__qualname__}"
    if "." in function.__qualname__ or "<" in name:
        return []
    return [name, version.hex()]


def resolve(args: Sequence[str]) -> HeaderView | None:
    """The header view named by :func:`reference`'s arguments (imported: the
    composition root chose it, this module names no front-end)."""
    if len(args) != 2:
        return None
    module, _, name = args[0].partition(":")
    function = getattr(importlib.import_module(module), name)
    return bytes.fromhex(args[1]), function


def object_id(mailbox_id: int, message_id: bytes) -> bytes:
    """What a posting is bound to beside its account: its mailbox and message."""
    return struct.pack(">Q", mailbox_id) + message_id


def _aes_key(shared: bytes, posting_public: bytes, account_public: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=posting_public + account_public,
                info=_INFO).derive(shared)


@dataclass
class _PostingKey:
    public: bytes
    key: bytes
    made: float
    used: int = 0


class PostingSealer:
    """Seals postings for any account of this process under its current posting key
    (public-key only: it can seal but never open)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._keys: OrderedDict[tuple[str, bytes], _PostingKey] = OrderedDict()

    def _current(self, account_id: str, account_public: bytes) -> _PostingKey:
        slot = (account_id, account_public)
        now = self._clock()
        current = self._keys.get(slot)
        if current is None or current.used >= ROTATE_POSTINGS \
                or now - current.made >= ROTATE_S:
            eph = X25519PrivateKey.generate()
            public = eph.public_key().public_bytes_raw()
            shared = eph.exchange(X25519PublicKey.from_public_bytes(account_public))
            # ``eph`` goes out of scope here: only the AES key and the public half stay.
            current = _PostingKey(public, _aes_key(shared, public, account_public), now)
            self._keys[slot] = current
            if len(self._keys) > KEYS_MAX:
                self._keys.popitem(last=False)
        self._keys.move_to_end(slot)
        current.used += 1
        return current

    def seal(self, account_id: str, account_public: bytes, mailbox_id: int,
             message_id: bytes, plain: bytes) -> tuple[bytes, bytes]:
        """(posting key's public half, sealed posting) of ``plain``."""
        current = self._current(account_id, account_public)
        return current.public, seal.seal_bound_box(
            current.key, plain, account_id, object_id(mailbox_id, message_id), PART)

    def seal_for(self, account_id: str, account_public: bytes, mailbox_id: int,
                 sealed_summary: bytes, plain: bytes) -> tuple[bytes, bytes]:
        """(key, posting) for a message of ``mailbox_id`` whose sealed summary is
        ``sealed_summary`` (it names the message id), or (b"", b"") without
        ``plain``."""
        if not plain:
            return b"", b""
        message_id = seal.SealHeader.parse(sealed_summary).message_id
        return self.seal(account_id, account_public, mailbox_id, message_id, plain)

    def forget(self) -> None:
        """Drop every posting key (tests; a process stopping)."""
        self._keys.clear()


def open_postings(opener: seal.Opener, account_id: str, postings: Sequence[TextPosting],
                  message_ids: dict[int, bytes],
                  damaged: Callable[[TextPosting, str], None]) -> dict[int, Posted]:
    """uid -> (body text, header) of the ``postings`` that open as the posting of
    their mailbox's message ``message_ids[uid]``; each other one is passed to
    ``damaged`` with the reason (it is ignored: its body is opened instead)."""
    account_public = opener.private_key.public_key().public_bytes_raw()
    keys: dict[bytes, bytes | None] = {}
    out: dict[int, Posted] = {}
    for posting in postings:
        message_id = message_ids.get(posting.uid)
        if message_id is None:
            continue  # expunged meanwhile, or a message of an older format
        key = keys.get(posting.key, b"")
        if key == b"":
            try:
                shared = opener.private_key.exchange(
                    X25519PublicKey.from_public_bytes(posting.key))
                key = _aes_key(shared, posting.key, account_public)
            except ValueError:
                key = None
            keys[posting.key] = key
        if key is None:
            damaged(posting, "posting key is not a public key")
            continue
        try:
            plain = seal.open_bound_box(key, posting.data, account_id,
                                        object_id(posting.mailbox_id, message_id), PART)
            out[posting.uid] = decode(plain)
        except CryptoError as exc:
            damaged(posting, str(exc) or "does not open")
    return out
