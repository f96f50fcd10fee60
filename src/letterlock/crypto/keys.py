"""Account key pairs and how their private halves are locked.

An account owns one X25519 key pair. The private key is never stored in the clear:
it is kept twice, each copy AEAD-encrypted (AES-256-GCM):

* under a key derived from the user's password with Argon2id, and
* under a key derived from a random recovery code shown once at account creation.

A wrapped key blob is self-describing::

    b"LLK1" | purpose (1 byte: 1 password, 2 recovery) | kdf params (m KiB u32,
    t u32, p u32) | salt (16) | nonce (12) | ciphertext(32) + tag(16)

The key id (16 bytes) and the purpose are bound in as associated data, so a blob cannot
be swapped between accounts or purposes without detection.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import struct
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from letterlock.errors import AuthenticationFailed, CryptoError, InvalidInput

_MAGIC = b"LLK1"
_PURPOSE_PASSWORD = 1
_PURPOSE_RECOVERY = 2
_HEADER = struct.Struct(">4sBIII16s12s")


@dataclass(frozen=True)
class KdfParams:
    """Argon2id cost: memory in KiB, passes (iterations) and lanes (parallelism)."""

    memory_kib: int = 65536
    iterations: int = 3
    lanes: int = 1


KekSource = Callable[[bytes, "KdfParams"], bytes]
"""Derives the key-encryption key from a blob's salt and KDF parameters."""


def key_id_of(public_key: bytes) -> bytes:
    """The 16-byte identifier of an account public key (truncated SHA-256)."""
    return hashlib.sha256(b"letterlock key id\x00" + public_key).digest()[:16]


@dataclass(frozen=True)
class KeyPair:
    private: X25519PrivateKey
    public: bytes

    @property
    def key_id(self) -> bytes:
        return key_id_of(self.public)

    @classmethod
    def generate(cls) -> KeyPair:
        private = X25519PrivateKey.generate()
        return cls(private, private.public_key().public_bytes_raw())

    @classmethod
    def from_private_bytes(cls, raw: bytes) -> KeyPair:
        private = X25519PrivateKey.from_private_bytes(raw)
        return cls(private, private.public_key().public_bytes_raw())

    def private_bytes(self) -> bytes:
        return self.private.private_bytes_raw()


def public_key_from_bytes(raw: bytes) -> X25519PublicKey:
    try:
        return X25519PublicKey.from_public_bytes(raw)
    except ValueError as exc:
        raise CryptoError("malformed public key") from exc


def new_recovery_code() -> str:
    """A 160-bit random code, in eight groups of five base32 characters."""
    raw = base64.b32encode(secrets.token_bytes(25)).decode("ascii")
    return "-".join(raw[i : i + 5] for i in range(0, 40, 5))


def normalise_recovery_code(code: str) -> str:
    """Accept any case and any separators the user typed. Raises InvalidInput for a
    letter or digit outside ASCII: no recovery code has one (and the key derivation
    takes ASCII)."""
    cleaned = "".join(ch for ch in code.upper() if ch.isalnum())
    if not cleaned.isascii():
        raise InvalidInput("a recovery code has only the letters A-Z and the digits 2-7")
    return "-".join(cleaned[i : i + 5] for i in range(0, len(cleaned), 5))


def _argon2(password: str, salt: bytes, params: KdfParams) -> bytes:
    kdf = Argon2id(
        salt=salt,
        length=32,
        iterations=params.iterations,
        lanes=params.lanes,
        memory_cost=params.memory_kib,
    )
    return kdf.derive(password.encode("utf-8"))


def _recovery_kek(code: str, salt: bytes) -> bytes:
    # The code carries 160 bits of entropy, so a fast KDF is enough.
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=b"letterlock recovery v1")
    return hkdf.derive(normalise_recovery_code(code).encode("ascii"))


def _wrap(purpose: int, kek: bytes, salt: bytes, params: KdfParams, kp: KeyPair) -> bytes:
    nonce = secrets.token_bytes(12)
    header = _HEADER.pack(
        _MAGIC, purpose, params.memory_kib, params.iterations, params.lanes, salt, nonce
    )
    sealed = AESGCM(kek).encrypt(nonce, kp.private_bytes(), header + kp.key_id)
    return header + sealed


def _unwrap(blob: bytes, purpose: int, kek_for: KekSource, key_id: bytes) -> KeyPair:
    if len(blob) != _HEADER.size + 48:
        raise CryptoError("wrapped key has the wrong length")
    magic, got_purpose, m, t, p, salt, nonce = _HEADER.unpack_from(blob)
    if magic != _MAGIC or got_purpose != purpose:
        raise CryptoError("not a wrapped key of the expected kind")
    kek = kek_for(salt, KdfParams(m, t, p))
    try:
        raw = AESGCM(kek).decrypt(nonce, blob[_HEADER.size :], blob[: _HEADER.size] + key_id)
    except InvalidTag as exc:
        raise AuthenticationFailed("wrong password or recovery code") from exc
    kp = KeyPair.from_private_bytes(raw)
    if kp.key_id != key_id:
        raise CryptoError("wrapped key does not match its key id")
    return kp


def wrap_with_password(kp: KeyPair, password: str, params: KdfParams) -> bytes:
    """Lock the private key under ``password`` (Argon2id with ``params``)."""
    salt = secrets.token_bytes(16)
    return _wrap(_PURPOSE_PASSWORD, _argon2(password, salt, params), salt, params, kp)


def unwrap_with_password(blob: bytes, password: str, key_id: bytes) -> KeyPair:
    """Open a password-wrapped key. Raises AuthenticationFailed on a wrong password.

    This runs Argon2id: call it off the event loop, with bounded concurrency.
    """
    return _unwrap(blob, _PURPOSE_PASSWORD, lambda s, p: _argon2(password, s, p), key_id)


def wrap_with_recovery_code(kp: KeyPair, code: str) -> bytes:
    salt = secrets.token_bytes(16)
    return _wrap(_PURPOSE_RECOVERY, _recovery_kek(code, salt), salt, KdfParams(0, 0, 0), kp)


def unwrap_with_recovery_code(blob: bytes, code: str, key_id: bytes) -> KeyPair:
    return _unwrap(blob, _PURPOSE_RECOVERY, lambda s, _p: _recovery_kek(code, s), key_id)
