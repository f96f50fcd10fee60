"""The matter-file key: what the originals attached to legal matters are sealed to.

An order document is as sensitive as the mail it asks for, so it is kept the way mail
is (DESIGN.md, "Crypto: sealing"): sealed (crypto/seal.py) to an X25519 public key
whose private half is stored only wrapped, under a passphrase the legal team holds
(Argon2id) and under a recovery code shown once. Filing an original needs only the
public key; reading one back (``legal attachment``, an export with the originals)
needs the passphrase. Someone with the disk alone, including the operator's
administrators and anyone holding ``control/server.key``, cannot read it.

The key is the legal team's, not an account's: a target must not be able to open an
order kept secret from them, and a matter may name several targets. Files, under the
legal work directory (``HOME/control/legal``)::

    file-key.pub        the public key, hex
    file-key.pass       the private key wrapped under the passphrase (crypto/keys.py)
    file-key.recovery   the private key wrapped under the recovery code
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from letterlock.crypto.keys import (
    KdfParams,
    KeyPair,
    key_id_of,
    new_recovery_code,
    unwrap_with_password,
    unwrap_with_recovery_code,
    wrap_with_password,
    wrap_with_recovery_code,
)
from letterlock.crypto.seal import Opener
from letterlock.errors import AlreadyExists, InvalidInput, NotInitialised
from letterlock.storage.durable import write_atomically

PUBLIC_FILE = "file-key.pub"
PASSPHRASE_FILE = "file-key.pass"
RECOVERY_FILE = "file-key.recovery"
MIN_PASSPHRASE = 12
DEFAULT_KDF = KdfParams()


@dataclass(frozen=True)
class FileKey:
    """The public half: enough to seal an original."""

    public: bytes

    @property
    def key_id(self) -> bytes:
        return key_id_of(self.public)


def create_file_key(directory: Path, passphrase: str, params: KdfParams = DEFAULT_KDF) -> str:
    """Make the matter-file key; returns the recovery code (shown once). Refuses
    (AlreadyExists) when one exists: replacing it would lose every original."""
    if len(passphrase) < MIN_PASSPHRASE:
        raise InvalidInput(f"the passphrase needs at least {MIN_PASSPHRASE} characters")
    directory.mkdir(parents=True, exist_ok=True)
    if (directory / PUBLIC_FILE).exists():
        raise AlreadyExists(f"a matter-file key exists already in {directory}")
    pair = KeyPair.generate()
    code = new_recovery_code()
    write_atomically(directory / PASSPHRASE_FILE, wrap_with_password(pair, passphrase, params))
    write_atomically(directory / RECOVERY_FILE, wrap_with_recovery_code(pair, code))
    # The public key last: its presence says the key is complete.
    write_atomically(directory / PUBLIC_FILE, (pair.public.hex() + "\n").encode("ascii"))
    return code


def load_file_key(directory: Path) -> FileKey:
    try:
        text = (directory / PUBLIC_FILE).read_text(encoding="ascii").strip()
    except FileNotFoundError as exc:
        raise NotInitialised(
            "no matter-file key: make one with `letterlock legal "
            "file-key create` (the legal team keeps its passphrase)"
        ) from exc
    return FileKey(bytes.fromhex(text))


def unlock_file_key(directory: Path, passphrase: str) -> Opener:
    """The private key, opened with the passphrase (runs Argon2id: call it off the
    event loop). AuthenticationFailed on a wrong passphrase."""
    key = load_file_key(directory)
    pair = unwrap_with_password((directory / PASSPHRASE_FILE).read_bytes(), passphrase, key.key_id)
    return Opener(pair.private, pair.key_id)


def change_passphrase(
    directory: Path,
    recovery_code_or_passphrase: str,
    new: str,
    *,
    recovery: bool,
    params: KdfParams = DEFAULT_KDF,
) -> None:
    """Wrap the key under a new passphrase, opening it with the old passphrase or the
    recovery code."""
    if len(new) < MIN_PASSPHRASE:
        raise InvalidInput(f"the passphrase needs at least {MIN_PASSPHRASE} characters")
    key = load_file_key(directory)
    if recovery:
        pair = unwrap_with_recovery_code(
            (directory / RECOVERY_FILE).read_bytes(), recovery_code_or_passphrase, key.key_id
        )
    else:
        pair = unwrap_with_password(
            (directory / PASSPHRASE_FILE).read_bytes(), recovery_code_or_passphrase, key.key_id
        )
    write_atomically(directory / PASSPHRASE_FILE, wrap_with_password(pair, new, params))
