"""Small durable-file primitives shared by everything that keeps files under HOME
(blob packs, the outbound spool, DKIM and queue keys)."""

from __future__ import annotations

import os
from pathlib import Path


def fsync_dir(path: Path) -> None:
    """Make the directory entries of ``path`` (creations, renames) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: Path, data: bytes, mode: int = 0o600, *,
                     sync_dir: bool = True) -> None:
    """Replace ``path`` with ``data``: written to a temporary name, fsynced, renamed
    into place, and (unless ``sync_dir`` is off) the rename made durable. Readers
    see the old content or the new, never a part."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    if sync_dir:
        fsync_dir(path.parent)
