"""MULTIAPPEND (RFC 3502): several messages in one APPEND are stored in order and
atomically, with one APPENDUID naming all of them."""

from __future__ import annotations

import asyncio
import imaplib

from imap_script import Imap, ScriptClient


def _msg(n: int) -> bytes:
    return (b"From: a@example.org\r\nTo: alice@example.test\r\n"
            b"Subject: part %d\r\n\r\nbody %d\r\n" % (n, n))


async def _multiappend(c: ScriptClient, tag: str, mailbox: str,
                       parts: list[tuple[bytes, bytes]]) -> list[bytes]:
    """Send one APPEND with synchronizing literals, waiting for each continuation."""
    head = f"{tag} APPEND {mailbox}".encode()
    for i, (attrs, body) in enumerate(parts):
        prefix = head if i == 0 else b""
        c.send(prefix + b" " + attrs + b"{%d}" % len(body))
        cont = await c.response()
        if not cont.startswith(b"+"):
            return [cont, *([] if cont.startswith(tag.encode()) else await c.until(tag))]
        c.writer.write(body)
    c.send(b"")
    return await c.until(tag)


async def test_capability_advertised(imap: Imap) -> None:
    c = await imap.session()
    lines = await c.command("a1", "CAPABILITY")
    assert b" MULTIAPPEND" in lines[0]


async def test_three_messages_in_order_with_their_flags(imap: Imap) -> None:
    c = await imap.session()
    assert (await c.command("a0", "CREATE Kept"))[-1].startswith(b"a0 OK")
    parts = [(b"(\\Seen) ", _msg(1)),
             (b'(\\Flagged) "01-Feb-2020 10:00:00 +0000" ', _msg(2)),
             (b"", _msg(3))]
    lines = await _multiappend(c, "a1", "Kept", parts)
    assert lines[-1].startswith(b"a1 OK [APPENDUID "), lines
    uidvalidity, uids = lines[-1].split(b"[APPENDUID ")[1].split(b"]")[0].split()
    assert uids == b"1:3"
    lines = await c.command("a2", "SELECT Kept")
    assert b"* 3 EXISTS" in lines
    lines = await c.command(
        "a3", "UID FETCH 1:* (UID FLAGS INTERNALDATE BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    text = b"\n".join(lines)
    for n in (1, 2, 3):
        assert b"Subject: part %d" % n in text
    fetched = [ln for ln in lines if ln.startswith(b"* ")]
    assert b"\\Seen" in fetched[0] and b"\\Flagged" not in fetched[0]
    assert b"\\Flagged" in fetched[1] and b'" 1-Feb-2020 10:00:00 +0000"' in fetched[1]
    assert b"\\Seen" not in fetched[2] and b"\\Flagged" not in fetched[2]
    assert f"UIDVALIDITY {uidvalidity.decode()}".encode() in b"\n".join(
        await c.command("a4", "STATUS Kept (UIDVALIDITY)"))


async def test_inbox_multiappend_with_nonsynchronizing_literals(imap: Imap) -> None:
    c = await imap.session()
    before = await c.command("a0", "STATUS INBOX (MESSAGES UIDNEXT)")
    m1, m2 = _msg(1), _msg(2)
    c.send(b"a1 APPEND INBOX {%d+}\r\n" % len(m1) + m1
           + b" (\\Seen) {%d+}\r\n" % len(m2) + m2 + b"\r\n")
    lines = await c.until("a1")
    assert lines[-1].startswith(b"a1 OK [APPENDUID "), lines
    after = await c.command("a2", "STATUS INBOX (MESSAGES)")
    count = lambda ls: int(ls[0].split(b"MESSAGES ")[1].split(b")")[0].split()[0])  # noqa: E731
    assert count(after) == count(before) + 2


async def test_one_bad_message_stores_none(imap: Imap) -> None:
    c = await imap.session()
    assert (await c.command("a0", "CREATE Drafts2"))[-1].startswith(b"a0 OK")
    # The second message tries to set \Recent, which no client may: the whole
    # command fails and the first message is not stored either.
    lines = await _multiappend(c, "a1", "Drafts2",
                               [(b"", _msg(1)), (b"(\\Recent) ", _msg(2))])
    assert lines[-1].startswith(b"a1 BAD"), lines
    lines = await _multiappend(c, "a2", "Drafts2", [(b"", _msg(1)), (b"", b"")])
    assert lines[-1].startswith(b"a2 NO"), lines
    lines = await c.command("a3", "STATUS Drafts2 (MESSAGES)")
    assert b"MESSAGES 0" in lines[0]
    # The connection is still usable and a good MULTIAPPEND afterwards works.
    lines = await _multiappend(c, "a4", "Drafts2", [(b"", _msg(1)), (b"", _msg(2))])
    assert lines[-1].startswith(b"a4 OK [APPENDUID "), lines
    assert lines[-1].split()[4].rstrip(b"]") == b"1:2"


async def test_missing_mailbox_says_trycreate(imap: Imap) -> None:
    c = await imap.session()
    lines = await _multiappend(c, "a1", "Nowhere", [(b"", _msg(1)), (b"", _msg(2))])
    assert lines[-1].startswith(b"a1 NO [TRYCREATE]"), lines


def _imaplib_append(port: int, user: str, password: str) -> bytes:
    # imaplib has no MULTIAPPEND helper; its literal machinery sends one literal per
    # command, so this checks that an ordinary client's APPENDs still get APPENDUID.
    m = imaplib.IMAP4("127.0.0.1", port)
    try:
        m.login(user, password)
        typ, data = m.append("INBOX", "(\\Seen)", None, _msg(9))
        assert typ == "OK"
        return data[0]
    finally:
        m.logout()


async def test_plain_append_from_imaplib_still_single(imap: Imap) -> None:
    data = await asyncio.to_thread(_imaplib_append, imap.port, imap.user, imap.password)
    assert b"APPENDUID" in data and b":" not in data.split(b"APPENDUID")[1]


async def test_over_quota_append_is_overquota_and_stores_nothing(imap: Imap) -> None:
    from letterlock.services.accounts.quotas import Quota
    await imap.app.quotas.set_limits(imap.user, Quota(messages=1))
    c = await imap.session()
    lines = await _multiappend(c, "a1", "INBOX", [(b"", _msg(1)), (b"", _msg(2))])
    assert lines[-1].startswith(b"a1 NO [OVERQUOTA]"), lines
    lines = await c.command("a2", "STATUS INBOX (MESSAGES)")
    assert b"MESSAGES 0" in lines[0]
    lines = await _multiappend(c, "a3", "INBOX", [(b"", _msg(1))])
    assert lines[-1].startswith(b"a3 OK"), lines
