"""What lies after the signed events of ``events.jsonl``, and how it is judged.

Shared by the writer, which takes in only the events of its own unfinished append
(see ``store``), and by the operator's explicit repair (``recovery``). Bytes taken out
of ``events.jsonl`` are never deleted: they go to ``set-aside/``, named after the
signed size they followed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from letterlock.audit import records, tree
from letterlock.audit.layout import SET_ASIDE_DIR
from letterlock.audit.verify import canonical_json, leaf_hash
from letterlock.errors import InvalidInput


def well_formed(lines: Sequence[bytes], first_index: int) -> bool:
    """Whether each line is a canonical record of this log, numbered on from
    ``first_index``."""
    for offset, line in enumerate(lines):
        try:
            rec = records.decode(line)
        except InvalidInput:
            return False
        if rec.index != first_index + offset or canonical_json(json.loads(line)) != line:
            return False
    return True


def root_after(stack: Sequence[tuple[int, bytes]], leaves: Sequence[bytes]) -> bytes:
    """The root of the tree whose right edge is ``stack`` once ``leaves`` are added."""
    grown = list(stack)
    for leaf in leaves:
        tree.push_leaf(grown, leaf_hash(leaf))
    return tree.stack_root(grown)


def set_aside(directory: Path, events_fd: int, signed_end: int, signed_size: int,
              why: str) -> tuple[Path, bytes]:
    """Move what follows ``signed_end`` in the events file to ``set-aside/`` (durably,
    before the events file is cut back to ``signed_end``); returns the file and the
    bytes moved."""
    size = os.fstat(events_fd).st_size
    data = os.pread(events_fd, size - signed_end, signed_end)
    folder = directory / SET_ASIDE_DIR
    folder.mkdir(mode=0o700, exist_ok=True)
    path = folder / f"{why}-after-{signed_size}-{os.urandom(4).hex()}.jsonl"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    os.ftruncate(events_fd, signed_end)
    os.fsync(events_fd)
    return path, data
