"""Sealed blobs: a message (or any byte string) encrypted to an account public key.

Layout (all integers big-endian)::

    header:
      magic      b"LLS1"
      version    u8   = 1
      suite      u8   = 1  (X25519 + HKDF-SHA256 key wrap, AES-256-GCM chunks)
      chunk_size u32  plaintext bytes per chunk
      key_id     16   id of the account key the content key is wrapped to
      eph_pub    32   ephemeral X25519 public key
      wrapped    48   content key under the wrap key (AES-256-GCM, tag included)
      prefix      7   random nonce prefix for the chunk stream
    chunks:
      each chunk_size plaintext bytes (the last may be shorter, possibly empty)
      encrypted as ciphertext+tag (16 bytes) with nonce prefix | u32 index | u8 last

The STREAM-style nonce (index and last-chunk flag) means chunks cannot be reordered,
dropped or truncated without detection, and any byte range can be read by opening
only the chunks that cover it. Every chunk also authenticates the whole header.
"""

from __future__ import annotations

import secrets
import struct
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from letterlock.errors import CryptoError

MAGIC = b"LLS1"
VERSION = 1
SUITE_X25519_AESGCM = 1
DEFAULT_CHUNK = 64 * 1024
TAG = 16
_HEADER = struct.Struct(">4sBBI16s32s48s7s")
HEADER_SIZE = _HEADER.size
_WRAP_INFO = b"letterlock seal v1 content-key wrap"


@dataclass(frozen=True)
class SealHeader:
    chunk_size: int
    key_id: bytes
    eph_pub: bytes
    wrapped: bytes
    prefix: bytes
    raw: bytes

    @classmethod
    def parse(cls, blob: bytes) -> SealHeader:
        if len(blob) < HEADER_SIZE:
            raise CryptoError("sealed blob is shorter than its header")
        magic, version, suite, chunk, key_id, eph, wrapped, prefix = _HEADER.unpack_from(blob)
        if magic != MAGIC:
            raise CryptoError("not a sealed blob")
        if version != VERSION or suite != SUITE_X25519_AESGCM:
            raise CryptoError(f"unsupported sealed blob version {version} suite {suite}")
        if chunk <= 0:
            raise CryptoError("sealed blob has an invalid chunk size")
        return cls(chunk, key_id, eph, wrapped, prefix, bytes(blob[:HEADER_SIZE]))


def _wrap_key(shared: bytes, eph_pub: bytes, recipient_pub: bytes) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=eph_pub + recipient_pub,
                info=_WRAP_INFO)
    return hkdf.derive(shared)


def _nonce(prefix: bytes, index: int, last: bool) -> bytes:
    return prefix + struct.pack(">IB", index, 1 if last else 0)


def sealed_size(plain_len: int, chunk_size: int = DEFAULT_CHUNK) -> int:
    chunks = max(1, -(-plain_len // chunk_size))
    return HEADER_SIZE + plain_len + chunks * TAG


def seal(plaintext: bytes, recipient_public: bytes, key_id: bytes,
         chunk_size: int = DEFAULT_CHUNK) -> bytes:
    """Encrypt ``plaintext`` to the X25519 public key ``recipient_public``.

    Needs only the public key: the delivery path can seal but never unseal.
    """
    return seal_many([plaintext], recipient_public, key_id, chunk_size)[0]


def seal_many(plaintexts: list[bytes], recipient_public: bytes, key_id: bytes,
              chunk_size: int = DEFAULT_CHUNK) -> list[bytes]:
    """Seal related plaintexts (a message and its summary) under one content key and
    one key agreement; each blob stays independently openable and has its own random
    nonce prefix, so no (key, nonce) pair repeats."""
    if len(key_id) != 16:
        raise ValueError("key id must be 16 bytes")
    eph = X25519PrivateKey.generate()
    eph_pub = eph.public_key().public_bytes_raw()
    try:
        shared = eph.exchange(X25519PublicKey.from_public_bytes(recipient_public))
    except ValueError as exc:
        raise CryptoError("invalid recipient public key") from exc
    # One read of the system's random source for the content key and every nonce
    # prefix (this runs once per delivered message).
    random = secrets.token_bytes(32 + 7 * len(plaintexts))
    content_key = random[:32]
    wrap = _wrap_key(shared, eph_pub, recipient_public)
    # The wrap key is unique to this message, so a fixed nonce is safe here.
    wrapped = AESGCM(wrap).encrypt(b"\x00" * 12, content_key, key_id)
    aead = AESGCM(content_key)
    blobs = []
    prefixes: set[bytes] = set()
    for i, plaintext in enumerate(plaintexts):
        prefix = random[32 + 7 * i : 39 + 7 * i]
        while prefix in prefixes:
            prefix = secrets.token_bytes(7)
        prefixes.add(prefix)
        header = _HEADER.pack(MAGIC, VERSION, SUITE_X25519_AESGCM, chunk_size, key_id,
                              eph_pub, wrapped, prefix)
        out = [header]
        view = memoryview(plaintext)
        count = max(1, -(-len(plaintext) // chunk_size))
        for index in range(count):
            piece = view[index * chunk_size : (index + 1) * chunk_size]
            out.append(aead.encrypt(_nonce(prefix, index, index == count - 1), piece, header))
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

    def content_key(self, blob: bytes) -> bytes:
        """The raw content key of a sealed blob (or of its header alone)."""
        return self._content_key(SealHeader.parse(blob))

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
            return AESGCM(wrap).decrypt(b"\x00" * 12, header.wrapped, header.key_id)
        except InvalidTag as exc:
            raise CryptoError("content key failed to open") from exc

    def open(self, blob: bytes) -> bytes:
        """Decrypt a whole sealed blob, verifying every chunk and the end marker."""
        header = SealHeader.parse(blob)
        return b"".join(_chunks(blob, header, AESGCM(self._content_key(header))))

    def iter_chunks(self, blob: bytes) -> Iterator[bytes]:
        header = SealHeader.parse(blob)
        return _chunks(blob, header, AESGCM(self._content_key(header)))

    def open_range(self, blob: bytes, start: int, length: int) -> bytes:
        """Plaintext bytes [start, start+length) opening only the chunks that cover them."""
        header = SealHeader.parse(blob)
        aead = AESGCM(self._content_key(header))
        step = header.chunk_size + TAG
        body = memoryview(blob)[HEADER_SIZE:]
        count = -(-len(body) // step)
        first = start // header.chunk_size
        last = min(count - 1, (start + max(length, 1) - 1) // header.chunk_size)
        parts = []
        for index in range(first, last + 1):
            piece = body[index * step : (index + 1) * step]
            try:
                parts.append(aead.decrypt(_nonce(header.prefix, index, index == count - 1),
                                          piece, header.raw))
            except InvalidTag as exc:
                raise CryptoError(f"sealed chunk {index} failed authentication") from exc
        joined = b"".join(parts)
        offset = start - first * header.chunk_size
        return joined[offset : offset + length]


def open_with_key(blob: bytes, content_key: bytes) -> bytes:
    """Decrypt a sealed blob whose content key is already known. Every chunk is
    authenticated under that key with the blob's header as associated data, so a blob
    that is not the one the key belongs to fails (CryptoError), as does any change."""
    header = SealHeader.parse(blob)
    return b"".join(_chunks(blob, header, AESGCM(content_key)))


def _chunks(blob: bytes, header: SealHeader, aead: AESGCM) -> Iterator[bytes]:
    step = header.chunk_size + TAG
    body = memoryview(blob)[HEADER_SIZE:]
    if len(body) < TAG:
        raise CryptoError("sealed blob is truncated")
    count = -(-len(body) // step)
    if count == 1:
        try:
            yield aead.decrypt(_nonce(header.prefix, 0, True), body, header.raw)
        except InvalidTag as exc:
            raise CryptoError("sealed chunk 0 failed authentication") from exc
        return
    for index in range(count):
        piece = body[index * step : (index + 1) * step]
        try:
            yield aead.decrypt(_nonce(header.prefix, index, index == count - 1), piece,
                               header.raw)
        except InvalidTag as exc:
            raise CryptoError(f"sealed chunk {index} failed authentication") from exc


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
