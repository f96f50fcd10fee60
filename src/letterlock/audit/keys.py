"""The operator's Ed25519 log key: made once at init, kept in the log directory.

``log-key.pem`` (PKCS#8, mode 0600) signs tree heads and canaries; ``log-key.pub``
holds the raw public key in hex, the value auditors pin.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from letterlock.audit.verify import canonical_json, log_id_for
from letterlock.errors import AlreadyExists, NotInitialised, StorageError

PRIVATE_FILE = "log-key.pem"
PUBLIC_FILE = "log-key.pub"


def create_log_key(directory: Path) -> bytes:
    """Make the log key under ``directory``; returns the raw public key.

    Refuses (AlreadyExists) if a key is there: replacing it would orphan every head
    signed so far.
    """
    directory.mkdir(parents=True, exist_ok=True)
    private_path = directory / PRIVATE_FILE
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise AlreadyExists(f"a log key exists already in {directory}") from exc
    try:
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    tmp = directory / (PUBLIC_FILE + ".tmp")
    with open(tmp, "w", encoding="ascii") as fh:
        fh.write(public.hex() + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, directory / PUBLIC_FILE)
    _fsync_dir(directory)
    return public


def has_log_key(directory: Path) -> bool:
    return (directory / PRIVATE_FILE).is_file()


def load_private_key(directory: Path) -> Ed25519PrivateKey:
    try:
        pem = (directory / PRIVATE_FILE).read_bytes()
    except FileNotFoundError as exc:
        raise NotInitialised(f"no audit log key in {directory}") from exc
    except OSError as exc:
        raise StorageError(f"cannot read the audit log key: {exc}") from exc
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise StorageError("the audit log key is not an Ed25519 key")
    return key


def load_public_key(directory: Path) -> bytes:
    try:
        text = (directory / PUBLIC_FILE).read_text(encoding="ascii").strip()
    except FileNotFoundError as exc:
        raise NotInitialised(f"no audit log key in {directory}") from exc
    raw = bytes.fromhex(text)
    Ed25519PublicKey.from_public_bytes(raw)  # validates
    return raw


def public_bytes(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sign_statement(directory: Path, document: dict[str, Any]) -> dict[str, Any]:
    """Sign a statement (e.g. a warrant canary) with the log key.

    ``document`` must carry its own ``format``; ``log_id``, ``public_key`` and
    ``signature`` are added. The verifier checks it with ``check_signed_document``.
    """
    key = load_private_key(directory)
    public = public_bytes(key)
    signed = {k: v for k, v in document.items() if k not in ("signature", "public_key")}
    signed["log_id"] = log_id_for(public)
    signature = key.sign(canonical_json(signed))
    return {**signed, "public_key": public.hex(), "signature": signature.hex()}
