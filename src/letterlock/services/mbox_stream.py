"""Export as a stream: every mailbox of an account as one mbox, produced in pieces so
a web download starts at once and never holds the whole mailbox in memory.

The bytes are exactly those of :func:`letterlock.services.transfer.export_mbox` (mboxrd
quoting, LF line endings, one ``From`` separator line per message stamped with its
internal date), so a file saved from the web and one written by the CLI compare equal.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC

from letterlock.services.accounts import Session
from letterlock.services.mailbox import MailboxService
from letterlock.services.transfer import to_lf

_FROM_LINE = re.compile(rb"(?m)^(>*From )")


def mbox_entry(raw: bytes, stamp: str) -> bytes:
    """One message framed for an mbox: separator, quoted body, blank line."""
    body = _FROM_LINE.sub(rb">\1", to_lf(raw))
    tail = b"\n" if body.endswith(b"\n") else b"\n\n"
    return b"From letterlock@localhost " + stamp.encode("ascii") + b"\n" + body + tail


async def stream_mbox(mailboxes: MailboxService, session: Session,
                      batch: int = 64) -> AsyncIterator[bytes]:
    """Yield the mbox in pieces of at most ``batch`` messages (unsealed in one batch)."""
    for box in await mailboxes.list_mailboxes(session):
        msgs = await mailboxes.messages(session, box.id)
        for i in range(0, len(msgs), batch):
            part = msgs[i : i + batch]
            bodies = await mailboxes.bodies(session, part)
            yield b"".join(
                mbox_entry(bodies[m.uid],
                           m.internaldate.astimezone(UTC).strftime("%a %b %d %H:%M:%S %Y"))
                for m in part)
