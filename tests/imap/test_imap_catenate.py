"""CATENATE (RFC 4469) over a real socket: APPEND builds a message from literal text
and from URLs (RFC 5092) of the user's own messages and their parts; a URL that names
nothing here gets NO [BADURL url] and nothing is stored. Plus the URL parser on its
own."""

from __future__ import annotations

import re

import pytest
from imap_script import Imap, ScriptClient

from letterlock.imap import imapurl

SOURCE = (b"From: a@example.org\r\nTo: alice@example.test\r\nSubject: source\r\n"
          b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=zz\r\n\r\n"
          b"--zz\r\nContent-Type: text/plain\r\n\r\nfirst part\r\n"
          b"--zz\r\nContent-Type: text/plain\r\n\r\nsecond part\r\n--zz--\r\n")
HEADER = b"From: alice@example.test\r\nTo: b@example.org\r\nSubject: forwarded\r\n\r\n"


async def _setup(imap: Imap) -> tuple[ScriptClient, int]:
    c = await imap.session()
    c.writer.write(b"p1 APPEND INBOX {%d+}\r\n" % len(SOURCE) + SOURCE + b"\r\n")
    assert (await c.until("p1"))[-1].startswith(b"p1 OK")
    assert (await c.command("p2", "CREATE Composed"))[-1].startswith(b"p2 OK")
    status = (await c.command("p3", "STATUS INBOX (UIDVALIDITY)"))[0]
    m = re.search(rb"UIDVALIDITY (\d+)", status)
    assert m is not None
    return c, int(m.group(1))


async def _catenate(c: ScriptClient, tag: str, parts: list[tuple[str, bytes]],
                    mailbox: str = "Composed") -> list[bytes]:
    """APPEND mailbox CATENATE (...) with synchronizing TEXT literals."""
    line = f"{tag} APPEND {mailbox} CATENATE (".encode()
    for i, (kind, value) in enumerate(parts):
        line += b"" if i == 0 else b" "
        if kind == "URL":
            line += b'URL "' + value + b'"'
            continue
        c.send(line + b"TEXT {%d}" % len(value))
        cont = await c.response()
        assert cont.startswith(b"+"), cont
        line = value
    c.send(line + b")")
    return await c.until(tag)


async def _stored(c: ScriptClient, mailbox: str = "Composed") -> list[bytes]:
    assert (await c.command("x1", f"EXAMINE {mailbox}"))[-1].startswith(b"x1 OK")
    lines = await c.command("x2", "FETCH 1:* BODY.PEEK[]")
    return [line.split(b"}\r\n", 1)[1].rsplit(b")", 1)[0] for line in lines[:-1]]


async def test_capability(imap: Imap) -> None:
    c = await imap.session()
    assert b"CATENATE" in (await c.command("a1", "CAPABILITY"))[0].split()
    await c.close()


async def test_text_and_urls_make_one_message(imap: Imap) -> None:
    c, validity = await _setup(imap)
    url = f"/INBOX;UIDVALIDITY={validity}/;UID=1".encode()
    lines = await _catenate(c, "a1", [
        ("TEXT", HEADER),
        ("URL", url + b"/;SECTION=2"),
        ("TEXT", b"\r\n-- quoted --\r\n"),
        ("URL", b"/inbox/;UID=1/;SECTION=1/;PARTIAL=0.5"),
        ("URL", b"/INBOX/;UID=1/;SECTION=HEADER.FIELDS%20(SUBJECT)"),
    ])
    assert lines[-1].startswith(b"a1 OK [APPENDUID "), lines
    assert await _stored(c) == [HEADER + b"second part\r\n-- quoted --\r\nfirstSubject: source"
                                b"\r\n\r\n"]
    await c.close()


async def test_whole_message_with_multiappend(imap: Imap) -> None:
    c, _ = await _setup(imap)
    plain = b"Subject: plain\r\n\r\nplain\r\n"
    c.send(b'a1 APPEND Composed (\\Seen) CATENATE (URL "/INBOX/;UID=1") {%d+}' % len(plain))
    c.writer.write(plain + b"\r\n")
    lines = await c.until("a1")
    assert lines[-1].startswith(b"a1 OK [APPENDUID "), lines
    assert await _stored(c) == [SOURCE, plain]
    flags = await c.command("a2", "FETCH 1 FLAGS")
    assert b"\\Seen" in flags[0]
    await c.close()


@pytest.mark.parametrize("url", [
    b"/INBOX;UIDVALIDITY=1/;UID=1",          # another UIDVALIDITY
    b"/INBOX/;UID=9",                        # no such message
    b"/Nowhere/;UID=1",                      # no such mailbox
    b"/INBOX/;UID=1/;SECTION=7",             # no such part
    b"/INBOX/;UID=1/;SECTION=BOGUS",         # not a section
    b";UID=1",                               # relative path (RFC 5092 7.2)
    b"imap://alice@example.test/INBOX/;UID=1",
    b"/INBOX/;UID=1/;URLAUTH=anonymous",
    b"/P%E4evik/;UID=1",                     # not UTF-8
])
async def test_bad_url_stores_nothing(imap: Imap, url: bytes) -> None:
    c, _ = await _setup(imap)
    lines = await _catenate(c, "a1", [("TEXT", HEADER), ("URL", url)])
    assert lines[-1].startswith(b"a1 NO [BADURL " + url + b"] "), lines
    # In a MULTIAPPEND, the good message before is not stored either.
    c.send(b"a2 APPEND Composed {3+}\r\nx\r\n CATENATE (URL \"" + url + b"\")")
    lines = await c.until("a2")
    assert lines[-1].startswith(b"a2 NO [BADURL "), lines
    status = await c.command("a3", "STATUS Composed (MESSAGES)")
    assert b"MESSAGES 0" in status[0]
    await c.close()


async def test_a_missing_mailbox_is_trycreate_before_any_url(imap: Imap) -> None:
    """RFC 4469 5 (imaptest's catenate script): the client is told to create the
    mailbox, even when a URL would not resolve either."""
    c, validity = await _setup(imap)
    url = b"/INBOX;UIDVALIDITY=%d/;UID=1/;SECTION=HEADER" % (validity + 1)
    lines = await _catenate(c, "a1", [("TEXT", HEADER), ("URL", url)], mailbox="Nowhere")
    assert lines[-1].startswith(b"a1 NO [TRYCREATE] "), lines
    await c.close()


async def test_first_bad_url_is_named(imap: Imap) -> None:
    c, _ = await _setup(imap)
    lines = await _catenate(c, "a1", [("URL", b"/INBOX/;UID=1"), ("URL", b"/INBOX/;UID=98"),
                                      ("URL", b"/INBOX/;UID=99")])
    assert lines[-1].startswith(b"a1 NO [BADURL /INBOX/;UID=98] "), lines
    await c.close()


async def test_another_users_mail_cannot_be_named(imap: Imap) -> None:
    # bob has a message with UID 1 in his INBOX; alice's URL reads her own INBOX only.
    bob = await ScriptClient.connect(imap.port)
    await bob.login("bob@example.test", imap.password)
    bob.writer.write(b"p1 APPEND INBOX {%d+}\r\n" % len(SOURCE) + SOURCE + b"\r\n")
    assert (await bob.until("p1"))[-1].startswith(b"p1 OK [APPENDUID ")
    await bob.close()
    c = await imap.session()
    assert (await c.command("a0", "CREATE Composed"))[-1].startswith(b"a0 OK")
    lines = await _catenate(c, "a1", [("URL", b"/INBOX/;UID=1")])
    assert lines[-1].startswith(b"a1 NO [BADURL /INBOX/;UID=1] "), lines
    await c.close()


async def test_bad_catenate_syntax(imap: Imap) -> None:
    c, _ = await _setup(imap)
    for tag, text in [("b1", 'APPEND Composed CATENATE ()'),
                      ("b2", 'APPEND Composed CATENATE (TEXT "quoted")'),
                      ("b3", 'APPEND Composed CATENATE (FOO "/INBOX/;UID=1")'),
                      ("b4", 'APPEND Composed CATENATE URL "/INBOX/;UID=1"')]:
        lines = await c.command(tag, text)
        assert lines[-1].startswith(f"{tag} BAD".encode()), lines
    await c.close()


def test_url_parser() -> None:
    assert imapurl.parse("/INBOX;UIDVALIDITY=385759045/;UID=20/;SECTION=1.2/;PARTIAL=0.1024"
                         ) == imapurl.MessageUrl("INBOX", 20, 385759045, "1.2", (0, 1024))
    assert imapurl.parse("/Sent%20Items/a%C3%A9/;uid=3/;section=HEADER") == (
        imapurl.MessageUrl("Sent Items/aé", 3, None, "HEADER"))
    assert imapurl.parse("/inbox/;UID=1/;PARTIAL=5").partial == (5, None)
    for bad in [";UID=1", "imap://h/INBOX/;UID=1", "/INBOX", "/INBOX/;UID=0",
                "/INBOX/;SECTION=1/;UID=2", "/INBOX/;UID=1/;URLAUTH=x", "/%zz/;UID=1",
                "/INBOX;UIDVALIDITY=x/;UID=1", "/INBOX/;UID=1/;FOO=2", "/INBOX/;UID=1 x",
                "/INBOX/;UID=99999999999", "/INBOX/;UID=1/;PARTIAL=-1"]:
        with pytest.raises(imapurl.BadUrl):
            imapurl.parse(bad)
    assert imapurl.response_text("/a]b\r\n") == "/a?b??"
