"""ESORT, CONTEXT=SEARCH and CONTEXT=SORT (RFC 5267) over a real socket: SORT RETURN
(MIN MAX COUNT ALL PARTIAL), SEARCH RETURN (PARTIAL), and RETURN (UPDATE) contexts
whose ADDTO/REMOVEFROM follow flag changes, new mail and expunges, from this session
and from another."""

from __future__ import annotations

import asyncio
import imaplib

from imap_script import Imap, ScriptClient

# (subject, day of January 2024): sorted by subject 2,4,3,1,5,6; by date 4,2,6,1,5,3.
MAILBOX = [("delta", 4), ("alpha", 2), ("charlie", 6), ("bravo", 1), ("echo", 5),
           ("foxtrot", 3)]


def _raw(subject: str, day: int) -> bytes:
    return (f"From: someone@example.org\r\nTo: alice@example.test\r\nSubject: {subject}\r\n"
            f"Date: Mon, {day} Jan 2024 10:00:00 +0000\r\n\r\n{subject} body\r\n").encode()


async def _append(c: ScriptClient, tag: str, raw: bytes, mailbox: str = "INBOX") -> list[bytes]:
    c.writer.write(f"{tag} APPEND {mailbox} {{{len(raw)}+}}\r\n".encode() + raw + b"\r\n")
    lines = await c.until(tag)
    assert lines[-1].startswith(f"{tag} OK".encode()), lines
    return lines


async def _filled(imap: Imap) -> ScriptClient:
    c = await imap.session()
    for i, (subject, day) in enumerate(MAILBOX):
        await _append(c, f"p{i}", _raw(subject, day))
    assert (await c.command("s", "SELECT INBOX"))[-1].startswith(b"s OK")
    return c


async def test_capabilities(imap: Imap) -> None:
    c = await imap.session()
    caps = (await c.command("a1", "CAPABILITY"))[0].split()
    for cap in (b"ESORT", b"CONTEXT=SEARCH", b"CONTEXT=SORT", b"SORT"):
        assert cap in caps
    await c.close()


async def test_esort_return_options(imap: Imap) -> None:
    c = await _filled(imap)
    assert await c.command("e1", "SORT RETURN (MIN MAX COUNT) (SUBJECT) UTF-8 ALL") == [
        b'* ESEARCH (TAG "e1") MIN 2 MAX 6 COUNT 6', b"e1 OK SORT completed"]
    lines = await c.command("e2", "SORT RETURN (ALL) (SUBJECT) UTF-8 ALL")
    assert lines[0] == b'* ESEARCH (TAG "e2") ALL 2,4,3,1,5:6'
    # RETURN () is ALL; ranges only where the sorted numbers rise by one.
    lines = await c.command("e3", "UID SORT RETURN () (REVERSE DATE) UTF-8 ALL")
    assert lines[0] == b'* ESEARCH (TAG "e3") UID ALL 3,5,1,6,2,4'
    lines = await c.command("e4", "SORT RETURN (PARTIAL 2:3 COUNT) (DATE) UTF-8 ALL")
    assert lines[0] == b'* ESEARCH (TAG "e4") COUNT 6 PARTIAL (2:3 2,6)'
    lines = await c.command("e5", "SORT RETURN (PARTIAL 10:5) (DATE) UTF-8 ALL")
    assert lines[0] == b'* ESEARCH (TAG "e5") PARTIAL (5:10 5,3)'
    lines = await c.command("e6", "SORT RETURN (PARTIAL 20:30) (DATE) UTF-8 ALL")
    assert lines[0] == b'* ESEARCH (TAG "e6") PARTIAL (20:30 NIL)'
    lines = await c.command("e7", "SORT RETURN (MIN MAX ALL) (DATE) UTF-8 SUBJECT zulu")
    assert lines == [b'* ESEARCH (TAG "e7")', b"e7 OK SORT completed"]
    lines = await c.command("e8", "SORT RETURN (SAVE) (DATE) UTF-8 SUBJECT o")
    assert lines[-1].startswith(b"e8 OK")
    lines = await c.command("e9", "UID SEARCH RETURN (ALL) UID $")
    assert lines[0] == b'* ESEARCH (TAG "e9") UID ALL 4:6'  # bravo echo foxtrot
    # A plain SORT is unchanged.
    assert (await c.command("e10", "SORT (DATE) UTF-8 ALL"))[0] == b"* SORT 4 2 6 1 5 3"
    await c.close()


async def test_search_partial(imap: Imap) -> None:
    c = await _filled(imap)
    lines = await c.command("p1", "SEARCH RETURN (PARTIAL 2:4) ALL")
    assert lines[0] == b'* ESEARCH (TAG "p1") PARTIAL (2:4 2:4)'
    lines = await c.command("p2", "UID SEARCH RETURN (PARTIAL 4:9 COUNT) SUBJECT a")
    assert lines[0] == b'* ESEARCH (TAG "p2") UID COUNT 4 PARTIAL (4:9 4)'
    lines = await c.command("p3", "SEARCH RETURN (CONTEXT MIN) ALL")
    assert lines[0] == b'* ESEARCH (TAG "p3") MIN 1'
    for tag, bad in [("b1", "SEARCH RETURN (PARTIAL 1:2 ALL) ALL"),
                     ("b2", "SEARCH RETURN (PARTIAL 0:2) ALL"),
                     ("b3", "SEARCH RETURN (PARTIAL 1:*) ALL"),
                     ("b4", "SEARCH RETURN (PARTIAL) ALL"),
                     ("b5", "SORT RETURN (PARTIAL 1:2 PARTIAL 3:4) (DATE) UTF-8 ALL"),
                     ("b6", "SORT RETURN (FOO) (DATE) UTF-8 ALL")]:
        lines = await c.command(tag, bad)
        assert lines[-1].startswith(f"{tag} BAD".encode()), lines
    await c.close()


async def test_sort_update_follows_this_sessions_changes(imap: Imap) -> None:
    c = await _filled(imap)
    lines = await c.command("s1", "SORT RETURN (UPDATE COUNT) (SUBJECT) UTF-8 UNDELETED")
    assert lines == [b'* ESEARCH (TAG "s1") COUNT 6', b"s1 OK SORT completed"]
    # charlie (seq 3) is third in subject order. The update comes with the STORE's own
    # response (no EXPUNGE is involved, so its numbers stand; imaptest's
    # search-context-update scripts expect it there, as Dovecot sends it).
    lines = await c.command("a1", "STORE 3 +FLAGS.SILENT (\\Deleted)")
    assert lines == [b'* ESEARCH (TAG "s1") REMOVEFROM (3 3)', b"a1 OK STORE completed"]
    assert await c.command("a2", "NOOP") == [b"a2 OK NOOP completed"]
    # baker arrives as message 7 and sorts second (alpha, baker, bravo, ...).
    lines = await _append(c, "a3", _raw("baker", 9))
    assert lines.index(b"* 7 EXISTS") < lines.index(b'* ESEARCH (TAG "s1") ADDTO (2 7)'), lines
    # charlie goes: no longer a result, so only its EXPUNGE; then nothing changes.
    lines = await c.command("a4", "EXPUNGE")
    assert lines[0] == b"* 3 EXPUNGE" and not any(b"ESEARCH" in line for line in lines)
    assert await c.command("a5", "NOOP") == [b"a5 OK NOOP completed"]
    # Removing two results at once: last position first.
    lines = await c.command("a6", "STORE 1,2 +FLAGS.SILENT (\\Deleted)")
    # Order now: alpha(2) baker(6) bravo(3) delta(1) echo(4) foxtrot(5).
    assert b'* ESEARCH (TAG "s1") REMOVEFROM (4 1 1 2)' in lines, lines
    await c.close()


async def test_search_update_follows_another_session(imap: Imap) -> None:
    c = await _filled(imap)
    lines = await c.command("B01", "UID SEARCH RETURN (UPDATE COUNT) KEYWORD $Junk")
    assert lines[0] == b'* ESEARCH (TAG "B01") UID COUNT 0'
    other = await imap.session("INBOX")
    assert (await other.command("o1", "UID STORE 5,2 +FLAGS ($Junk)"))[-1].startswith(b"o1 OK")
    lines = await c.command("n1", "NOOP")
    assert b'* ESEARCH (TAG "B01") UID ADDTO (0 2,5)' in lines, lines
    # The other session expunges message 5: REMOVEFROM comes before the EXPUNGE.
    assert (await other.command("o2", "UID STORE 5 +FLAGS (\\Deleted)"))[-1].startswith(b"o2 OK")
    assert (await other.command("o3", "EXPUNGE"))[-1].startswith(b"o3 OK")
    lines = await c.command("n2", "NOOP")
    removal = lines.index(b'* ESEARCH (TAG "B01") UID REMOVEFROM (0 5)')
    assert removal < lines.index(b"* 5 EXPUNGE"), lines
    # The tag of a live context cannot be used again for another.
    lines = await c.command("B01", "SEARCH RETURN (UPDATE) ALL")
    assert lines == [b"B01 BAD Tag B01 is in use by an updating search"]
    # After CANCELUPDATE, changes are no longer told.
    assert await c.command("n3", 'CANCELUPDATE "B01"') == [b"n3 OK CANCELUPDATE completed"]
    assert (await other.command("o4", "UID STORE 1 +FLAGS ($Junk)"))[-1].startswith(b"o4 OK")
    lines = await c.command("n4", "NOOP")
    assert not any(b"ESEARCH" in line for line in lines), lines
    await other.close()
    await c.close()


async def test_sequence_number_contexts_and_limits(imap: Imap) -> None:
    c = await _filled(imap)
    lines = await c.command("c0", "SEARCH RETURN (UPDATE) SUBJECT zulu")
    assert lines == [b'* ESEARCH (TAG "c0")', b"c0 OK SEARCH completed"]
    lines = await _append(c, "a1", _raw("zulu", 9), "INBOX")
    assert lines.index(b"* 7 EXISTS") < lines.index(b'* ESEARCH (TAG "c0") ADDTO (0 7)')
    for n in range(1, 8):
        lines = await c.command(f"c{n}", "SEARCH RETURN (UPDATE COUNT) ALL")
        assert lines[-1].startswith(f"c{n} OK".encode()), lines
    # The ninth context is refused with NOUPDATE; the count is still returned.
    lines = await c.command("c8", "SEARCH RETURN (UPDATE COUNT) ALL")
    assert lines == [b'* NO [NOUPDATE "c8"] Too many updating searches',
                     b'* ESEARCH (TAG "c8") COUNT 7', b"c8 OK SEARCH completed"]
    # Contexts end with the selection.
    assert (await c.command("u", "UNSELECT"))[-1].startswith(b"u OK")
    assert (await c.command("s2", "SELECT INBOX"))[-1].startswith(b"s2 OK")
    await _append(c, "a3", _raw("zulu again", 9))
    assert not any(b"ESEARCH" in line for line in await c.command("a4", "NOOP"))
    await c.close()


async def test_imaplib_sort_with_return(imap: Imap) -> None:
    c = await _filled(imap)
    await c.close()

    def run() -> tuple[list[bytes], list[bytes]]:
        client = imaplib.IMAP4("127.0.0.1", imap.port)
        try:
            client.login(imap.user, imap.password)
            client.select("INBOX", readonly=True)
            typ, sorted_ = client.sort("(DATE)", "UTF-8", "ALL")
            assert typ == "OK"
            # imaplib has no ESORT call: the command's words as a client would send.
            typ, _ = client._simple_command("SORT", "RETURN", "(MIN", "MAX", "COUNT)",
                                            "(DATE)", "UTF-8", "ALL")
            assert typ == "OK"
            return sorted_, client.untagged_responses.pop("ESEARCH", [])
        finally:
            client.logout()

    sorted_, esearch = await asyncio.to_thread(run)
    assert sorted_ == [b"4 2 6 1 5 3"]
    assert len(esearch) == 1 and esearch[0].endswith(b") MIN 4 MAX 3 COUNT 6")
