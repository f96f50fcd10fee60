"""The login key cache: a client that logs in again soon does not pay Argon2id again.

After a full login (Argon2id over the password unlocked the account key), an entry is
kept per address, in memory only, holding:

* the **binding**: SHA-256 over the account record it was made from (region, record
  id, key id, password-wrapped key blob, custody and OpenPGP certificate). A password
  change or recovery re-wraps the key under a fresh salt, an end-to-end switch
  changes custody, a move changes region, a delete-and-recreate changes the id: any of
  them changes the binding, so an entry made before cannot match the record read
  fresh from the cell at the next login, in this process or any other;
* the private key, AES-256-GCM-encrypted under ``k = scrypt(password, salt)`` with
  the address and binding as associated data (the clear key is never kept here: only
  sessions hold it), and the salt and nonce;
* a monotonic expiry (``crypto.key_cache_ttl_s`` after the full login; never
  extended by a hit) and a count of remaining uses (``crypto.key_cache_max_uses``).

A login that finds a matching, live entry whose AEAD opens with ``k(password)``, and
whose opened private key matches the record's key id, is served without Argon2id.
Anything else (no entry, wrong password, changed record) takes the full path, so a
wrong password costs what it always did and the cache offers no faster way to guess.
Every login runs the fast KDF once, entry or not, so its timing does not tell whether
the account logged in recently.

**The fast KDF**: ``hashlib.scrypt`` with N=2^9, r=8, p=1 (512 KiB, 32-byte output):
1.02 ms of CPU measured on the 2-core build machine, where PBKDF2-HMAC-SHA256 needs
~5,000 iterations (1.13 ms) for the same time and Argon2id at the default settings
takes 154 ms. scrypt because at equal time it is memory-hard: each guess against a
stolen entry needs 512 KiB, where PBKDF2 parallelises freely on GPUs. It releases
the GIL, and runs in two threads of the cache's own. It is not Argon2id's 64 MiB: an
attacker who reads this process's memory can guess the password of a cached account
~150x faster than against the stored record, for as long as the entry lives.
docs/operating.md states this trade-off.

**Between processes** (several IMAP processes), an optional bus carries entries as
kind ``b"key"`` (the encrypted entry, never a clear key; see :func:`encode_entry`)
and drops as kind ``b"keydrop"``. A received entry is stored as if made here, with
its expiry and uses capped by this process's own settings; the binding and key-id
checks make a stale or forged entry useless (opening one needs the real private key
encrypted under the right password).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import struct
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol, TypeVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from letterlock.crypto import keys
from letterlock.errors import CryptoError, InvalidInput
from letterlock.storage.models import AccountRecord

log = logging.getLogger("letterlock.accounts")
T = TypeVar("T")

SCRYPT_N = 2**9
SCRYPT_R = 8
SCRYPT_P = 1
SCRYPT_MAXMEM = 2 * 128 * SCRYPT_R * SCRYPT_N
"""scrypt needs 128*r*N bytes; OpenSSL wants the limit a little above that."""

KIND_KEY = b"key"
KIND_DROP = b"keydrop"
WIRE_VERSION = 1
"""Version 1: the fast KDF above, AES-256-GCM, the binding of :func:`binding_of`.
A process that sees another version ignores the message."""
_WIRE = struct.Struct(">BII32s16s12s48s")
"""version, milliseconds left, uses left, binding, salt, nonce, sealed key + tag;
the address (UTF-8) follows."""
_SEALED_LEN = 32 + 16
MAX_ADDRESS_BYTES = 320


class Bus(Protocol):
    """What the cache needs of the bus between server processes
    (letterlock.services.peers.PeerBus provides it)."""

    def subscribe(self, kind: bytes, handler: Callable[[bytes], None]) -> None: ...

    def broadcast(self, kind: bytes, payload: bytes) -> None: ...

    def drain(self) -> None:
        """Handle now every message already waiting for this process."""
        ...


@dataclass(frozen=True)
class KeyCacheSettings:
    ttl_s: float = 3600.0
    """Seconds an entry lives after the full login that made it; 0 disables."""
    max_uses: int = 10_000
    """Logins one entry may serve."""
    max_entries: int = 10_000
    """Entries kept; the oldest is evicted first."""


@dataclass(slots=True)
class _Entry:
    binding: bytes
    salt: bytes
    nonce: bytes
    sealed: bytearray
    expires: float
    uses: int

    def wipe(self) -> None:
        self.sealed[:] = bytes(len(self.sealed))
        self.uses = 0


@dataclass(frozen=True)
class WireEntry:
    """An entry as it travels between processes."""

    address: str
    binding: bytes
    salt: bytes
    nonce: bytes
    sealed: bytes
    ttl_ms: int
    uses: int


def binding_of(region: str, record: AccountRecord) -> bytes:
    """What an entry is bound to: the parts of the account record that change with a
    password change, recovery, end-to-end switch, move or re-creation."""
    digest = hashlib.sha256(b"letterlock key cache binding v1\x00")
    for part in (region.encode(), record.id.encode(), record.key_id,
                 record.wrapped_by_password, record.custody.encode(), record.openpgp_cert):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.digest()


def _associated(address: str, binding: bytes) -> bytes:
    raw = address.encode()
    return b"letterlock key cache v1\x00" + len(raw).to_bytes(2, "big") + raw + binding


def _fast_kdf(password: str, salt: bytes) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P,
                          maxmem=SCRYPT_MAXMEM, dklen=32)


def _seal(password: str, salt: bytes, nonce: bytes, private: bytes, ad: bytes) -> bytes:
    return AESGCM(_fast_kdf(password, salt)).encrypt(nonce, private, ad)


def _open(password: str, salt: bytes, nonce: bytes, sealed: bytearray | None,
          ad: bytes) -> bytes | None:
    kek = _fast_kdf(password, salt)
    if sealed is None:
        return None
    try:
        return AESGCM(kek).decrypt(nonce, sealed, ad)
    except InvalidTag:
        return None


def encode_entry(entry: WireEntry) -> bytes:
    """The wire form of an entry: a version byte, then fixed fields, then the address."""
    return _WIRE.pack(WIRE_VERSION, entry.ttl_ms, entry.uses, entry.binding, entry.salt,
                      entry.nonce, entry.sealed) + entry.address.encode()


def decode_entry(payload: bytes) -> WireEntry:
    """Parse :func:`encode_entry`'s output. Raises InvalidInput."""
    if len(payload) <= _WIRE.size or payload[0] != WIRE_VERSION:
        raise InvalidInput("not a version 1 key cache entry")
    _, ttl_ms, uses, binding, salt, nonce, sealed = _WIRE.unpack_from(payload)
    return WireEntry(_decode_address(payload[_WIRE.size:]), binding, salt, nonce, sealed,
                     ttl_ms, uses)


def encode_drop(address: str) -> bytes:
    return bytes([WIRE_VERSION]) + address.encode()


def decode_drop(payload: bytes) -> str:
    """Parse :func:`encode_drop`'s output. Raises InvalidInput."""
    if len(payload) < 2 or payload[0] != WIRE_VERSION:
        raise InvalidInput("not a version 1 key cache drop")
    return _decode_address(payload[1:])


def _decode_address(raw: bytes) -> str:
    if not raw or len(raw) > MAX_ADDRESS_BYTES:
        raise InvalidInput("bad address in a key cache message")
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise InvalidInput("bad address in a key cache message") from None


class KeyCache:
    """Unlocked-recently account keys, each encrypted under a fast KDF of its password.
    Use from one event loop; the KDF runs in two threads of its own."""

    def __init__(self, settings: KeyCacheSettings, *, bus: Bus | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        """address -> entry, oldest first."""
        self._pool: ThreadPoolExecutor | None = None
        self._bus: Bus | None = None
        if bus is not None:
            self.attach(bus)

    @property
    def enabled(self) -> bool:
        return self.settings.ttl_s > 0 and self.settings.max_uses > 0 \
            and self.settings.max_entries > 0

    def __len__(self) -> int:
        return len(self._entries)

    def current(self, address: str) -> object | None:
        """A marker of ``address``'s entry now: it changes whenever an entry is stored
        (so a login that missed can tell a newer entry is worth trying)."""
        return self._entries.get(address)

    def attach(self, bus: Bus) -> None:
        """Share entries and drops with the other server processes over ``bus``."""
        self._bus = bus
        bus.subscribe(KIND_KEY, self._received_entry)
        bus.subscribe(KIND_DROP, self._received_drop)

    async def unlock(self, address: str, binding: bytes, password: str,
                     key_id: bytes) -> keys.KeyPair | None:
        """The account key if a live entry made from the record with ``binding``
        opens with ``password`` and holds the key ``key_id``; None otherwise (then
        the caller runs the full check). Costs one fast KDF either way."""
        if not self.enabled:
            return None
        if self._bus is not None:
            # An entry made by a login that just ended in another process (a client
            # reconnecting to a different process) may be waiting in the socket.
            self._bus.drain()
        entry = self._live(address)
        usable = entry is not None and hmac.compare_digest(entry.binding, binding)
        ad = _associated(address, binding)
        if entry is not None and usable:
            salt, nonce, sealed = entry.salt, entry.nonce, bytearray(entry.sealed)
            raw = await self._run(lambda: _open(password, salt, nonce, sealed, ad))
        else:
            # The same work as a hit, so that timing does not tell whether the
            # account logged in recently.
            await self._run(lambda: _open(password, secrets.token_bytes(16), b"", None, ad))
            return None
        # A drop, replacement or expiry while the KDF ran wins over this hit.
        if raw is None or self._entries.get(address) is not entry or self._live(address) is None:
            return None
        try:
            pair = keys.KeyPair.from_private_bytes(raw)
        except ValueError:
            pair = None
        if pair is None or pair.key_id != key_id:
            # Not the account's key (a forged entry): useless, and a sign of trouble.
            log.warning("key cache: entry for %s does not hold the account key", address)
            self._discard(address)
            return None
        entry.uses -= 1
        if entry.uses <= 0:
            self._discard(address)
        return pair

    async def miss(self, password: str) -> None:
        """The work of a login that finds no entry (for an unknown address)."""
        if self.enabled:
            await self._run(lambda: _open(password, secrets.token_bytes(16), b"", None, b""))

    async def store(self, address: str, binding: bytes, password: str,
                    pair: keys.KeyPair) -> None:
        """Keep ``pair`` for ``address`` after a full login with ``password`` against
        the record with ``binding``, and tell the other processes."""
        if not self.enabled:
            return
        salt, nonce = secrets.token_bytes(16), secrets.token_bytes(12)
        private, ad = pair.private_bytes(), _associated(address, binding)
        sealed = await self._run(lambda: _seal(password, salt, nonce, private, ad))
        ttl, uses = self.settings.ttl_s, self.settings.max_uses
        self._put(address, _Entry(binding, salt, nonce, bytearray(sealed),
                                  self._clock() + ttl, uses))
        if self._bus is not None:
            self._bus.broadcast(KIND_KEY, encode_entry(WireEntry(
                address, binding, salt, nonce, sealed, int(ttl * 1000), uses)))

    def drop(self, address: str) -> None:
        """Forget ``address``'s entry here and in the other processes."""
        self._discard(address)
        if self._bus is not None:
            self._bus.broadcast(KIND_DROP, encode_drop(address))

    def clear(self) -> None:
        """Forget everything (shutdown), overwriting the encrypted keys."""
        for entry in self._entries.values():
            entry.wipe()
        self._entries.clear()

    def close(self) -> None:
        self.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def import_entry(self, entry: WireEntry) -> None:
        """Store an entry made by another process (capped by this one's settings)."""
        if not self.enabled or len(entry.sealed) != _SEALED_LEN:
            return
        ttl_s = min(entry.ttl_ms / 1000, self.settings.ttl_s)
        uses = min(entry.uses, self.settings.max_uses)
        if ttl_s <= 0 or uses <= 0:
            return
        self._put(entry.address, _Entry(entry.binding, entry.salt, entry.nonce,
                                        bytearray(entry.sealed), self._clock() + ttl_s, uses))

    # -- inside ------------------------------------------------------------------------
    def _live(self, address: str) -> _Entry | None:
        entry = self._entries.get(address)
        if entry is None:
            return None
        if entry.expires <= self._clock() or entry.uses <= 0:
            self._discard(address)
            return None
        return entry

    def _put(self, address: str, entry: _Entry) -> None:
        self._discard(address)
        self._entries[address] = entry
        while len(self._entries) > self.settings.max_entries:
            _, oldest = self._entries.popitem(last=False)
            oldest.wipe()

    def _discard(self, address: str) -> None:
        entry = self._entries.pop(address, None)
        if entry is not None:
            entry.wipe()

    async def _run(self, func: Callable[[], T]) -> T:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="keycache")
        return await asyncio.get_running_loop().run_in_executor(self._pool, func)

    def _received_entry(self, payload: bytes) -> None:
        try:
            self.import_entry(decode_entry(payload))
        except (InvalidInput, CryptoError) as exc:
            log.warning("key cache: ignored an entry from a peer: %s", exc)

    def _received_drop(self, payload: bytes) -> None:
        try:
            self._discard(decode_drop(payload))
        except InvalidInput as exc:
            log.warning("key cache: ignored a drop from a peer: %s", exc)
