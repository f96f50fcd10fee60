"""The pure command parser: byte scripts and property-based fuzzing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from letterlock.imap.parsing import ParseError, parse_command
from letterlock.imap.parsing import commands as c
from letterlock.imap.parsing import search as s
from letterlock.imap.parsing.fetch import Section
from letterlock.imap.parsing.framing import trailing_literal
from letterlock.imap.parsing.primitives import STAR, SeqSet
from letterlock.imap.state import State, refusal


def test_login_with_literal_and_quoted() -> None:
    cmd = parse_command(b'a1 LOGIN {5}\r\nalice "pa\\"ss"')
    assert cmd == c.Login("a1", b"alice", b'pa"ss')


def test_uid_fetch_with_sections_partial_and_modifiers() -> None:
    cmd = parse_command(b"t UID FETCH 1:*,7 (FLAGS BODY.PEEK[1.2.HEADER.FIELDS.NOT (X-A "
                        b"x-b)]<10.20> BINARY[3]) (CHANGEDSINCE 12345 VANISHED)")
    assert isinstance(cmd, c.Fetch) and cmd.uid
    assert cmd.set == SeqSet(((1, STAR), (7, 7)))
    body = cmd.items[1]
    assert body.peek and body.partial == (10, 20)
    assert body.section == Section((1, 2), "HEADER.FIELDS.NOT", ("X-A", "x-b"))
    assert body.section.spec() == "1.2.HEADER.FIELDS.NOT (X-A X-B)"
    assert cmd.modifiers.changedsince == 12345 and cmd.modifiers.vanished


def test_fetch_macros() -> None:
    cmd = parse_command(b"t FETCH 1 ALL")
    assert isinstance(cmd, c.Fetch)
    assert [i.name for i in cmd.items] == ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"]


def test_search_program() -> None:
    cmd = parse_command(b'x SEARCH RETURN (COUNT) CHARSET UTF-8 (OR SEEN UNSEEN) '
                        b'HEADER "X-Spam" "" SENTBEFORE "1-Feb-2024" MODSEQ 5 2:4')
    assert isinstance(cmd, c.Search)
    assert cmd.program.returns == ("COUNT",)
    assert cmd.program.charset == "UTF-8"
    assert isinstance(cmd.program.keys, s.AndKey)
    keys = cmd.program.keys.keys
    assert keys[0] == s.OrKey(s.FlagKey("\\Seen", True), s.FlagKey("\\Seen", False))
    assert keys[1] == s.HeaderKey("x-spam", b"")
    assert keys[2] == s.DateKey(True, "before", datetime(2024, 2, 1))
    assert keys[3] == s.ModSeqKey(5)


def test_store_with_unchangedsince() -> None:
    cmd = parse_command(b"s UID STORE 1:3 (UNCHANGEDSINCE 9) -FLAGS.SILENT (\\Seen foo)")
    assert cmd == c.Store("s", SeqSet(((1, 3),)), "remove", True, ("\\Seen", "foo"), True, 9)


def test_append_with_flags_date_and_binary_literal() -> None:
    cmd = parse_command(b'a APPEND "Sent" (\\Seen) "05-Mar-2024 08:09:10 -0130" ~{3}\r\n\x00ab')
    assert isinstance(cmd, c.Append)
    assert cmd.binary and cmd.message == b"\x00ab"
    assert cmd.date == datetime(2024, 3, 5, 9, 39, 10, tzinfo=UTC)


def test_select_qresync_parameters() -> None:
    cmd = parse_command(b"a SELECT INBOX (QRESYNC (67890007 90060115194045000 41:211 "
                        b"(1,3 41,45)))")
    assert isinstance(cmd, c.Select) and cmd.qresync is not None
    assert cmd.qresync.seq_match == (SeqSet(((1, 1), (3, 3))), SeqSet(((41, 41), (45, 45))))


def test_list_extended() -> None:
    cmd = parse_command(b'l LIST (SUBSCRIBED RECURSIVEMATCH) "" ("INBOX" %) '
                        b"RETURN (CHILDREN STATUS (MESSAGES UNSEEN))")
    assert isinstance(cmd, c.List)
    assert cmd.selection == ("SUBSCRIBED", "RECURSIVEMATCH")
    assert cmd.patterns == (b"INBOX", b"%")
    assert cmd.status_items == ("MESSAGES", "UNSEEN")


@pytest.mark.parametrize("line", [
    b"a1 FETCH 0 FLAGS",             # sequence numbers are non-zero
    b"a1 FETCH 1 (FLAGS",            # unclosed list
    b"a1 FETCH 1 BODY[1.]",          # dangling dot
    b"a1 FETCH 1 BODY[MIME]",        # MIME needs a part
    b"a1 STORE 1 FLAGZ (\\Seen)",
    b'a1 LOGIN "a\rb" c',            # CR in a quoted string
    b"a1 LOGIN {5}\r\nabc",           # literal shorter than announced
    b"a1 SEARCH FROM",
    b"a1 SEARCH BEFORE 32-Jan-2024",
    b"a1 UID FETCH 1 FLAGS (VANISHED)",
    b"a1 FETCH 1 FLAGS (CHANGEDSINCE 1 VANISHED)",  # VANISHED only with UID FETCH
    b"a1 NOOP extra",
    b"a1 LOGIN {3}\r\na\x00b c",      # NUL inside a literal
])
def test_malformed_commands_raise_parse_error_with_tag(line: bytes) -> None:
    with pytest.raises(ParseError) as info:
        parse_command(line)
    assert info.value.tag == "a1"


def test_missing_tag_has_no_tag() -> None:
    with pytest.raises(ParseError) as info:
        parse_command(b"")
    assert info.value.tag is None


def test_state_rules() -> None:
    assert refusal(c.Noop("a"), State.NOT_AUTHENTICATED) is None
    assert refusal(c.Login("a", b"u", b"p"), State.AUTHENTICATED) is not None
    assert refusal(c.Check("a"), State.AUTHENTICATED) is not None
    assert refusal(c.Check("a"), State.SELECTED) is None
    assert refusal(c.Namespace("a"), State.NOT_AUTHENTICATED) is not None


def test_literal_framing() -> None:
    ann = trailing_literal(b"a APPEND x {12+}\r\n")
    assert ann is not None and ann.size == 12 and not ann.synchronizing
    ann = trailing_literal(b"a APPEND x ~{3}\r\n")
    assert ann is not None and ann.binary and ann.synchronizing
    assert trailing_literal(b"a NOOP\r\n") is None


# -- fuzzing ---------------------------------------------------------------------------

_WORDS = [b"a1", b" ", b"FETCH", b"UID", b"STORE", b"SEARCH", b"LIST", b"SELECT", b"APPEND",
          b"(", b")", b"[", b"]", b"<", b">", b"1", b":", b"*", b",", b"BODY", b"BODY.PEEK",
          b"HEADER.FIELDS", b'"', b"\\", b"{3}\r\n", b"{2+}\r\n", b"~{1}\r\n", b"NIL", b"OR",
          b"NOT", b"FLAGS", b"+FLAGS", b"\\Seen", b"CHANGEDSINCE", b"MODSEQ", b"RETURN",
          b"CHARSET", b"INBOX", b"\x00", b"\xff", b".", b"0", b"99999999999", b"LOGIN",
          b"ENABLE", b"QRESYNC", b"ID", b"AUTHENTICATE", b"=", b"EXAMINE", b"MIME"]


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.sampled_from(_WORDS), max_size=25))
def test_fuzz_token_soup_only_ever_raises_parse_error(words: list[bytes]) -> None:
    try:
        cmd = parse_command(b"".join(words))
    except ParseError:
        return
    assert isinstance(cmd, c.Command)


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_random_bytes_only_ever_raise_parse_error(data: bytes) -> None:
    try:
        parse_command(b"t " + data)
    except ParseError as exc:
        assert exc.tag == "t"


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=0, max_size=50).filter(lambda b: b"\x00" not in b))
def test_literal_round_trip(payload: bytes) -> None:
    cmd = parse_command(b"a LOGIN {%d}\r\n" % len(payload) + payload + b" x")
    assert cmd == c.Login("a", payload, b"x")
