"""The access feed's per-account index, kept on disk so a restart does not rescan the
whole audit log (about 20 s at a million events): ``HOME/control/access-feed.index``.

The file is one JSON header line, then the body: a JSON object mapping each account
to the indices of the events about it. The header names the log (``log_id``), the
tree size the index covers and that tree's root hash, and the SHA-256 of the body.
On load the body must hash to the header's digest and the log must still have that
tree (same root at that size, an O(log n) check against its stored hashes); otherwise
the index is rebuilt from the log. A valid index is brought up to date by scanning
only the events after its size.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from letterlock.audit.store import MerkleLog
from letterlock.errors import LetterlockError

FORMAT = "letterlock-access-index-v1"
INDEX_FILE = "access-feed.index"
SAVE_AFTER = 10_000
"""Events scanned since the last save after which the index is written again (and at
close): a crash costs at most this many events of rescanning."""

log = logging.getLogger(__name__)


@dataclass
class FeedIndex:
    size: int = 0  # events scanned: [0, size)
    by_account: dict[str, list[int]] = field(default_factory=dict)
    saved_size: int = 0


def load(path: Path, reader: MerkleLog) -> FeedIndex:
    """The index kept in ``path`` if it is intact and belongs to this log's history,
    else an empty one (the caller scans from the start)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return FeedIndex()
    except OSError as exc:
        log.warning("access feed index %s unreadable (%s): rebuilding it", path, exc)
        return FeedIndex()
    reason = _check(data, reader)
    if isinstance(reason, str):
        log.warning("access feed index %s not used (%s): rebuilding it", path, reason)
        return FeedIndex()
    return reason


def _check(data: bytes, reader: MerkleLog) -> FeedIndex | str:
    first, _, body = data.partition(b"\n")
    try:
        header: dict[str, Any] = json.loads(first)
    except ValueError:
        return "no header"
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        return "not an index of this format"
    if hashlib.sha256(body).hexdigest() != header.get("body_sha256"):
        return "its content does not match its digest"
    size = header.get("size")
    if header.get("log_id") != reader.log_id or not isinstance(size, int) or size < 0:
        return "made for another log"
    if size > reader.size:
        return f"it covers {size} events, the log has {reader.size}"
    try:
        if reader.root(size).hex() != header.get("root"):
            return f"the log's tree of size {size} is not the one it was made from"
    except LetterlockError as exc:
        return str(exc)
    try:
        accounts = json.loads(body)
    except ValueError:
        return "its content is not JSON"
    if not isinstance(accounts, dict):
        return "its content is not an index"
    return FeedIndex(size, {str(k): [int(i) for i in v] for k, v in accounts.items()}, size)


def save(path: Path, reader: MerkleLog, index: FeedIndex) -> None:
    """Write ``index`` atomically; a failure is logged, not raised (the index is a
    cache: the log stays the source)."""
    body = json.dumps(index.by_account, separators=(",", ":"), sort_keys=True).encode()
    try:
        root = reader.root(index.size).hex()
    except LetterlockError as exc:
        log.warning("access feed index not saved: %s", exc)
        return
    header = {"format": FORMAT, "log_id": reader.log_id, "size": index.size, "root": root,
              "body_sha256": hashlib.sha256(body).hexdigest()}
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(json.dumps(header, sort_keys=True).encode() + b"\n" + body)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("access feed index not saved to %s: %s", path, exc)
        return
    index.saved_size = index.size
