"""Sealed blobs: a message (or any byte string) encrypted to an account public key.

Layout (all integers big-endian; docs/sealed-format.md is the reference)::

    header:
      magic      b"LLS1"
      version    u8   = 2 (1: blobs written before parts were bound, still read)
      suite      u8   = 1  (X25519 + HKDF-SHA256 key wrap, AES-256-GCM chunks)
      chunk_size u32  plaintext bytes per chunk
      key_id     16   id of the account key the content key is wrapped to
      eph_pub    32   ephemeral X25519 public key
      wrapped    48   content key under the wrap key (AES-256-GCM, tag included)
      prefix      7   random nonce prefix for the chunk stream
      part       u8   version 2 only: which part of a message (1 body, 2 summary)
      message_id 16   version 2 only: random id the message got when it was sealed
    chunks:
      each chunk_size plaintext bytes (the last may be shorter, possibly empty)
      encrypted as ciphertext+tag (16 bytes) with nonce prefix | u32 index | u8 last

The STREAM-style nonce (index and last-chunk flag) means chunks cannot be reordered,
dropped or truncated without detection, and any byte range can be read by opening
only the chunks that cover it. Every chunk also authenticates the whole header and,
from version 2, what the blob belongs to (:func:`associated_data`: the account id,
the message id and the part name), which is not stored in the blob but supplied by
the reader (:class:`Expect`): a blob moved to another account, another message or
another part's slot does not open.
"""

from __future__ import annotations

import secrets
import struct
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from functools import lru_cache
from typing import NamedTuple

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from letterlock.errors import CryptoError

MAGIC = b"LLS1"
VERSION = 2
"""The version new blobs are written in."""
LEGACY_VERSION = 1
"""Blobs written before parts were bound (no part, no message id): still read."""
SUITE_X25519_AESGCM = 1
DEFAULT_CHUNK = 64 * 1024
TAG = 16
_HEADER_V1 = struct.Struct(">4sBBI16s32s48s7s")
_HEADER = struct.Struct(">4sBBI16s32s48s7sB16s")
HEADER_SIZE = _HEADER.size
"""Header bytes of a blob written now (version 2)."""
LEGACY_HEADER_SIZE = _HEADER_V1.size
"""Header bytes of a version 1 blob (:func:`seal`)."""
MESSAGE_ID_BYTES = 16
_MESSAGE_ID_LENGTH = struct.pack(">H", MESSAGE_ID_BYTES)
_WRAP_INFO = b"letterlock seal v1 content-key wrap"
_AD_LABEL = b"letterlock bound\x00"
_WRAP_AD = b"letterlock content key\x00"

PARTS = {"body": 1, "summary": 2}
"""The parts of a message a sealed blob can be, as the header numbers them."""
_PART_NAMES = {code: name for name, code in PARTS.items()}


def associated_data(version: int, account_id: str, object_id: bytes, part: str) -> bytes:
    """The canonical encoding of what a sealed object belongs to: the format
    version, the account id, the object's id (a message id; for a pack, its mailbox
    and UID range) and the part name, each length-prefixed so no two tuples encode
    alike. Used as AEAD associated data by sealed blobs and bound boxes."""
    return (_associated_head(version, account_id) + struct.pack(">H", len(object_id))
            + object_id + _associated_tail(part))


@lru_cache(maxsize=1024)
def _associated_head(version: int, account_id: str) -> bytes:
    account = account_id.encode("utf-8")
    return _AD_LABEL + struct.pack(">BH", version, len(account)) + account


@lru_cache(maxsize=1024)
def _binding(account_id: str, part: str) -> tuple[int, bytes, bytes]:
    """(header part code, associated data before the message id, after it) of a
    message part of ``account_id``: :func:`associated_data` in two pieces, kept."""
    return (PARTS.get(part, -1), _associated_head(VERSION, account_id) + _MESSAGE_ID_LENGTH,
            _associated_tail(part))


@lru_cache(maxsize=64)
def _associated_tail(part: str) -> bytes:
    name = part.encode("ascii")
    return struct.pack(">B", len(name)) + name


class Expect(NamedTuple):
    """What a reader expects a sealed blob to be: the part of a message of account
    ``account_id``. ``message_id``, when known (from the message's summary or its
    digest), must be the blob's; ``key_id``, when given, must be the key it was
    sealed to (a clearer error than a failed tag for another account's blob)."""

    account_id: str
    part: str
    message_id: bytes | None = None
    key_id: bytes | None = None


class SealHeader(NamedTuple):
    """A sealed blob's header, parsed (a tuple: parsing one per message read is on
    the hot path of FETCH)."""

    chunk_size: int
    key_id: bytes
    eph_pub: bytes
    wrapped: bytes
    prefix: bytes
    raw: bytes
    version: int = VERSION
    part: int = 0
    """PARTS code (version 2); 0 in a version 1 blob."""
    message_id: bytes = b""
    """The message's id (version 2); empty in a version 1 blob."""

    @property
    def size(self) -> int:
        return len(self.raw)

    @property
    def part_name(self) -> str:
        return _PART_NAMES.get(self.part, f"part {self.part}")

    @classmethod
    def parse(cls, blob: bytes) -> SealHeader:
        if len(blob) >= _HEADER.size and blob[4] == VERSION:
            magic, _, suite, chunk, key_id, eph, wrapped, prefix, part, message_id = \
                _HEADER.unpack_from(blob)
            if magic == MAGIC and suite == SUITE_X25519_AESGCM and chunk > 0:
                return cls(chunk, key_id, eph, wrapped, prefix, bytes(blob[: _HEADER.size]),
                           VERSION, part, message_id)
        if len(blob) < _HEADER_V1.size:
            raise CryptoError("sealed blob is shorter than its header")
        magic, version, suite, chunk, key_id, eph, wrapped, prefix = \
            _HEADER_V1.unpack_from(blob)
        if magic != MAGIC:
            raise CryptoError("not a sealed blob")
        if version not in (VERSION, LEGACY_VERSION) or suite != SUITE_X25519_AESGCM:
            raise CryptoError(f"unsupported sealed blob version {version} suite {suite}")
        if chunk <= 0:
            raise CryptoError("sealed blob has an invalid chunk size")
        if version == VERSION:
            raise CryptoError("sealed blob is shorter than its header")
        return cls(chunk, key_id, eph, wrapped, prefix, bytes(blob[: _HEADER_V1.size]),
                   LEGACY_VERSION)

    def associated(self, expect: Expect | None) -> bytes:
        """The associated data of this blob's chunks for a reader expecting
        ``expect``. Raises CryptoError, saying what was found, when the header
        already shows the blob is not what the reader expects."""
        if self.version == LEGACY_VERSION:
            return self.raw  # written before bindings: the header alone
        if expect is None:
            raise CryptoError(f"a sealed {self.part_name} opened without saying whose")
        code, head, tail = _binding(expect.account_id, expect.part)
        if self.part != code:
            raise CryptoError(f"a sealed {self.part_name} where the {expect.part} belongs")
        if expect.key_id is not None and self.key_id != expect.key_id:
            raise CryptoError(f"the sealed {expect.part} is sealed to another account's key")
        if expect.message_id is not None and self.message_id != expect.message_id:
            raise CryptoError(f"the sealed {expect.part} of another message")
        return head + self.message_id + tail + self.raw

    def check(self, expect: Expect | None) -> None:
        """Raise CryptoError if the header shows the blob is not what ``expect``
        says (no decryption: for a caller that only takes the content key)."""
        if expect is not None:
            self.associated(expect)


def _wrap_key(shared: bytes, eph_pub: bytes, recipient_pub: bytes) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=eph_pub + recipient_pub,
                info=_WRAP_INFO)
    return hkdf.derive(shared)


def _nonce(prefix: bytes, index: int, last: bool) -> bytes:
    return prefix + struct.pack(">IB", index, 1 if last else 0)


def sealed_size(plain_len: int, chunk_size: int = DEFAULT_CHUNK,
                version: int = VERSION) -> int:
    chunks = max(1, -(-plain_len // chunk_size))
    header = HEADER_SIZE if version == VERSION else LEGACY_HEADER_SIZE
    return header + plain_len + chunks * TAG


def seal(plaintext: bytes, recipient_public: bytes, key_id: bytes,
         chunk_size: int = DEFAULT_CHUNK) -> bytes:
    """Encrypt ``plaintext`` to the X25519 public key ``recipient_public``, bound to
    nothing but that key (version 1): for objects that are no message's part (the
    outbound queue's entries, filter scripts). Messages: :func:`seal_parts`.

    Needs only the public key: the delivery path can seal but never unseal.
    """
    return _seal([(0, plaintext)], recipient_public, key_id, chunk_size, None)[0]


def seal_parts(parts: Sequence[tuple[str, bytes]], recipient_public: bytes, key_id: bytes,
               account_id: str, chunk_size: int = DEFAULT_CHUNK) -> list[bytes]:
    """Seal the parts of one message (``(part name, plaintext)``: its body and its
    summary) for account ``account_id``, under one content key and one key
    agreement, with a fresh random message id; each blob is bound (version 2) to the
    account, that id and its part, stays independently openable and has its own
    random nonce prefix, so no (key, nonce) pair repeats."""
    coded = []
    for name, plaintext in parts:
        if name not in PARTS:
            raise ValueError(f"unknown message part {name!r}")
        coded.append((PARTS[name], plaintext))
    return _seal(coded, recipient_public, key_id, chunk_size, account_id)


def _seal(parts: Sequence[tuple[int, bytes]], recipient_public: bytes, key_id: bytes,
          chunk_size: int, account_id: str | None) -> list[bytes]:
    if len(key_id) != 16:
        raise ValueError("key id must be 16 bytes")
    eph = X25519PrivateKey.generate()
    eph_pub = eph.public_key().public_bytes_raw()
    try:
        shared = eph.exchange(X25519PublicKey.from_public_bytes(recipient_public))
    except ValueError as exc:
        raise CryptoError("invalid recipient public key") from exc
    # One read of the system's random source for the content key, the message id
    # and every nonce prefix (this runs once per delivered message).
    random = secrets.token_bytes(32 + MESSAGE_ID_BYTES + 7 * len(parts))
    content_key = random[:32]
    message_id = random[32 : 32 + MESSAGE_ID_BYTES]
    wrap = _wrap_key(shared, eph_pub, recipient_public)
    # The wrap key is unique to this message, so a fixed nonce is safe here.
    wrapped = AESGCM(wrap).encrypt(b"\x00" * 12, content_key,
                                   key_id if account_id is None
                                   else _WRAP_AD + message_id + key_id)
    aead = AESGCM(content_key)
    blobs = []
    prefixes: set[bytes] = set()
    base = 32 + MESSAGE_ID_BYTES
    for i, (part, plaintext) in enumerate(parts):
        prefix = random[base + 7 * i : base + 7 + 7 * i]
        while prefix in prefixes:
            prefix = secrets.token_bytes(7)
        prefixes.add(prefix)
        if account_id is None:
            header = _HEADER_V1.pack(MAGIC, LEGACY_VERSION, SUITE_X25519_AESGCM, chunk_size,
                                     key_id, eph_pub, wrapped, prefix)
            associated = header
        else:
            header = _HEADER.pack(MAGIC, VERSION, SUITE_X25519_AESGCM, chunk_size, key_id,
                                  eph_pub, wrapped, prefix, part, message_id)
            associated = associated_data(VERSION, account_id, message_id,
                                         _PART_NAMES[part]) + header
        out = [header]
        view = memoryview(plaintext)
        count = max(1, -(-len(plaintext) // chunk_size))
        for index in range(count):
            piece = view[index * chunk_size : (index + 1) * chunk_size]
            out.append(aead.encrypt(_nonce(prefix, index, index == count - 1), piece,
                                    associated))
        blobs.append(b"".join(out))
    return blobs


class Opener:
    """Opens blobs sealed to one account key (held in a session's memory).

    Content keys recently unwrapped are remembered (a small LRU), so opening a
    message's summary and then its body costs one key agreement, not two. A caller
    that already knows a blob's content key (from a digest pack, see
    services/mail/digests.py) opens it with :func:`open_with_key`, with no key
    agreement at all.
    """

    CACHE_SIZE = 64

    def __init__(self, private_key: X25519PrivateKey, key_id: bytes) -> None:
        self._private = private_key
        self._public = private_key.public_key().public_bytes_raw()
        self.key_id = key_id
        self._keys: OrderedDict[bytes, bytes] = OrderedDict()

    @property
    def private_key(self) -> X25519PrivateKey:
        return self._private

    def derive_key(self, purpose: bytes) -> bytes:
        """A 256-bit symmetric key for ``purpose``, derived from the account's private
        key (HKDF-SHA256): only a holder of the unlocked key can compute it, and it
        stays the same across password changes and recovery (the key pair does)."""
        hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=self.key_id,
                    info=b"letterlock derived key v1 " + purpose)
        return hkdf.derive(self._private.private_bytes_raw())

    def content_key(self, blob: bytes, expect: Expect | None = None) -> bytes:
        """The raw content key of a sealed blob (or of its header alone). With
        ``expect``, a header that shows another part or message is a CryptoError."""
        header = SealHeader.parse(blob)
        header.check(expect)
        return self._content_key(header)

    def _content_key(self, header: SealHeader) -> bytes:
        if header.key_id != self.key_id:
            raise CryptoError("sealed to a different key")
        cache_key = header.eph_pub + header.wrapped
        cached = self._keys.get(cache_key)
        if cached is not None:
            self._keys.move_to_end(cache_key)
            return cached
        key = self._unwrap(header)
        self._keys[cache_key] = key
        if len(self._keys) > self.CACHE_SIZE:
            self._keys.popitem(last=False)
        return key

    def forget_keys(self) -> None:
        """Drop remembered content keys (a session going idle keeps no more than it
        needs)."""
        self._keys.clear()

    def _unwrap(self, header: SealHeader) -> bytes:
        shared = self._private.exchange(X25519PublicKey.from_public_bytes(header.eph_pub))
        wrap = _wrap_key(shared, header.eph_pub, self._public)
        try:
            return AESGCM(wrap).decrypt(b"\x00" * 12, header.wrapped,
                                        header.key_id if header.version == LEGACY_VERSION
                                        else _WRAP_AD + header.message_id + header.key_id)
        except InvalidTag as exc:
            raise CryptoError("content key failed to open") from exc

    def open(self, blob: bytes, expect: Expect | None = None) -> bytes:
        """Decrypt a whole sealed blob, verifying every chunk and the end marker. A
        blob bound to what it belongs to (version 2) opens only for the ``expect``
        it was sealed for."""
        header = SealHeader.parse(blob)
        associated = header.associated(expect)
        return b"".join(_chunks(blob, header, AESGCM(self._content_key(header)),
                                associated))

    def iter_chunks(self, blob: bytes, expect: Expect | None = None) -> Iterator[bytes]:
        header = SealHeader.parse(blob)
        associated = header.associated(expect)
        return _chunks(blob, header, AESGCM(self._content_key(header)), associated)

    def open_range(self, blob: bytes, start: int, length: int,
                   expect: Expect | None = None) -> bytes:
        """Plaintext bytes [start, start+length) opening only the chunks that cover them."""
        header = SealHeader.parse(blob)
        associated = header.associated(expect)
        aead = AESGCM(self._content_key(header))
        step = header.chunk_size + TAG
        body = memoryview(blob)[header.size :]
        count = -(-len(body) // step)
        first = start // header.chunk_size
        last = min(count - 1, (start + max(length, 1) - 1) // header.chunk_size)
        parts = []
        for index in range(first, last + 1):
            piece = body[index * step : (index + 1) * step]
            try:
                parts.append(aead.decrypt(_nonce(header.prefix, index, index == count - 1),
                                          piece, associated))
            except InvalidTag as exc:
                raise CryptoError(f"sealed chunk {index} failed authentication") from exc
        joined = b"".join(parts)
        offset = start - first * header.chunk_size
        return joined[offset : offset + length]


def open_with_key(blob: bytes, content_key: bytes, expect: Expect | None = None) -> bytes:
    """Decrypt a sealed blob whose content key is already known. Every chunk is
    authenticated under that key with the blob's header (and, from version 2, what
    ``expect`` says it belongs to) as associated data, so a blob that is not the one
    the key belongs to fails (CryptoError), as does any change."""
    header = SealHeader.parse(blob)
    return b"".join(_chunks(blob, header, AESGCM(content_key), header.associated(expect)))


def _chunks(blob: bytes, header: SealHeader, aead: AESGCM,
            associated: bytes) -> Iterator[bytes]:
    step = header.chunk_size + TAG
    body = memoryview(blob)[header.size :]
    if len(body) < TAG:
        raise CryptoError("sealed blob is truncated")
    count = -(-len(body) // step)
    if count == 1:
        try:
            yield aead.decrypt(_nonce(header.prefix, 0, True), body, associated)
        except InvalidTag as exc:
            raise CryptoError(_failed(header, 0)) from exc
        return
    for index in range(count):
        piece = body[index * step : (index + 1) * step]
        try:
            yield aead.decrypt(_nonce(header.prefix, index, index == count - 1), piece,
                               associated)
        except InvalidTag as exc:
            raise CryptoError(_failed(header, index)) from exc


def _failed(header: SealHeader, index: int) -> str:
    if header.version == LEGACY_VERSION:
        return f"sealed chunk {index} failed authentication"
    return (f"sealed {header.part_name} chunk {index} failed authentication (changed, "
            f"truncated, or of another account)")


_BOX_MAGIC = b"LLB1"


def seal_box(key: bytes, plaintext: bytes, associated: bytes) -> bytes:
    """Encrypt ``plaintext`` under a symmetric ``key`` (e.g. :meth:`Opener.derive_key`),
    bound to ``associated`` data: ``b"LLB1" | nonce (12) | AES-256-GCM ciphertext+tag``.
    For data only an unlocked session writes and reads (digest packs)."""
    nonce = secrets.token_bytes(12)
    return _BOX_MAGIC + nonce + AESGCM(key).encrypt(nonce, plaintext, associated)


def open_box(key: bytes, box: bytes, associated: bytes) -> bytes:
    """Decrypt :func:`seal_box` output. Raises CryptoError if it was changed, or was
    sealed under another key or for other associated data."""
    if len(box) < 4 + 12 + TAG or box[:4] != _BOX_MAGIC:
        raise CryptoError("not a sealed box")
    try:
        return AESGCM(key).decrypt(box[4:16], box[16:], associated)
    except InvalidTag as exc:
        raise CryptoError("sealed box failed authentication") from exc


_BOUND_BOX_MAGIC = b"LLB2"


def seal_bound_box(key: bytes, plaintext: bytes, account_id: str, object_id: bytes,
                   part: str) -> bytes:
    """Like :func:`seal_box`, bound to what the box belongs to in the canonical form
    (:func:`associated_data` of ``account_id``, ``object_id`` and ``part``):
    ``b"LLB2" | nonce (12) | AES-256-GCM ciphertext+tag``. For per-window packs
    (digest packs, text packs), whose object id names their mailbox and UID range."""
    nonce = secrets.token_bytes(12)
    return _BOUND_BOX_MAGIC + nonce + AESGCM(key).encrypt(
        nonce, plaintext, associated_data(VERSION, account_id, object_id, part))


def open_bound_box(key: bytes, box: bytes, account_id: str, object_id: bytes, part: str,
                   legacy: bytes | None = None) -> bytes:
    """Decrypt :func:`seal_bound_box` output; a box written before bindings
    (:func:`seal_box`, ``LLB1``) opens with its ``legacy`` associated data. Raises
    CryptoError if it was changed, or belongs to another account, object or part."""
    if len(box) < 4 + 12 + TAG:
        raise CryptoError(f"sealed {part} is truncated")
    if box[:4] == _BOX_MAGIC and legacy is not None:
        return open_box(key, box, legacy)
    if box[:4] != _BOUND_BOX_MAGIC:
        raise CryptoError(f"not a sealed {part}")
    try:
        return AESGCM(key).decrypt(box[4:16], box[16:],
                                   associated_data(VERSION, account_id, object_id, part))
    except InvalidTag as exc:
        raise CryptoError(f"sealed {part} failed authentication (changed, or another "
                          f"account's, mailbox's or window's)") from exc
