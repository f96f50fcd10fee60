"""The audit log as tlog-tiles (c2sp.org/tlog-tiles): a checkpoint, hash tiles and
entry bundles, so any tiles client can fetch, verify and mirror the log.

The log's hashing is RFC 6962's (``verify.leaf_hash``/``node_hash``), which is what
tlog-tiles uses, so tiles are read straight from the stored subtree hashes:

* tile ``(L, N)`` of width ``W`` holds the hashes of the complete subtrees of
  ``2**(8L)`` leaves at positions ``256N .. 256N+W-1``, 32 bytes each; a full tile has
  256, a partial one (``.p/W``) 1 to 255, for the right edge of a tree;
* entry bundle ``N`` holds leaves ``256N ..``, each as a big-endian uint16 length and
  the leaf's bytes (one canonical log record, without its newline), whose RFC 6962
  leaf hash is the level-0 tile's hash.

Paths: ``N`` is written in groups of three decimal digits, zero-padded, every group
but the last prefixed with ``x`` (``1234067`` is ``x001/x234/067``).
"""

from __future__ import annotations

import re

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from letterlock.audit import checkpoint
from letterlock.audit.store import MerkleLog
from letterlock.errors import InvalidInput, NotFound

PREFIX = "/log/tlog"
"""Where the HTTP server serves the tiles API; the checkpoint's origin is the host
name followed by it."""
HEIGHT = 8
WIDTH = 1 << HEIGHT
MAX_LEVEL = 63
MAX_ENTRY = 0xFFFF
_GROUP = re.compile(r"[0-9]{3}")


def origin_for(hostname: str) -> str:
    """The checkpoint origin (and log key name) of the log served on ``hostname``."""
    return f"{hostname}{PREFIX}"


def encode_index(n: int) -> str:
    """``N`` as a tile path: ``x001/x234/067`` for 1234067, ``000`` for 0."""
    if n < 0:
        raise ValueError("a tile index is not negative")
    groups = []
    while True:
        groups.append(f"{n % 1000:03d}")
        n //= 1000
        if n == 0:
            break
    groups.reverse()
    return "/".join(["x" + g for g in groups[:-1]] + [groups[-1]])


def tile_path(level: int | str, index: int, width: int = WIDTH) -> str:
    """``tile/L/N[.p/W]`` (``level`` "entries" for an entry bundle)."""
    suffix = "" if width == WIDTH else f".p/{width}"
    return f"tile/{level}/{encode_index(index)}{suffix}"


def parse_index(path: str) -> tuple[int, int]:
    """``N[.p/W]`` as written after ``tile/L/``: (N, W). Only the canonical form is
    accepted (one name per tile); anything else is InvalidInput."""
    width = WIDTH
    body = path
    if ".p/" in path:
        body, _, w = path.partition(".p/")
        if not w.isdigit() or str(int(w)) != w or not 1 <= int(w) < WIDTH:
            raise InvalidInput(f"a partial tile's width is 1 to 255: {w!r}")
        width = int(w)
    parts = body.split("/")
    for part in parts[:-1]:
        if not (part.startswith("x") and _GROUP.fullmatch(part[1:])):
            raise InvalidInput(f"not a tile index path: {path!r}")
    if not _GROUP.fullmatch(parts[-1]):
        raise InvalidInput(f"not a tile index path: {path!r}")
    index = int("".join(p.lstrip("x") for p in parts))
    if encode_index(index) != body:
        raise InvalidInput(f"not the canonical path of tile {index}: {path!r}")
    return index, width


def parse_level(text: str) -> int:
    if not text.isdigit() or str(int(text)) != text or int(text) > MAX_LEVEL:
        raise InvalidInput(f"a tile level is 0 to {MAX_LEVEL}: {text!r}")
    return int(text)


class TileServer:
    """Checkpoints, tiles and entry bundles of one log, for ``origin``.

    ``log`` is a read-only view; callers refresh it. The checkpoint is the log's
    current signed head (checked when it was read) put in a signed note: the same
    key, the same tree, nothing the log did not sign already.
    """

    def __init__(self, log: MerkleLog, key: Ed25519PrivateKey, origin: str) -> None:
        self.log = log
        self._key = key
        self.origin = origin
        self._signed: tuple[int, bytes, str] | None = None

    @property
    def verifier_key(self) -> str:
        return checkpoint.verifier_key(self.origin, self.log.public_key)

    def checkpoint(self) -> str:
        head = self.log.head()
        cached = self._signed
        if cached is None or cached[:2] != (head.tree_size, head.root_hash):
            note = checkpoint.signed_checkpoint(self.origin, head.tree_size, head.root_hash,
                                                self._key)
            cached = self._signed = (head.tree_size, head.root_hash, note)
        return cached[2]

    def _available(self, level: int, index: int, width: int) -> None:
        have = self.log.head().tree_size >> (HEIGHT * level)
        if index * WIDTH + width > have:
            raise NotFound(f"tile {level}/{index} of width {width} is beyond the tree")

    def tile(self, level: int, index: int, width: int = WIDTH) -> bytes:
        """The hashes of tile (level, index), ``width`` of them."""
        self._available(level, index, width)
        height = HEIGHT * level
        span = 1 << height
        first = index * WIDTH
        return b"".join(
            self.log.subtree_hash((first + i) * span, (first + i + 1) * span)
            for i in range(width)
        )

    def entries(self, index: int, width: int = WIDTH) -> bytes:
        """Entry bundle ``index``: ``width`` leaves, each length-prefixed."""
        self._available(0, index, width)
        first = index * WIDTH
        out = bytearray()
        for position, leaf in self.log.iter_leaves(first, first + width):
            if len(leaf) > MAX_ENTRY:
                raise InvalidInput(f"audit event {position} is longer than a tile entry "
                                   f"may be ({len(leaf)} bytes)")
            out += len(leaf).to_bytes(2, "big") + leaf
        return bytes(out)
