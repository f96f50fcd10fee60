"""Keys at rest sealed under the server key: a 256-bit secret the server reads at
start-up (``HOME/control/server.key`` by default; the operator may keep it apart).

A wrapped key is ``LLKW``, a version octet, the purpose's length and name, the id of
the server key (8 octets of its SHA-256), a 96-bit nonce, and AES-256-GCM of the key
with everything before the nonce as associated data: a wrapped key opens only for
its purpose, under the server key it names. No I/O here.
"""

from __future__ import annotations

import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from letterlock.errors import CryptoError

MAGIC = b"LLKW"
VERSION = 1
SERVER_KEY_BYTES = 32


def server_key_id(server_key: bytes) -> bytes:
    return hashlib.sha256(b"letterlock server key id\0" + server_key).digest()[:8]


def _prefix(server_key: bytes, purpose: bytes) -> bytes:
    if len(server_key) != SERVER_KEY_BYTES:
        raise CryptoError(f"a server key is {SERVER_KEY_BYTES} octets, not {len(server_key)}")
    return MAGIC + bytes([VERSION, len(purpose)]) + purpose + server_key_id(server_key)


def wrap(secret: bytes, server_key: bytes, purpose: bytes) -> bytes:
    """``secret`` sealed under ``server_key`` for ``purpose`` (e.g. b"queue")."""
    prefix = _prefix(server_key, purpose)
    nonce = os.urandom(12)
    return prefix + nonce + AESGCM(server_key).encrypt(nonce, secret, prefix)


def unwrap(blob: bytes, server_key: bytes, purpose: bytes) -> bytes:
    """The secret of ``blob``; CryptoError when it is not a key wrapped for
    ``purpose`` under this server key (another key, damage, another purpose)."""
    prefix = _prefix(server_key, purpose)
    if not blob.startswith(MAGIC):
        raise CryptoError("not a wrapped key")
    if not blob.startswith(prefix[:-8]):
        raise CryptoError(f"not a key wrapped for {purpose.decode('ascii', 'replace')}")
    if blob[len(prefix) - 8:len(prefix)] != prefix[-8:]:
        raise CryptoError("wrapped under another server key")
    nonce, sealed = blob[len(prefix):len(prefix) + 12], blob[len(prefix) + 12:]
    try:
        return AESGCM(server_key).decrypt(nonce, sealed, prefix)
    except InvalidTag as exc:
        raise CryptoError("the wrapped key is damaged") from exc
