"""The access feed: what the audit log says about one account, for its owner, each
event with an inclusion proof they can check offline. Served over HTTP by
``letterlock.http.access_feed`` and shown in the privacy center."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from letterlock.audit import records
from letterlock.audit.log import open_reader
from letterlock.audit.store import MerkleLog
from letterlock.services.transparency import feed_index


@dataclass(frozen=True)
class FeedPage:
    """Events about one account, each with a self-contained inclusion proof bundle
    (``letterlock-inclusion-v1``, checkable by ``python -m letterlock.audit.verify``)."""

    account: str
    head: dict[str, Any]
    events: tuple[dict[str, Any], ...]
    next_after: int | None


class AccessFeed:
    """What the log says about an account, for its owner.

    Only events readable in the log are listed: an event still under a non-disclosure
    order is a commitment with no account in it, and appears here once revealed. The
    per-account index is built incrementally from the log as it grows (one pass over
    new events per request), so a long-running server scans each event once; it is
    kept in ``index_path`` (default ``HOME/control/access-feed.index``, see
    :mod:`feed_index`) so a restart scans only what was logged since it was saved.
    """

    def __init__(self, audit_dir: Path, index_path: Path | None = None) -> None:
        self._dir = audit_dir
        self._index_path = index_path or audit_dir.parent / feed_index.INDEX_FILE
        self._log: MerkleLog | None = None
        self._index: feed_index.FeedIndex | None = None
        self.scanned_from_log = 0  # events read from the log by this instance
        self._lock = threading.Lock()

    def _reader(self) -> MerkleLog:
        if self._log is None:
            self._log = open_reader(self._dir)
        else:
            self._log.refresh()
        return self._log

    def page(self, account: str, after: int = -1, limit: int = 100) -> FeedPage:
        """Blocking: call through ``asyncio.to_thread`` (see :meth:`page_async`)."""
        key = account.lower()
        with self._lock:
            log = self._reader()
            found = self._catch_up(log).by_account.get(key, [])
            indices = [i for i in found if i > after]
            chosen = indices[: max(1, min(limit, 500))]
            events = []
            for index in chosen:
                bundle = log.inclusion_bundle(index)
                rec = records.decode(bundle["leaf"].encode("utf-8"))
                shown = rec.revealed_event if rec.kind == "reveal" else rec.event
                assert shown is not None
                events.append(
                    {
                        "index": index,
                        "kind": rec.kind,
                        "logged_at": records.format_time(rec.logged_at),
                        "event": records.event_to_json(shown),
                        "committed_as": rec.reveals,
                        "proof": bundle,
                    }
                )
            more = len(indices) > len(chosen)
            return FeedPage(
                account=key,
                head=log.head().to_json(),
                events=tuple(events),
                next_after=chosen[-1] if more and chosen else None,
            )

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        """RFC 9162 consistency proof between two sizes of the log (blocking)."""
        with self._lock:
            return self._reader().consistency_proof(old_size, new_size)

    async def page_async(self, account: str, after: int = -1, limit: int = 100) -> FeedPage:
        return await asyncio.to_thread(self.page, account, after, limit)

    def _catch_up(self, log: MerkleLog) -> feed_index.FeedIndex:
        index = self._index
        if index is None or index.size > log.size:
            index = self._index = feed_index.load(self._index_path, log)
        by_account = index.by_account
        for position, leaf in log.iter_leaves(index.size, log.size):
            for about in _accounts_in(leaf):
                by_account.setdefault(about, []).append(position)
            self.scanned_from_log += 1
        index.size = max(index.size, log.size)
        if index.size - index.saved_size >= feed_index.SAVE_AFTER:
            feed_index.save(self._index_path, log, index)
        return index

    def close(self) -> None:
        with self._lock:
            if self._log is not None and self._index is not None \
                    and self._index.size != self._index.saved_size:
                feed_index.save(self._index_path, self._log, self._index)
            if self._log is not None:
                self._log.close()
                self._log = None


def _accounts_in(leaf: bytes) -> set[str]:
    """Accounts an event is about: its own reference and, for a reveal, the revealed
    event's (they are the same when the log wrote the reveal)."""
    rec = records.decode(leaf)
    found = set()
    if rec.event is not None and rec.event.account:
        found.add(rec.event.account.lower())
    if rec.kind == "reveal":
        revealed = rec.revealed_event
        if revealed is not None and revealed.account:
            found.add(revealed.account.lower())
    return found
