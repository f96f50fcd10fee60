"""THREAD and UID THREAD (RFC 5256) over a real socket: the same small mailbox as
test_imap_threads.py, delivered by APPEND, threaded by both algorithms, with search
criteria, a charset, UIDs that differ from sequence numbers, and imaplib's
``thread()``."""

from __future__ import annotations

import asyncio
import imaplib

from imap_script import Imap, ScriptClient

# (subject, Message-ID, References, In-Reply-To): Date is 1 Mar 2024 10:NN for the
# NNth message, so sent order is sequence order.
MAILBOX = [
    ("Plans", "<a@x>", "", ""),
    ("Re: Plans", "<b@x>", "<a@x>", "<a@x>"),
    ("RE: [team] Plans", "<c@x>", "<a@x>\r\n <b@x>", ""),
    ("Re: Plans", "<d@x>", "", "<a@x> <zzz@x>"),
    ("Re: Lost", "<e@x>", "<missing@x>", ""),
    ("Re: Lost", "<f@x>", "<missing@x>", ""),
    ("Lunch", "<g@x>", "", ""),
    ("Re: Lunch", "<h@x>", "", ""),
    ("Status", "<i@x>", "", ""),
    ("Status", "<j@x>", "", ""),
    ("Loop", "<k@x>", "<l@x>", ""),
    ("Re: Loop", "<l@x>", "<k@x>", ""),
    ("Self", "<m@x>", "<m@x>", ""),
    ("=?utf-8?q?Fwd=3A_Plans?=", "<n@x>", "", ""),
]
REFERENCES = b"(1 (2 3)(4)(14))((5)(6))(7 8)((9)(10))(12 11)(13)"
ORDEREDSUBJECT = b"(1 (2)(3)(4)(14))(5 6)(7 8)(9 10)(11 12)(13)"


def raw_message(n: int, subject: str, msg_id: str, refs: str, reply_to: str) -> bytes:
    lines = [f"From: p{n}@example.org", "To: alice@example.test", f"Subject: {subject}",
             f"Date: Fri, 1 Mar 2024 10:{n:02d}:00 +0000", f"Message-ID: {msg_id}"]
    if refs:
        lines.append(f"References: {refs}")
    if reply_to:
        lines.append(f"In-Reply-To: {reply_to}")
    return ("\r\n".join(lines) + f"\r\n\r\nbody {n}\r\n").encode()


MESSAGES = [raw_message(n, *fields) for n, fields in enumerate(MAILBOX, start=1)]


async def _fill(c: ScriptClient, mailbox: str, messages: list[bytes]) -> None:
    for i, raw in enumerate(messages):
        head = f"p{i} APPEND {mailbox} {{{len(raw)}+}}\r\n".encode()
        c.writer.write(head + raw + b"\r\n")
        lines = await c.until(f"p{i}")
        assert lines[-1].startswith(f"p{i} OK".encode()), lines


async def test_capabilities_name_both_algorithms(imap: Imap) -> None:
    c = await imap.session()
    caps = (await c.command("a1", "CAPABILITY"))[0].split()
    assert b"THREAD=REFERENCES" in caps and b"THREAD=ORDEREDSUBJECT" in caps
    await c.close()


async def test_thread_both_algorithms_on_a_conversation(imap: Imap) -> None:
    c = await imap.session()
    assert (await c.command("a0", "CREATE Talk"))[-1].startswith(b"a0 OK")
    # A first message, expunged, so that UIDs are sequence numbers + 1.
    await _fill(c, "Talk", [raw_message(0, "gone", "<gone@x>", "", ""), *MESSAGES])
    assert (await c.command("a1", "SELECT Talk"))[-1].startswith(b"a1 OK")
    assert (await c.command("a2", "STORE 1 +FLAGS.SILENT (\\Deleted)"))[-1].startswith(b"a2 OK")
    assert (await c.command("a3", "EXPUNGE"))[-1].startswith(b"a3 OK")

    lines = await c.command("t1", "THREAD REFERENCES UTF-8 ALL")
    assert lines == [b"* THREAD " + REFERENCES, b"t1 OK THREAD completed"]
    lines = await c.command("t2", "THREAD ORDEREDSUBJECT US-ASCII ALL")
    assert lines[0] == b"* THREAD " + ORDEREDSUBJECT
    lines = await c.command("t3", "UID THREAD references utf-8 SUBJECT lunch")
    assert lines == [b"* THREAD (8 9)", b"t3 OK UID THREAD completed"]
    # Criteria leave out the first message: its replies gather under a dummy (which
    # the forward joins by subject).
    lines = await c.command("t4", "THREAD REFERENCES UTF-8 NOT HEADER Message-ID <a@x>")
    assert lines[0] == b"* THREAD ((2 3)(4)(14))((5)(6))(7 8)((9)(10))(12 11)(13)"
    lines = await c.command("t5", "THREAD REFERENCES UTF-8 SUBJECT nothing-like-this")
    assert lines == [b"* THREAD", b"t5 OK THREAD completed"]
    lines = await c.command("t6", "THREAD REFERENCES ISO-8859-1 OR SUBJECT {1+}\r\n\xe9 "
                                  "SUBJECT status".encode("latin-1"))
    assert lines[0] == b"* THREAD ((9)(10))"
    await c.close()


async def test_bad_thread_commands(imap: Imap) -> None:
    c = await imap.session("INBOX")
    lines = await c.command("b1", "THREAD JWZ UTF-8 ALL")
    assert lines[-1].startswith(b"b1 BAD"), lines
    lines = await c.command("b2", "THREAD REFERENCES UTF-8")
    assert lines[-1].startswith(b"b2 BAD"), lines
    lines = await c.command("b3", "THREAD REFERENCES NO-SUCH-CHARSET ALL")
    assert lines[-1].startswith(b"b3 NO [BADCHARSET"), lines
    lines = await c.command("b4", "THREAD REFERENCES UTF-8 ALL extra)")
    assert lines[-1].startswith(b"b4 BAD"), lines
    await c.close()
    c = await imap.session()
    lines = await c.command("b5", "THREAD REFERENCES UTF-8 ALL")
    assert lines[-1].startswith(b"b5 BAD"), lines  # no mailbox selected
    await c.close()


async def test_imaplib_thread(imap: Imap) -> None:
    c = await imap.session()
    await _fill(c, "INBOX", MESSAGES)
    await c.close()

    def run() -> tuple[list[bytes], list[bytes]]:
        client = imaplib.IMAP4("127.0.0.1", imap.port)
        try:
            client.login(imap.user, imap.password)
            client.select("INBOX", readonly=True)
            typ, refs = client.thread("REFERENCES", "UTF-8", "ALL")
            assert typ == "OK"
            typ, uids = client.uid("THREAD", "ORDEREDSUBJECT", "UTF-8", "ALL")
            assert typ == "OK"
            return refs, uids
        finally:
            client.logout()

    refs, uids = await asyncio.to_thread(run)
    assert refs == [REFERENCES]
    assert uids == [ORDEREDSUBJECT]
