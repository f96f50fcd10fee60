"""Bad input against a live server: every malformed command gets a BAD (or NO), never a
dropped connection or a server error."""

from __future__ import annotations

import random

from imap_script import Imap

FRAGMENTS = [b"FETCH", b"UID", b"STORE", b"SEARCH", b"SORT", b"SELECT", b"LIST", b"STATUS",
             b"COPY", b"MOVE", b"APPEND", b"EXPUNGE", b"IDLE", b"ENABLE", b"1", b"1:*", b"*",
             b"0", b"4294967296", b"(", b")", b"[", b"]", b"<1.2>", b"BODY[", b"BODY.PEEK[1]",
             b"HEADER.FIELDS", b"(FLAGS", b"\\Seen", b"+FLAGS", b'"', b'"INBOX"', b"INBOX",
             b"NIL", b"OR", b"NOT", b"CHARSET", b"BOGUS-8", b"\xff\xfe", b"\t", b"%", b"~",
             b"RETURN", b"(MIN)", b"CHANGEDSINCE", b"UNCHANGEDSINCE", b"MODSEQ", b"BINARY[1]",
             b"ENVELOPE", b"BODYSTRUCTURE", b"RFC822", b"ALL", b"FULL", b"TEXT", b"x"]


async def test_random_commands_never_break_the_connection(imap: Imap) -> None:
    ref = await imap.app.accounts.resolve(imap.user)
    await imap.app.mailboxes.append(ref, "INBOX", b"Subject: a\r\n\r\nb\r\n")
    c = await imap.session("INBOX")
    rng = random.Random(20240102)
    for i in range(400):
        words = [rng.choice(FRAGMENTS) for _ in range(rng.randint(1, 8))]
        body = b" ".join(words)
        if b"IDLE" in body.split()[:1] or b"{" in body:
            continue
        tag = f"f{i}"
        lines = await c.command(tag, body)
        status = lines[-1].split(b" ")[1]
        assert status in (b"OK", b"NO", b"BAD"), lines
        assert b"SERVERBUG" not in lines[-1], (body, lines)
    lines = await c.command("z", "NOOP")
    assert lines[-1] == b"z OK NOOP completed"

