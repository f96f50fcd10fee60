"""The privacy center remembers the audit log it showed this browser and checks, on
the next visit, that the log now shown extends it (an RFC 9162 consistency proof):
a log rolled back, rewritten or shown differently to this browser is flagged.

The memory is a cookie (``letterlock_log_seen``: tree size and root hash of the last head
that checked out), kept by the browser, not by the server. A failed check keeps the
old value, so the warning stays until the operator explains it.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any

from fastapi import Request, Response

from letterlock.audit.verify import VerificationError, check_consistency
from letterlock.errors import LetterlockError
from letterlock.services.transparency.access_feed import AccessFeed

COOKIE = "letterlock_log_seen"
MAX_AGE = 10 * 365 * 24 * 3600
_VALUE = re.compile(r"([0-9]{1,18})-([0-9a-f]{64})")


@dataclass(frozen=True)
class SeenCheck:
    status: str  # "first", "same", "extends" or "failed"
    old_size: int = 0
    old_root: str = ""
    reason: str = ""


def _parse(value: str | None) -> tuple[int, bytes] | None:
    match = _VALUE.fullmatch(value or "")
    if match is None:
        return None
    return int(match.group(1)), bytes.fromhex(match.group(2))


async def check_seen(request: Request, feed: AccessFeed, head: dict[str, Any]) -> SeenCheck:
    """Compare the head remembered by this browser with ``head`` (the one shown now)."""
    seen = _parse(request.cookies.get(COOKIE))
    if seen is None:
        return SeenCheck("first")
    old_size, old_root = seen
    new_size, new_root = int(head["tree_size"]), bytes.fromhex(head["root_hash"])
    if old_size > new_size:
        return SeenCheck("failed", old_size, old_root.hex(),
                         f"the log now holds {new_size} entries, fewer than the {old_size} "
                         "this browser saw")
    try:
        proof = await asyncio.to_thread(feed.consistency_proof, old_size, new_size)
        check_consistency(old_size, new_size, old_root, new_root, proof)
    except VerificationError as exc:
        return SeenCheck("failed", old_size, old_root.hex(), str(exc))
    except LetterlockError as exc:
        return SeenCheck("failed", old_size, old_root.hex(), f"no consistency proof: {exc}")
    return SeenCheck("same" if old_size == new_size else "extends", old_size, old_root.hex())


def remember(response: Response, request: Request, check: SeenCheck,
             head: dict[str, Any]) -> None:
    """Keep ``head`` as the one this browser saw, unless the check failed."""
    if check.status == "failed":
        return
    secure = (request.url.scheme == "https"
              or request.headers.get("x-forwarded-proto", "").lower() == "https")
    response.set_cookie(COOKIE, f"{int(head['tree_size'])}-{head['root_hash']}",
                        max_age=MAX_AGE, httponly=True, samesite="strict",
                        path="/account", secure=secure)
