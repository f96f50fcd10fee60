"""The outbound queue's key pair, kept wrapped under the server key.

Queue files (``regions/*/outbound``) are sealed to the queue key; its private half is
stored only wrapped (``crypto/key_wrap.py``) in ``control/queue/queue.key.wrapped``,
under the server key ``control/server.key`` (32 random octets, 0600, made on first
use). The operator may keep the server key apart from the data: replace the file by a
symlink to one on another disk, a tmpfs filled at boot or a systemd credential, and a
copy of HOME alone no longer opens the queue.

A queue key left in the clear by an older version (``control/queue/queue.key``) is
wrapped on first start; then the plain file is overwritten with zeros, fsynced and
removed (on SSDs and copy-on-write file systems the old blocks may survive: see
docs/operating.md).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from letterlock.crypto import key_wrap, keys
from letterlock.errors import CryptoError
from letterlock.storage.durable import fsync_dir, write_atomically

log = logging.getLogger(__name__)

SERVER_KEY_FILE = "server.key"
PLAIN_FILE = "queue.key"
WRAPPED_FILE = "queue.key.wrapped"
PURPOSE = b"outbound-queue"


def load_server_key(control_dir: Path) -> bytes:
    """The server key, made (0600) on first use."""
    path = control_dir / SERVER_KEY_FILE
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        control_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = os.urandom(key_wrap.SERVER_KEY_BYTES)
        write_atomically(path, key, 0o600)
        return key
    if len(key) != key_wrap.SERVER_KEY_BYTES:
        raise CryptoError(f"{path} is not a server key ({len(key)} octets, not "
                          f"{key_wrap.SERVER_KEY_BYTES})")
    return key


def load_queue_key(control_dir: Path) -> keys.KeyPair:
    """The operator queue key pair: unwrapped from its file, or the clear one of an
    older version wrapped (and its file removed), or made on first use."""
    folder = control_dir / "queue"
    wrapped, plain = folder / WRAPPED_FILE, folder / PLAIN_FILE
    server_key = load_server_key(control_dir)
    pair: keys.KeyPair | None = None
    try:
        blob = wrapped.read_bytes()
    except FileNotFoundError:
        pass
    else:
        try:
            pair = keys.KeyPair.from_private_bytes(key_wrap.unwrap(blob, server_key, PURPOSE))
        except CryptoError as exc:
            raise CryptoError(f"the outbound queue key ({wrapped}) does not open with the "
                              f"server key ({control_dir / SERVER_KEY_FILE}): {exc}") from exc
    if plain.exists():
        old = keys.KeyPair.from_private_bytes(plain.read_bytes())
        if pair is None:
            pair = old
            write_atomically(wrapped, key_wrap.wrap(pair.private_bytes(), server_key, PURPOSE))
        elif old.key_id != pair.key_id:
            raise CryptoError(f"{plain} and {wrapped} hold different queue keys: keep the "
                              "one the queued mail was sealed to and remove the other")
        _erase(plain)
        log.warning("outbound queue key wrapped under the server key; %s removed", plain)
    if pair is None:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        pair = keys.KeyPair.generate()
        write_atomically(wrapped, key_wrap.wrap(pair.private_bytes(), server_key, PURPOSE))
    return pair


def _erase(path: Path) -> None:
    """Overwrite ``path`` with zeros (durably), then remove it (durably)."""
    size = path.stat().st_size
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, b"\0" * size, 0)
        os.fsync(fd)
    finally:
        os.close(fd)
    path.unlink()
    fsync_dir(path.parent)
