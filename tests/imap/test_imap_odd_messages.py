"""Malformed and odd messages are stored and answered, never with a server error."""

from __future__ import annotations

import random

from imap_script import Imap

from letterlock.imap.commands.sort import base_subject

ODD = [
    b"",  # replaced below: empty messages are refused at APPEND
    b"no header at all, just text\r\n",
    b"Subject: no body",
    b"From: a@b.c, c@d.e\r\nSender: x@y.z, w@v.u\r\nTo: ;\r\nCc: undisclosed:;\r\n\r\nx\r\n",
    b"Subject: \xff\xfe 8-bit \xc3\x28 bad utf-8\r\nFrom: \"J\xf6rg\" <j@x>\r\n\r\n\xff\r\n",
    b"Content-Type: multipart/mixed; boundary=\"never-closed\"\r\n\r\n--never-closed\r\n"
    b"Content-Type: text/plain\r\n\r\npart one without end",
    b"Content-Type: multipart/alternative\r\n\r\nmultipart without boundary\r\n",
    b"Content-Type: text/plain; charset=x-unknown-charset\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\n!!!not base64!!!\r\n",
    b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\n"
    b"begin 644 f\r\n`\r\nend\r\n",
    b"Content-Type: message/rfc822\r\n\r\nContent-Type: message/rfc822\r\n\r\n"
    b"Subject: innermost\r\n\r\ndeep\r\n",
    b"Subject: =?utf-8?b?broken?= =?unknown?q?x?=\r\nDate: not a date\r\n\r\nbody\n"
    b"bare LF lines\n",
    b"X-Folded: a\r\n  b\r\n\tc\r\nFrom: (comment only)\r\nReply-To: <>\r\n\r\n",
]


def _nested(depth: int) -> bytes:
    head = b"".join(b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i)
                    for i in range(depth))
    return head + b"Content-Type: text/plain\r\n\r\nleaf\r\n"


async def test_odd_messages_fetch_and_search_without_server_errors(imap: Imap) -> None:
    rng = random.Random(7)
    messages = [m for m in ODD if m] + [_nested(80)]
    pieces = [b"Content-Type: multipart/mixed; boundary=z\r\n", b"--z\r\n", b"--z--\r\n",
              b"\r\n", b"Content-Type: message/rfc822\r\n", b"\xff", b"text\r\n", b"\n",
              b"Content-Transfer-Encoding: quoted-printable\r\n", b"=\r\n", b"=ZZ"]
    messages += [b"".join(rng.choice(pieces) for _ in range(rng.randint(1, 30))) or b"x"
                 for _ in range(20)]
    c = await imap.session()
    for i, raw in enumerate(messages):
        lines = await c.command(f"p{i}", b"APPEND INBOX {%d+}\r\n" % len(raw) + raw)
        assert lines[-1].startswith(f"p{i} OK".encode()), lines
    lines = await c.command("e", "APPEND INBOX {0+}\r\n")
    assert lines[-1].startswith(b"e NO")
    await c.command("s", "SELECT INBOX")
    for n, query in enumerate([
            "FETCH 1:* (UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODYSTRUCTURE BODY)",
            "FETCH 1:* (BODY.PEEK[] BODY.PEEK[TEXT] BODY.PEEK[HEADER] RFC822.HEADER)",
            "FETCH 1:* (BODY.PEEK[1] BODY.PEEK[1.MIME] BODY.PEEK[2.1.HEADER] BODY.PEEK[1.2.3])",
            "FETCH 1:* (BODY.PEEK[HEADER.FIELDS (FROM SUBJECT)] BODY.PEEK[1]<2.5>)",
            "SEARCH TEXT deep", "SEARCH OR FROM jorg SUBJECT broken", "SEARCH SENTSINCE 1-Jan-2000",
            "SORT (SUBJECT DATE FROM) UTF-8 ALL"]):
        lines = await c.command(f"f{n}", query)
        assert lines[-1].startswith(f"f{n} OK".encode()), (query, lines[-1])
    for seq in range(1, len(messages) + 1):
        lines = await c.command(f"b{seq}", f"FETCH {seq} (BINARY.PEEK[1])")
        assert lines[-1].split()[1] in (b"OK", b"NO"), lines
        assert b"SERVERBUG" not in lines[-1]


def test_base_subject_rules() -> None:
    assert base_subject("Re: [list] Fwd: Hello (fwd)") == "HELLO"
    assert base_subject("[Fwd: Re: Topic]") == "TOPIC"
    assert base_subject("  re :  spaced  out  ") == "SPACED OUT"
    assert base_subject("[only a blob]") == "[ONLY A BLOB]"


NUL_MESSAGE = (
    b"From: \"Null\x00Name\" <null@example.test>\r\n"
    b"Subject: a\x00subject\r\n"
    b"Message-ID: <id\x00@example.test>\r\n"
    b"Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n"
    b"--b\r\n"
    b"Content-Type: text/plain; charset=\"us\x00ascii\"; x-param=\"p\x00q\"\r\n"
    b"Content-Description: desc\x00ription\r\n"
    b"Content-ID: <cid\x00@example.test>\r\n"
    b"Content-Disposition: attachment; filename=\"f\x00.txt\"\r\n"
    b"Content-Language: e\x00n\r\n"
    b"Content-Location: loc\x00ation\r\n\r\n"
    b"body with a \x00 NUL\r\n"
    b"--b--\r\n")


async def test_no_nul_in_literals_for_strings_a_message_supplies(imap: Imap) -> None:
    # Issue 17 point 5: BODYSTRUCTURE sent a parameter's NUL inside a literal, which
    # RFC 9051 forbids (literal: *CHAR8, no NUL); so did ENVELOPE and the header
    # sections. Every string from the message goes out without NUL (as 0x80, like
    # BODY[] sections), for plain and UTF8=ACCEPT sessions alike.
    ref = await imap.app.accounts.resolve(imap.user)
    [result] = await imap.app.delivery.deliver(NUL_MESSAGE, [ref])
    assert result.ok
    for utf8 in (False, True):
        c = await imap.session()
        if utf8:
            lines = await c.command("u", "ENABLE UTF8=ACCEPT")
            assert lines[-1].startswith(b"u OK"), lines
        await c.command("s", "SELECT INBOX")
        for n, query in enumerate([
                "FETCH 1 (ENVELOPE BODYSTRUCTURE BODY)",
                "FETCH 1 (BODY.PEEK[HEADER] RFC822.HEADER BODY.PEEK[HEADER.FIELDS (SUBJECT)])",
                "FETCH 1 (RFC822 RFC822.TEXT BODY.PEEK[] BODY.PEEK[TEXT] BODY.PEEK[1.MIME])",
                "FETCH 1 (BODY.PEEK[1] BODY.PEEK[1]<0.20>)"]):
            lines = await c.command(f"f{n}", query)
            assert lines[-1].startswith(f"f{n} OK".encode()), (query, lines[-1])
            for line in lines:
                assert b"\x00" not in line, (utf8, query, line)
        lines = await c.command("e", "FETCH 1 (ENVELOPE BODYSTRUCTURE)")
        response = b"".join(lines)
        for text in (b"Null\x80Name", b"a\x80subject", b"us\x80ascii", b"p\x80q",
                     b"desc\x80ription", b"f\x80.txt", b"e\x80n", b"loc\x80ation"):
            assert text in response, (utf8, text, response)
        await c.command("l", "LOGOUT")


async def test_date_with_year_99999_is_clamped_not_dropped_from_date_searches(
        imap: Imap) -> None:
    # Issue 17 point 6: SENTSINCE/SENTBEFORE/SENTON left out a message whose Date: has
    # year 99999 (Python's datetime stops at 9999). It counts as sent at the latest
    # date there is, as Dovecot clamps it: found by SENTSINCE, not by SENTBEFORE, and
    # sorted last by DATE.
    c = await imap.session()
    for n, date in enumerate([b"Mon, 1 Jan 99999 10:00:00 +0000",
                              b"Wed, 1 Jan 2025 10:00:00 -0500",
                              b"Fri, 31 Dec 99999 23:59:59 -1200"]):
        raw = b"Date: " + date + b"\r\nSubject: m%d\r\n\r\nbody\r\n" % n
        lines = await c.command(f"a{n}", b"APPEND INBOX {%d+}\r\n" % len(raw) + raw)
        assert lines[-1].startswith(f"a{n} OK".encode()), lines
    await c.command("s", "SELECT INBOX")
    for query, expected in [("SEARCH SENTSINCE 1-Jan-2020", b"* SEARCH 1 2 3"),
                            ("SEARCH SENTSINCE 1-Jan-9999", b"* SEARCH 1 3"),
                            ("SEARCH SENTBEFORE 1-Jan-2030", b"* SEARCH 2"),
                            ("SEARCH SENTON 31-Dec-9999", b"* SEARCH 1 3"),
                            ("SEARCH NOT SENTBEFORE 1-Jan-2030", b"* SEARCH 1 3"),
                            ("SORT (DATE) UTF-8 ALL", b"* SORT 2 1 3"),
                            ("SORT (REVERSE DATE) UTF-8 ALL", b"* SORT 1 3 2")]:
        lines = await c.command("q", query)
        assert lines[-1].startswith(b"q OK"), (query, lines)
        assert lines[0] == expected, (query, lines)


async def test_search_survives_odd_charsets_and_dates(imap: Imap) -> None:
    # Issue 12 point 5: one odd message made every SEARCH of its mailbox answer
    # NO [SERVERBUG]. It is searched as best it can be; the others are unaffected.
    c = await imap.session()
    odd = [b"Content-Type: text/plain; charset=\"ut\x00f-8\"\r\nSubject: nul charset\r\n\r\n"
           b"needle one\r\n",
           b"Content-Type: text/plain; charset=\"\xc3\xa9t\xc3\xa9\"\r\nSubject: accented\r\n\r\n"
           b"needle two\r\n",
           b"Content-Type: text/plain; charset=\"\xff\"\r\n"
           b"Content-Transfer-Encoding: quoted-printable\r\nSubject: =?\xff?q?x?=\r\n\r\n"
           b"needle=20three\r\n",
           b"Date: Mon, 1 Jan 99999 10:00:00 +0000\r\nSubject: far future\r\n\r\nneedle four\r\n",
           b"Subject: plain\r\n\r\nneedle five\r\n"]
    for n, raw in enumerate(odd):
        lines = await c.command(f"a{n}", b"APPEND INBOX ~{%d+}\r\n" % len(raw) + raw)
        assert lines[-1].startswith(f"a{n} OK".encode()), lines
    await c.command("s", "SELECT INBOX")
    for query, expected in [("SEARCH BODY needle", b"* SEARCH 1 2 3 4 5"),
                            ("SEARCH TEXT needle", b"* SEARCH 1 2 3 4 5"),
                            ("SEARCH CHARSET UTF-8 BODY needle", b"* SEARCH 1 2 3 4 5"),
                            ("SEARCH BODY three", b"* SEARCH 3"),
                            ("SEARCH SUBJECT accented", b"* SEARCH 2"),
                            ("SEARCH SENTBEFORE 1-Jan-2000", b"* SEARCH"),
                            ("SEARCH HEADER Content-Type ut", b"* SEARCH 1")]:
        lines = await c.command("q", query)
        assert lines[-1].startswith(b"q OK"), (query, lines)
        assert lines[0] == expected, (query, lines)
    for charset in ("base64", "rot13", "x-no-such"):
        lines = await c.command("c", f"SEARCH CHARSET {charset} BODY needle")
        assert lines[-1].startswith(b"c NO [BADCHARSET"), (charset, lines)
