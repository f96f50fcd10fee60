"""Sealed data in the layouts letterlock wrote before parts were bound (format
version 1, docs/sealed-format.md), written here byte by byte -- not with letterlock's
own writer -- so tests hold the old formats even when the writers change: a data
directory made by an earlier release must keep opening."""

from __future__ import annotations

import secrets
import struct

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_HEADER = struct.Struct(">4sBBI16s32s48s7s")


def seal_v1(plaintexts: list[bytes], public: bytes, key_id: bytes,
            chunk: int = 64 * 1024) -> list[bytes]:
    """Version 1 blobs of related plaintexts (a message and its summary): one content
    key wrapped to ``public``, each chunk authenticated with the header alone."""
    eph = X25519PrivateKey.generate()
    eph_pub = eph.public_key().public_bytes_raw()
    shared = eph.exchange(X25519PublicKey.from_public_bytes(public))
    wrap = HKDF(algorithm=hashes.SHA256(), length=32, salt=eph_pub + public,
                info=b"letterlock seal v1 content-key wrap").derive(shared)
    content_key = secrets.token_bytes(32)
    wrapped = AESGCM(wrap).encrypt(b"\x00" * 12, content_key, key_id)
    out = []
    for plaintext in plaintexts:
        header = _HEADER.pack(b"LLS1", 1, 1, chunk, key_id, eph_pub, wrapped,
                              secrets.token_bytes(7))
        prefix = header[-7:]
        count = max(1, -(-len(plaintext) // chunk))
        parts = [header]
        for i in range(count):
            nonce = prefix + struct.pack(">IB", i, 1 if i == count - 1 else 0)
            parts.append(AESGCM(content_key).encrypt(
                nonce, plaintext[i * chunk : (i + 1) * chunk], header))
        out.append(b"".join(parts))
    return out


def box_v1(key: bytes, plaintext: bytes, associated: bytes) -> bytes:
    """A pack box as written before bound boxes: ``LLB1 | nonce | ciphertext``."""
    nonce = secrets.token_bytes(12)
    return b"LLB1" + nonce + AESGCM(key).encrypt(nonce, plaintext, associated)


def pack_associated_v1(kind: bytes, account_id: str, mailbox_id: int, first: int,
                       last: int, count: int) -> bytes:
    """What a digest pack (``kind`` b"digest") or text pack (b"text") was bound to."""
    return (b"letterlock " + kind + b" pack v1\x00" + account_id.encode()
            + struct.pack(">QQQQ", mailbox_id, first, last, count))
