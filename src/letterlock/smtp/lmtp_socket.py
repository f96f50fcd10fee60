"""The Unix socket of the LMTP listener (``smtp.lmtp_socket``): where a front MTA on
the same machine hands over mail (Postfix: ``lmtp:unix:PATH``).

Who may connect is decided by the file system, as for any Unix socket: it is made
mode 0660, so the server's own user and group may write to it (connect), nobody
else; an operator lets the MTA in by putting its user in the server's group. A
socket file left by a server that died is replaced; one another running server
answers on is not.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
from pathlib import Path

from letterlock.errors import ConfigError

MODE = 0o660
PATH_LIMIT = 107
"""Longest socket path in bytes (``sun_path`` holds 108, with the terminating NUL)."""


def socket_path(home: Path, setting: str) -> Path | None:
    """The socket ``smtp.lmtp_socket`` names: None for "" (no socket), a relative
    path under ``home``."""
    if not setting:
        return None
    path = Path(setting)
    return path if path.is_absolute() else home / path


def fits(path: Path) -> bool:
    """Whether ``path`` is short enough to be a socket address."""
    return len(os.fsencode(path)) <= PATH_LIMIT


def open_socket(path: Path) -> socket.socket:
    """A bound, not yet listening, stream socket at ``path`` (mode 0660). Raises
    ConfigError when the path is too long, its directory is missing, or another
    process listens there. Blocking (a probe connect): call off the event loop."""
    if not fits(path):
        raise ConfigError(f"smtp.lmtp_socket: {path} is longer than a Unix socket path "
                          f"may be ({PATH_LIMIT} bytes); choose a shorter one")
    _remove_stale(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(os.fspath(path))
        # Before listen(): until then a connect is refused whatever the mode is.
        os.chmod(path, MODE)
    except FileNotFoundError as exc:
        sock.close()
        raise ConfigError(f"smtp.lmtp_socket: directory {path.parent} does not exist") \
            from exc
    except OSError as exc:
        sock.close()
        raise ConfigError(f"smtp.lmtp_socket: cannot create {path}: {exc}") from exc
    return sock


def remove_socket(path: Path, sock_inode: int) -> None:
    """Remove the socket file at ``path`` if it is still the one made here (another
    server may have replaced it since)."""
    with contextlib.suppress(OSError):
        if os.lstat(path).st_ino == sock_inode:
            path.unlink()


def _remove_stale(path: Path) -> None:
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise ConfigError(f"smtp.lmtp_socket: {path} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(os.fspath(path))
    except (ConnectionRefusedError, FileNotFoundError):
        try:
            path.unlink(missing_ok=True)  # nobody listens: left by a server that died
        except OSError as exc:
            raise ConfigError(f"smtp.lmtp_socket: cannot replace {path}: {exc}") from exc
        return
    except OSError as exc:
        raise ConfigError(f"smtp.lmtp_socket: cannot check {path}: {exc}") from exc
    finally:
        probe.close()
    raise ConfigError(f"smtp.lmtp_socket: another server is listening on {path}")
