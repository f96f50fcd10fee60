"""CATENATE (RFC 4469): an APPENDed message made of literal text and of messages or
message parts the user already has, named by IMAP URLs (imap/imapurl.py).

A URL is read as FETCH would read it, through the user's own session (so only their
own mailboxes can be named): the mailbox by name, the message by UID (and
UIDVALIDITY when given), the section from the message's part tree, then PARTIAL.
Anything that does not resolve is ``NO [BADURL url]`` naming the first such URL, and
nothing is stored.
"""

from __future__ import annotations

from collections.abc import Sequence

from letterlock.errors import LetterlockError
from letterlock.imap import imapurl
from letterlock.imap.context import Context
from letterlock.imap.parsing import commands as c
from letterlock.imap.parsing.fetch import fetch_items
from letterlock.imap.parsing.primitives import ParseError
from letterlock.imap.reply import Reply, no
from letterlock.mime import sections, structure


class _Refused(Exception):
    def __init__(self, reply: Reply) -> None:
        self.reply = reply


async def assemble(ctx: Context, parts: Sequence[c.CatPart]) -> bytes | Reply:
    """The message the parts make, or the NO that refuses it (BADURL, TOOBIG)."""
    limit = ctx.services.config.max_literal_bytes
    out = bytearray()
    try:
        for part in parts:
            if part.text is not None:
                out += part.text
            else:
                assert part.url is not None
                out += await _resolve(ctx, part.url)
            if len(out) > limit:
                return no("The message would be too large", "TOOBIG")
    except _Refused as refused:
        return refused.reply
    return bytes(out)


def _bad(url: str, why: str) -> _Refused:
    return _Refused(no(f"CATENATE failed: {why}", f"BADURL {imapurl.response_text(url)}"))


async def _resolve(ctx: Context, url: str) -> bytes:
    try:
        ref = imapurl.parse(url)
    except imapurl.BadUrl as exc:
        raise _bad(url, str(exc)) from None
    assert ctx.user is not None
    svc = ctx.services.mailboxes
    try:
        mailbox = await svc.get_mailbox(ctx.user, ref.mailbox)
        if ref.uidvalidity is not None and ref.uidvalidity != mailbox.uidvalidity:
            raise _bad(url, "UIDVALIDITY does not match the mailbox")
        records = await svc.get_messages(ctx.user, mailbox.id, [ref.uid], with_summary=False)
        raw = (await svc.bodies(ctx.user, records)).get(ref.uid) if records else None
    except LetterlockError:
        # No such mailbox (or message, expunged meanwhile): the URL names nothing.
        raise _bad(url, "no such message") from None
    if raw is None:
        raise _bad(url, "no such message")
    data = _section(raw, ref.section)
    if data is None:
        raise _bad(url, "no such section")
    if ref.partial is not None:
        offset, length = ref.partial
        data = data[offset:] if length is None else data[offset : offset + length]
    return data


def _section(raw: bytes, spec: str) -> bytes | None:
    if not spec:
        return raw
    try:
        items, pos = fetch_items(b"BODY[" + spec.encode() + b"]", 0)
    except ParseError:
        return None
    section = items[0].section if len(items) == 1 else None
    if section is None or pos != len(spec) + 6:
        return None
    return sections.section(raw, structure.parse(raw), section.part, section.text,
                            section.fields)
