"""IMAP URLs (RFC 5092) as CATENATE (RFC 4469) takes them: an absolute-path reference
to a message, or a part of one, in the logged-in user's own mailboxes on this server:

    /INBOX;UIDVALIDITY=385759045/;UID=20/;SECTION=1.2/;PARTIAL=0.1024

Pure: text in, :class:`MessageUrl` out, or :class:`BadUrl` naming what is wrong.
``imap://`` URLs (which could name another server or user) and relative references
without the leading ``/`` are refused, as is URLAUTH (not offered here).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

_NUMBER = re.compile(r"[1-9][0-9]{0,9}\Z")
_PARTIAL = re.compile(r"(0|[1-9][0-9]{0,9})(?:\.([1-9][0-9]{0,9}))?\Z")
_ESCAPES = re.compile(r"%(?![0-9A-Fa-f]{2})")


class BadUrl(ValueError):
    """A URL that cannot name a message here (the reason is for the NO's text)."""


@dataclass(frozen=True)
class MessageUrl:
    mailbox: str
    uid: int
    uidvalidity: int | None = None
    section: str = ""
    """The FETCH section spec (``1.2``, ``HEADER``, ``1.MIME``), "" for the message."""
    partial: tuple[int, int | None] | None = None
    """(offset, length or None for the rest)."""


def _decoded(text: str, what: str) -> str:
    if _ESCAPES.search(text):
        raise BadUrl(f"bad %-escape in the {what}")
    try:
        return unquote_to_bytes(text).decode("utf-8")
    except UnicodeDecodeError:
        raise BadUrl(f"the {what} is not UTF-8") from None


def _number(value: str, what: str) -> int:
    if not _NUMBER.match(value) or int(value) > 0xFFFFFFFF:
        raise BadUrl(f"bad {what}")
    return int(value)


def parse(url: str) -> MessageUrl:
    """Raises BadUrl."""
    if any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in url):
        raise BadUrl("URL with spaces or control characters")
    if url.lower().startswith("imap:"):
        raise BadUrl("only URLs relative to this server (/mailbox/;UID=n) are accepted")
    if not url.startswith("/"):
        raise BadUrl("not an absolute-path URL (/mailbox/;UID=n)")
    cut = url.find(";")
    if cut < 0:
        raise BadUrl("the URL names no message (;UID=)")
    head, rest = url[1:cut], url[cut:]
    uidvalidity: int | None = None
    if head.endswith("/"):
        head = head[:-1]
    else:
        # /mailbox;UIDVALIDITY=n/;UID=...
        m = re.match(r";UIDVALIDITY=([^/;]*)/(?=;)", rest, re.IGNORECASE)
        if m is None:
            raise BadUrl("expected /;UID= or ;UIDVALIDITY= after the mailbox")
        uidvalidity = _number(m.group(1), "UIDVALIDITY")
        rest = rest[m.end():]
    if not head:
        raise BadUrl("the URL names no mailbox")
    mailbox = _decoded(head, "mailbox name")
    if mailbox.upper() == "INBOX":
        mailbox = "INBOX"
    fields: dict[str, str] = {}
    order = ("UID", "SECTION", "PARTIAL")
    position = 0
    for segment in rest.split("/"):
        name, eq, value = segment.partition("=")
        key = name[1:].upper() if name.startswith(";") else ""
        if key == "URLAUTH" or ";URLAUTH=" in value.upper():
            raise BadUrl("URLAUTH is not supported")
        if not eq or key not in order or order.index(key) < position:
            raise BadUrl(f"unexpected {segment[:40]!r} in the URL")
        position = order.index(key) + 1
        fields[key] = value
    if "UID" not in fields:
        raise BadUrl("the URL names no message (;UID=)")
    partial: tuple[int, int | None] | None = None
    if "PARTIAL" in fields:
        m = _PARTIAL.match(fields["PARTIAL"])
        if m is None:
            raise BadUrl("bad PARTIAL")
        partial = (int(m.group(1)), int(m.group(2)) if m.group(2) else None)
    return MessageUrl(mailbox, _number(fields["UID"], "UID"), uidvalidity,
                      _decoded(fields.get("SECTION", ""), "section"), partial)


def response_text(url: str) -> str:
    """The URL as it may stand in ``[BADURL ...]``: no ``]``, controls or non-ASCII
    (each replaced by ``?``), at most 200 characters."""
    safe = "".join(ch if 0x20 < ord(ch) < 0x7F and ch != "]" else "?" for ch in url)
    return safe[:200] or "?"
