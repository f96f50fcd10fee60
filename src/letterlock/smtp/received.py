"""The Received trace header (RFC 5321 4.4) a listener prepends to each message."""

from __future__ import annotations

import functools
import re
from datetime import datetime
from email.utils import format_datetime

_UNSAFE = re.compile(r"[^\x21-\x7e]")


def _clean(text: str, limit: int = 64) -> str:
    """Client-supplied text made safe for a header: printable ASCII, bounded."""
    return _UNSAFE.sub("?", text)[:limit].replace("(", "?").replace(")", "?")


@functools.lru_cache(maxsize=1)
def _date(when: datetime) -> str:
    """RFC 5322 date of ``when`` (remembered: a busy listener stamps many messages
    within the same second)."""
    return format_datetime(when)


def received_header(*, helo: str, peer_ip: str, hostname: str, protocol: str, queue_id: str,
                    when: datetime, recipient: str | None = None) -> bytes:
    """``Received: from HELO ([IP]) by HOST with PROTOCOL id ID [for <RCPT>]; DATE``,
    folded to stay under 78 columns. ``protocol`` is a RFC 3848 keyword (ESMTP,
    ESMTPS, ESMTPSA, LMTP, ...). No ``([IP])`` for a peer without an address (the
    LMTP Unix socket): RFC 5321 4.4 makes the TCP-info optional."""
    source = f" ([{_clean(peer_ip, 45)}])" if peer_ip else ""
    parts = [f"from {_clean(helo) or 'unknown'}{source}",
             f"by {_clean(hostname)} (letterlock)",
             f"with {protocol} id {queue_id}"]
    if recipient:
        parts.append(f"for <{_clean(recipient, 254)}>")
    text = "Received: " + "\r\n\t".join(parts) + ";\r\n\t" + _date(when)
    return text.encode("ascii") + b"\r\n"
