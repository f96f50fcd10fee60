"""Protocol scripts: client lines in, server lines out, over a real socket."""

from __future__ import annotations

import asyncio
import base64

from imap_script import Imap, ScriptClient

MSG = (b"From: Bob <bob@example.org>\r\nTo: alice@example.test\r\nSubject: Hello\r\n"
       b"Date: Tue, 2 Jan 2024 10:00:00 +0000\r\nMessage-ID: <m1@example.org>\r\n\r\n"
       b"Body line\r\n")


async def _deliver(imap: Imap, raw: bytes = MSG, mailbox: str = "INBOX") -> None:
    ref = await imap.app.accounts.resolve(imap.user)
    await imap.app.mailboxes.append(ref, mailbox, raw)


async def _seen_by_another_session(imap: Imap) -> None:
    """Let a first session take the \\Recent flag of everything delivered so far."""
    c = await imap.session("INBOX")
    await c.command("r2", "LOGOUT")


async def test_greeting_capability_and_logout(imap: Imap) -> None:
    c = await ScriptClient.connect(imap.port)
    lines = await c.command("a1", "CAPABILITY")
    caps = lines[0].split()
    for cap in (b"IMAP4rev1", b"IMAP4rev2", b"STARTTLS", b"AUTH=PLAIN", b"IDLE", b"UIDPLUS",
                b"MOVE", b"CONDSTORE", b"QRESYNC", b"LITERAL+", b"ESEARCH", b"SASL-IR"):
        assert cap in caps
    assert lines[-1] == b"a1 OK CAPABILITY completed"
    lines = await c.command("a2", "LOGOUT")
    assert lines[0].startswith(b"* BYE")
    assert lines[-1].startswith(b"a2 OK")


async def test_malformed_commands_get_bad_and_connection_survives(imap: Imap) -> None:
    c = await ScriptClient.connect(imap.port)
    for bad in (b"a1 FROB", b"a2 FETCH", b"a3 LOGIN onlyuser", b"a4 SELECT",
                b'a5 LOGIN "unterminated', b"a6 UID NOOP"):
        lines = await c.command(bad.split()[0].decode(), bad.split(b" ", 1)[1])
        assert lines[-1].startswith(bad.split()[0] + b" BAD"), (bad, lines)
    c.send(b"")
    assert (await c.response()).startswith(b"* BAD")
    c.send(b"+++ NOOP")
    assert (await c.response()).startswith(b"* BAD")
    lines = await c.command("a7", "NOOP")
    assert lines[-1] == b"a7 OK NOOP completed"


async def test_state_is_checked_before_dispatch(imap: Imap) -> None:
    c = await ScriptClient.connect(imap.port)
    lines = await c.command("a1", "SELECT INBOX")
    assert lines[-1].startswith(b"a1 BAD")
    await c.login(imap.user, imap.password)
    lines = await c.command("a2", "FETCH 1 FLAGS")
    assert lines[-1].startswith(b"a2 BAD") and b"selected" in lines[-1]
    lines = await c.command("a3", f'LOGIN "{imap.user}" "{imap.password}"')
    assert lines[-1].startswith(b"a3 BAD")


async def test_wrong_password_is_no_authenticationfailed(imap: Imap) -> None:
    c = await ScriptClient.connect(imap.port)
    lines = await c.command("a1", f'LOGIN "{imap.user}" "wrong password"')
    assert lines[-1].startswith(b"a1 NO [AUTHENTICATIONFAILED]")
    lines = await c.command("a2", 'LOGIN "nobody@example.test" "whatever1"')
    assert lines[-1].startswith(b"a2 NO [AUTHENTICATIONFAILED]")


async def test_authenticate_plain_with_and_without_initial_response(imap: Imap) -> None:
    token = base64.b64encode(f"\0{imap.user}\0{imap.password}".encode()).decode()
    c = await ScriptClient.connect(imap.port)
    lines = await c.command("a1", f"AUTHENTICATE PLAIN {token}")
    assert lines[-1].startswith(b"a1 OK [CAPABILITY")
    c2 = await ScriptClient.connect(imap.port)
    c2.send(b"b1 AUTHENTICATE PLAIN")
    assert (await c2.response()).startswith(b"+")
    c2.send(token.encode())
    lines = await c2.until("b1")
    assert lines[-1].startswith(b"b1 OK")
    c3 = await ScriptClient.connect(imap.port)
    c3.send(b"c1 AUTHENTICATE PLAIN")
    await c3.response()
    c3.send(b"*")
    lines = await c3.until("c1")
    assert lines[-1].startswith(b"c1 BAD")


async def test_synchronizing_and_nonsynchronizing_literals(imap: Imap) -> None:
    c = await ScriptClient.connect(imap.port)
    user = imap.user.encode()
    c.send(b"a1 LOGIN {%d}" % len(user))
    assert (await c.response()).startswith(b"+ ")
    c.send(user + b" {%d+}\r\n" % len(imap.password) + imap.password.encode())
    lines = await c.until("a1")
    assert lines[-1].startswith(b"a1 OK")
    c.send(b"a2 APPEND INBOX (\\Seen) {%d+}\r\n" % len(MSG) + MSG + b"\r\n")
    lines = await c.until("a2")
    assert lines[-1].startswith(b"a2 OK [APPENDUID ")


async def test_literal_above_limit_is_refused_without_reading_it(imap: Imap) -> None:
    c = await imap.session()
    too_big = imap.app.config.imap.max_literal_bytes + 1
    lines = await c.command("a1", b"APPEND INBOX {%d}" % too_big)
    assert lines[-1].startswith(b"a1 NO [TOOBIG]")
    lines = await c.command("a2", "NOOP")
    assert lines[-1].startswith(b"a2 OK")


async def test_overlong_line_is_bad_and_discarded(imap: Imap) -> None:
    c = await ScriptClient.connect(imap.port)
    c.send(b"a1 NOOP " + b"x" * (imap.app.config.imap.max_line_bytes + 100))
    assert (await c.response()).startswith(b"* BAD")
    lines = await c.command("a2", "NOOP")
    assert lines[-1].startswith(b"a2 OK")


async def test_starttls_discards_pipelined_plaintext(imap: Imap) -> None:
    """Commands pipelined after STARTTLS in the clear must not run (CVE-2011-0411)."""
    c = await ScriptClient.connect(imap.port)
    c.send(b"a1 STARTTLS\r\na2 CAPABILITY")
    assert (await c.response()).startswith(b"a1 OK")
    await c.writer.start_tls(imap.client_ssl)
    lines = await c.command("a3", "CAPABILITY")
    assert lines[0].startswith(b"* CAPABILITY")
    assert b"STARTTLS" not in lines[0]
    assert all(not line.startswith(b"a2") for line in lines)
    await c.login(imap.user, imap.password)


async def test_implicit_tls_port(imap: Imap) -> None:
    c = await ScriptClient.connect(imap.tls_port, imap.client_ssl)
    await c.login(imap.user, imap.password)
    lines = await c.command("a1", "SELECT INBOX")
    assert lines[-1].startswith(b"a1 OK [READ-WRITE]")


async def test_select_fetch_store_expunge_script(imap: Imap) -> None:
    await _deliver(imap)
    await _deliver(imap, MSG.replace(b"Hello", b"Second"))
    await _seen_by_another_session(imap)
    c = await imap.session()
    lines = await c.command("a1", "SELECT INBOX")
    assert b"* 2 EXISTS" in lines
    assert any(line.startswith(b"* OK [UIDVALIDITY ") for line in lines)
    assert any(line.startswith(b"* OK [UIDNEXT 3]") for line in lines)
    lines = await c.command("a2", "FETCH 1:2 (UID FLAGS RFC822.SIZE)")
    assert lines[0] == b"* 1 FETCH (UID 1 FLAGS () RFC822.SIZE %d)" % len(MSG)
    lines = await c.command("a3", "FETCH 3 FLAGS")
    assert lines[-1].startswith(b"a3 BAD")
    lines = await c.command("a4", "UID FETCH 3:* FLAGS")
    # "3:*" includes the highest UID (2) even though 3 does not exist.
    assert lines[0] == b"* 2 FETCH (UID 2 FLAGS ())"
    lines = await c.command("a5", "STORE 1 +FLAGS (\\Deleted $Junk)")
    assert lines[-1] == b"a5 OK STORE completed"
    assert any(b"FETCH (FLAGS (\\Deleted $Junk))" in line for line in lines)
    lines = await c.command("a6", "EXPUNGE")
    assert lines[0] == b"* 1 EXPUNGE"
    lines = await c.command("a7", "FETCH 1 (UID BODY.PEEK[HEADER.FIELDS (Subject)])")
    assert lines[0] == (b"* 1 FETCH (UID 2 BODY[HEADER.FIELDS (SUBJECT)] {19}\r\n"
                        b"Subject: Second\r\n\r\n)")


async def test_body_sections_partial_and_seen(imap: Imap) -> None:
    await _deliver(imap)
    await _seen_by_another_session(imap)
    c = await imap.session("INBOX")
    lines = await c.command("a2", "FETCH 1 (BODY.PEEK[TEXT]<0.4>)")
    assert lines[0] == b"* 1 FETCH (BODY[TEXT]<0> {4}\r\nBody)"
    lines = await c.command("a3", "FETCH 1 (BODY[1])")
    assert lines[0] == b"* 1 FETCH (BODY[1] {11}\r\nBody line\r\n FLAGS (\\Seen))"
    lines = await c.command("a4", "FETCH 1 (BODY.PEEK[5] BINARY.SIZE[1])")
    assert lines[0] == b"* 1 FETCH (BODY[5] NIL BINARY.SIZE[1] 11)"


async def test_two_sessions_see_each_others_changes(imap: Imap) -> None:
    await _deliver(imap)
    a = await imap.session("INBOX")
    b = await imap.session("INBOX")
    await a.command("a1", "STORE 1 +FLAGS (\\Flagged)")
    lines = await b.command("b1", "NOOP")
    assert b"* 1 FETCH (FLAGS (\\Flagged))" in lines
    await _deliver(imap)
    lines = await b.command("b2", "NOOP")
    assert b"* 2 EXISTS" in lines
    await a.command("a2", "STORE 1 +FLAGS (\\Deleted)")
    await a.command("a3", "EXPUNGE")
    # During FETCH no EXPUNGE may be sent; the following NOOP brings it.
    lines = await b.command("b3", "FETCH 1 FLAGS")
    assert not any(line.endswith(b"EXPUNGE") for line in lines)
    lines = await b.command("b4", "NOOP")
    assert b"* 1 EXPUNGE" in lines


async def test_idle_reports_delivery_within_a_second(imap: Imap) -> None:
    c = await imap.session("INBOX")
    c.send(b"a2 IDLE")
    assert (await c.response()).startswith(b"+ ")
    loop = asyncio.get_running_loop()
    started = loop.time()
    await _deliver(imap)
    line = await c.response(timeout=1.0)
    assert line.rstrip() == b"* 1 EXISTS"
    assert loop.time() - started < 1.0
    c.send(b"DONE")
    lines = await c.until("a2")
    assert lines[-1] == b"a2 OK IDLE terminated"


async def test_condstore_and_qresync_resync(imap: Imap) -> None:
    for _ in range(3):
        await _deliver(imap)
    c = await imap.session()
    lines = await c.command("a1", "ENABLE QRESYNC")
    assert lines[0] == b"* ENABLED QRESYNC"
    lines = await c.command("a2", "SELECT INBOX")
    validity = next(int(x.split()[3].rstrip(b"]")) for x in lines
                    if x.startswith(b"* OK [UIDVALIDITY"))
    modseq = next(int(x.split()[3].rstrip(b"]")) for x in lines
                  if x.startswith(b"* OK [HIGHESTMODSEQ"))
    await c.command("a3", "UNSELECT")
    # Offline changes by another session.
    other = await imap.session("INBOX")
    await other.command("o2", "STORE 2 +FLAGS (\\Seen)")
    await other.command("o3", "STORE 3 +FLAGS (\\Deleted)")
    await other.command("o4", "EXPUNGE")
    lines = await c.command("a4", f"SELECT INBOX (QRESYNC ({validity} {modseq} 1:3))")
    assert b"* VANISHED (EARLIER) 3" in lines
    assert any(x.startswith(b"* 2 FETCH (UID 2 FLAGS (\\Seen) MODSEQ (") for x in lines)
    lines = await c.command("a5", f"UID FETCH 1:* (FLAGS) (CHANGEDSINCE {modseq} VANISHED)")
    assert b"* VANISHED (EARLIER) 3" in lines
    lines = await c.command("a6", f"STORE 1 (UNCHANGEDSINCE {modseq}) +FLAGS (\\Answered)")
    assert any(b"MODSEQ" in x for x in lines)
    lines = await c.command("a7", "STORE 2 (UNCHANGEDSINCE 1) +FLAGS (\\Answered)")
    assert lines[-1].startswith(b"a7 OK [MODIFIED 2]")


async def test_search_esearch_and_charset(imap: Imap) -> None:
    await _deliver(imap)
    latin = (b"From: x@example.org\r\nSubject: =?iso-8859-1?q?caf=E9?=\r\n"
             b"Content-Type: text/plain; charset=iso-8859-1\r\n"
             b"Content-Transfer-Encoding: quoted-printable\r\n\r\nd=E9j=E0 vu\r\n")
    await _deliver(imap, latin)
    c = await imap.session("INBOX")
    lines = await c.command("a2", 'SEARCH CHARSET UTF-8 SUBJECT {5+}\r\ncaf\xc3\xa9'.encode(
        "latin-1"))
    assert lines[0] == b"* SEARCH 2"
    # A multi-byte character cut in half: the fragment is dropped, "d\xe9j" still matches.
    lines = await c.command("a3", b"SEARCH CHARSET UTF-8 BODY {5+}\r\nd\xc3\xa9j\xc3")
    assert lines[0] == b"* SEARCH 2" and lines[-1].startswith(b"a3 OK")
    lines = await c.command("a4", "UID SEARCH RETURN (MIN MAX COUNT ALL) ALL")
    assert lines[0] == b'* ESEARCH (TAG "a4") UID MIN 1 MAX 2 ALL 1:2 COUNT 2'
    lines = await c.command("a5", "SEARCH CHARSET KOI8-X ALL")
    assert lines[-1].startswith(b"a5 NO [BADCHARSET")
    lines = await c.command("a6", "SEARCH NOT FROM bob OR SEEN LARGER 1")
    assert lines[0] == b"* SEARCH 2"


async def test_list_special_use_and_status(imap: Imap) -> None:
    c = await imap.session()
    lines = await c.command("a1", 'LIST "" "*"')
    assert b'* LIST (\\HasNoChildren \\Sent) "/" Sent' in lines
    assert lines[0].endswith(b'"/" INBOX')
    await c.command("a2", 'CREATE "Projekte/Entw&APw-rfe"')
    lines = await c.command("a3", 'LIST "" "Projekte/%"')
    assert lines[0] == b'* LIST (\\HasNoChildren) "/" Projekte/Entw&APw-rfe'
    await c.command("a4", "ENABLE UTF8=ACCEPT")
    lines = await c.command("a5", 'LIST "" "Projekte/%"')
    assert lines[0] == '* LIST (\\HasNoChildren) "/" "Projekte/Entwürfe"'.encode()
    lines = await c.command("a6", 'LIST (SPECIAL-USE) "" "*" RETURN (STATUS (MESSAGES))')
    assert all(b"Projekte" not in x for x in lines)
    assert b"* STATUS Trash (MESSAGES 0)" in lines
    lines = await c.command("a7", 'LIST "" ""')
    assert lines[0] == b'* LIST (\\Noselect) "/" ""'


async def test_fetch_of_message_expunged_elsewhere_is_expungeissued(imap: Imap) -> None:
    await _deliver(imap)
    await _deliver(imap)
    a = await imap.session("INBOX")
    b = await imap.session("INBOX")
    await a.command("a1", "STORE 1 +FLAGS.SILENT (\\Deleted)")
    await a.command("a2", "EXPUNGE")
    lines = await b.command("b1", "FETCH 1:2 (UID)")
    assert lines == [b"* 2 FETCH (UID 2)", b"b1 OK [EXPUNGEISSUED] FETCH completed; some "
                     b"messages were expunged meanwhile"]
    lines = await b.command("b2", "NOOP")
    assert lines[0] == b"* 1 EXPUNGE"


async def test_store_on_message_expunged_elsewhere_answers_for_its_ghost(imap: Imap) -> None:
    await _deliver(imap)
    await _deliver(imap)
    a = await imap.session("INBOX")
    b = await imap.session("INBOX")
    await a.command("a1", "STORE 1 +FLAGS.SILENT (\\Deleted $Mine)")
    await a.command("a2", "EXPUNGE")
    # b has not been told of the EXPUNGE (it may not be sent during STORE): every
    # message it names gets its FETCH FLAGS; the gone one as it was, changed as asked.
    lines = await b.command("b1", "STORE 1:2 +FLAGS (\\Seen)")
    fetches = [x for x in lines if b"FETCH" in x]
    assert b"* 1 FETCH (FLAGS (\\Deleted \\Seen $Mine))" in fetches
    assert b"* 2 FETCH (FLAGS (\\Seen))" in fetches
    assert lines[-1].startswith(b"b1 OK [EXPUNGEISSUED]")
    lines = await b.command("b2", "NOOP")
    assert b"* 1 EXPUNGE" in lines
    lines = await b.command("b3", "FETCH 1 (FLAGS)")
    assert lines[0] == b"* 1 FETCH (FLAGS (\\Seen))"


async def test_move_reports_copyuid_and_expunge(imap: Imap) -> None:
    await _deliver(imap)
    await _deliver(imap)
    c = await imap.session("INBOX")
    lines = await c.command("a2", "UID MOVE 2 Archive")
    assert lines[0].startswith(b"* OK [COPYUID ") and lines[0].split()[4] == b"2"
    assert lines[1] == b"* 2 EXPUNGE"
    assert lines[-1] == b"a2 OK UID MOVE completed"
    lines = await c.command("a3", "COPY 1 Nowhere")
    assert lines[-1].startswith(b"a3 NO [TRYCREATE]")
    # A name no mailbox can have (broken modified UTF-7): NO, as for SELECT or DELETE.
    for tag, verb in (("a5", "COPY"), ("a6", "MOVE")):
        lines = await c.command(tag, f"{verb} 1 &Jjo")
        assert lines[-1].startswith(tag.encode() + b" NO [NONEXISTENT]"), lines
    lines = await c.command("a4", "FETCH 1:* (UID)")
    assert lines[0] == b"* 1 FETCH (UID 1)"


async def test_examine_is_read_only(imap: Imap) -> None:
    await _deliver(imap)
    await _seen_by_another_session(imap)
    c = await imap.session()
    lines = await c.command("a1", "EXAMINE INBOX")
    assert lines[-1].startswith(b"a1 OK [READ-ONLY]")
    lines = await c.command("a2", "FETCH 1 (BODY[TEXT])")
    assert b"FLAGS" not in lines[0]
    lines = await c.command("a3", "STORE 1 +FLAGS (\\Seen)")
    assert lines[-1].startswith(b"a3 NO")
    lines = await c.command("a4", "FETCH 1 FLAGS")
    assert lines[0] == b"* 1 FETCH (FLAGS ())"


async def test_rev2_mode_uses_esearch_and_no_recent(imap: Imap) -> None:
    await _deliver(imap)
    c = await imap.session()
    lines = await c.command("a1", "ENABLE IMAP4rev2")
    assert lines[0] == b"* ENABLED IMAP4rev2"
    lines = await c.command("a2", "SELECT INBOX")
    assert not any(b"RECENT" in x for x in lines)
    assert b'* LIST () "/" INBOX' in lines
    lines = await c.command("a3", "SEARCH ALL")
    assert lines[0] == b'* ESEARCH (TAG "a3") ALL 1'


async def test_utf8_append_and_mailbox_names(imap: Imap) -> None:
    c = await imap.session()
    await c.command("a1", "ENABLE UTF8=ACCEPT")
    raw = "Subject: Grüße\r\nFrom: jörg@example.org\r\n\r\nHallo\r\n".encode()
    name = "Postfächer".encode()
    lines = await c.command("a2", b'CREATE "' + name + b'"')
    assert lines[-1].startswith(b"a2 OK")
    lines = await c.command("a3", b'APPEND "' + name + b'" UTF8 (~{%d+}\r\n' % len(raw)
                            + raw + b")")
    assert lines[-1].startswith(b"a3 OK [APPENDUID")
    await c.command("a4", b'SELECT "' + name + b'"')
    lines = await c.command("a5", "FETCH 1 ENVELOPE")
    assert "\"Grüße\"".encode() in lines[0]


async def test_bodystructure_of_nested_message(imap: Imap) -> None:
    raw = (b"Subject: outer\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
           b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhi\r\n"
           b"--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: in\r\n\r\nx\r\n--b--\r\n")
    await _deliver(imap, raw)
    await _seen_by_another_session(imap)
    c = await imap.session("INBOX")
    lines = await c.command("a2", "FETCH 1 (BODYSTRUCTURE BODY[2.HEADER] BODY.PEEK[2.1])")
    assert lines[0] == (
        b'* 1 FETCH (BODYSTRUCTURE (("text" "plain" ("charset" "utf-8") NIL NIL "7bit" 2 0 '
        b'NIL NIL NIL NIL)("message" "rfc822" NIL NIL NIL "7bit" 16 (NIL "in" NIL NIL NIL '
        b'NIL NIL NIL NIL NIL) ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 1 0 NIL '
        b'NIL NIL NIL) 2 NIL NIL NIL NIL) "mixed" ("boundary" "b") NIL NIL NIL) '
        b"BODY[2.HEADER] {15}\r\nSubject: in\r\n\r\n BODY[2.1] {1}\r\nx FLAGS (\\Seen))")


async def test_sort_by_subject_date_and_reverse_size(imap: Imap) -> None:
    msgs = [
        b"From: Zed <z@example.org>\r\nSubject: Re: [list] beta\r\n"
        b"Date: Wed, 3 Jan 2024 10:00:00 +0000\r\n\r\nxx\r\n",
        b"From: adam@example.org\r\nSubject: alpha (fwd)\r\n"
        b"Date: Thu, 4 Jan 2024 10:00:00 +0000\r\n\r\nxxxxxxxx\r\n",
        b"From: Mia <m@example.org>\r\nSubject: =?utf-8?q?Fwd=3A_Beta?=\r\n"
        b"Date: Mon, 1 Jan 2024 10:00:00 +0000\r\n\r\nx\r\n",
    ]
    for raw in msgs:
        await _deliver(imap, raw)
    c = await imap.session("INBOX")
    lines = await c.command("a2", "SORT (SUBJECT) UTF-8 ALL")
    assert lines[0] == b"* SORT 2 1 3"
    lines = await c.command("a3", "SORT (DATE) UTF-8 ALL")
    assert lines[0] == b"* SORT 3 1 2"
    lines = await c.command("a4", "UID SORT (REVERSE SIZE) UTF-8 NOT FROM mia")
    by_size = sorted((1, 2), key=lambda uid: -len(msgs[uid - 1]))
    assert lines[0] == b"* SORT %d %d" % tuple(by_size)
    lines = await c.command("a5", "SORT (FROM) UTF-8 ALL")
    assert lines[0] == b"* SORT 2 3 1"
    lines = await c.command("a6", "SORT (DISPLAYFROM) UTF-8 ALL")
    assert lines[0] == b"* SORT 2 3 1"


async def test_searchres_saves_and_reuses_results(imap: Imap) -> None:
    for _ in range(4):
        await _deliver(imap)
    c = await imap.session("INBOX")
    await c.command("a2", "STORE 2,4 +FLAGS (\\Flagged)")
    lines = await c.command("a3", "SEARCH RETURN (SAVE) FLAGGED")
    assert lines == [b"a3 OK SEARCH completed, result saved"]
    lines = await c.command("a4", "FETCH $ (UID)")
    assert lines[:2] == [b"* 2 FETCH (UID 2)", b"* 4 FETCH (UID 4)"]
    lines = await c.command("a5", "UID SEARCH UID $ NOT 4")
    assert lines[0] == b"* SEARCH 2"
    lines = await c.command("a6", "SEARCH RETURN (SAVE MIN) FLAGGED")
    assert lines[0] == b'* ESEARCH (TAG "a6") MIN 2'
    lines = await c.command("a7", "UID FETCH $ (UID)")
    assert lines[0] == b"* 2 FETCH (UID 2)" and lines[1].startswith(b"a7 OK")


async def test_recent_goes_to_the_first_session_that_sees_new_mail(imap: Imap) -> None:
    await _deliver(imap)
    a = await imap.session()
    b = await imap.session()
    lines = await b.command("b0", "EXAMINE INBOX")  # shows, does not take
    assert b"* 1 RECENT" in lines
    lines = await a.command("a1", "SELECT INBOX")
    assert b"* 1 RECENT" in lines
    await _deliver(imap)
    lines = await a.command("a2", "NOOP")
    assert lines[:2] == [b"* 2 EXISTS", b"* 2 RECENT"]
    lines = await b.command("b1", "SELECT INBOX")
    assert b"* 0 RECENT" in lines
    lines = await a.command("a3", "FETCH 2 FLAGS")
    assert lines[0] == b"* 2 FETCH (FLAGS (\\Recent))"
    await a.command("a4", "STORE 1 +FLAGS (\\Seen)")
    lines = await a.command("a5", "SEARCH NEW")
    assert lines[0] == b"* SEARCH 2"
    lines = await b.command("b2", "SEARCH OLD")
    assert lines[0] == b"* SEARCH 1 2"


async def test_append_internaldate_keeps_its_offset(imap: Imap) -> None:
    c = await imap.session()
    lines = await c.command("a1", b'APPEND INBOX "05-Mar-2024 23:30:00 -0500" {%d+}\r\n'
                            % len(MSG) + MSG)
    assert lines[-1].startswith(b"a1 OK")
    await c.command("a2", "SELECT INBOX")
    lines = await c.command("a3", "FETCH 1 INTERNALDATE")
    assert lines[0] == b'* 1 FETCH (INTERNALDATE " 5-Mar-2024 23:30:00 -0500")'
    lines = await c.command("a4", "SEARCH ON 5-Mar-2024")
    assert lines[0] == b"* SEARCH 1"


async def test_selected_mailbox_deleted_by_another_session(imap: Imap) -> None:
    a = await imap.session()
    b = await imap.session()
    await a.command("a1", "CREATE Doomed")
    await _deliver(imap, mailbox="Doomed")
    await a.command("a2", "SELECT Doomed")
    await b.command("b1", "DELETE Doomed")
    for i, command in enumerate(["FETCH 1 FLAGS", "NOOP", "SEARCH ALL", "STORE 1 +FLAGS (x)",
                                 "EXPUNGE", "UID FETCH 1 FLAGS"]):
        lines = await a.command(f"x{i}", command)
        assert lines[-1].split()[1] in (b"OK", b"NO"), lines
        assert b"SERVERBUG" not in lines[-1], lines
    lines = await a.command("a3", "SELECT INBOX")
    assert lines[-1].startswith(b"a3 OK")
