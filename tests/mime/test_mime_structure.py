"""MIME structure, envelope and sections, including malformed and odd messages."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from letterlock.imap import encoding
from letterlock.mime import sections, structure
from letterlock.mime import summary as summaries
from letterlock.mime.headers import Address, decode_words, parse_addresses

NESTED = (b"From: a@example.org\r\nSubject: nest\r\nMIME-Version: 1.0\r\n"
          b'Content-Type: multipart/mixed; boundary="outer"\r\n\r\n'
          b"preamble\r\n--outer\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
          b"first part\r\nline two\r\n--outer\r\n"
          b"Content-Type: message/rfc822\r\n\r\n"
          b"From: inner@example.org\r\nSubject: inner\r\n"
          b'Content-Type: multipart/alternative; boundary="in"\r\n\r\n'
          b"--in\r\nContent-Type: text/plain\r\n\r\nplain\r\n--in\r\n"
          b"Content-Type: text/html\r\nContent-Transfer-Encoding: base64\r\n\r\n"
          b"PGI+aGk8L2I+\r\n--in--\r\n"
          b"--outer--\r\nepilogue\r\n")


def test_nested_structure_sizes_and_lines_are_exact() -> None:
    tree = structure.parse(NESTED)
    assert tree.is_multipart and len(tree.children) == 2
    text, msg = tree.children
    assert NESTED[text.body_start : text.end] == b"first part\r\nline two"
    assert text.size == 20 and text.lines == 1
    assert msg.is_message and msg.envelope is not None
    assert msg.envelope.subject == "inner"
    inner = msg.children[0]
    assert [p.subtype for p in inner.children] == ["plain", "html"]


def test_sections_of_nested_message() -> None:
    tree = structure.parse(NESTED)
    assert sections.section(NESTED, tree, (1,), None) == b"first part\r\nline two"
    assert sections.section(NESTED, tree, (2, 1), None) == b"plain"
    assert sections.section(NESTED, tree, (2, 2), "MIME").startswith(b"Content-Type: text/html")
    assert sections.section(NESTED, tree, (2,), "HEADER.FIELDS", ["subject"]) == \
        b"Subject: inner\r\n\r\n"
    assert sections.section(NESTED, tree, (2,), "TEXT").startswith(b"--in\r\n")
    assert sections.section(NESTED, tree, (3,), None) is None
    assert sections.section(NESTED, tree, (1,), "HEADER") is None
    assert sections.binary_section(NESTED, tree, (2, 2)) == b"<b>hi</b>"


def test_bodystructure_encoding() -> None:
    tree = structure.parse(NESTED)
    wire = encoding.body_structure(tree, True)
    assert wire.startswith(b'(("text" "plain" ("charset" "utf-8") NIL NIL "7bit" 20 1 NIL NIL '
                           b'NIL NIL)("message" "rfc822" NIL NIL NIL "7bit" ')
    assert wire.endswith(b' "mixed" ("boundary" "outer") NIL NIL NIL)')
    assert wire.count(b"(") == wire.count(b")")


def test_non_multipart_message_is_its_own_part_one() -> None:
    raw = b"Subject: x\r\n\r\nhello\r\n"
    tree = structure.parse(raw)
    assert sections.section(raw, tree, (1,), None) == b"hello\r\n"
    assert sections.section(raw, tree, (), "TEXT") == b"hello\r\n"
    assert sections.section(raw, tree, (2,), None) is None


def test_envelope_defaults_sender_and_reply_to_from_from() -> None:
    raw = b"From: \"Doe, Jane\" <jane@example.org>\r\nTo: undisclosed-recipients:;\r\n\r\n"
    env = structure.envelope_of(structure.split_fields(raw))
    assert env.sender == env.from_ == env.reply_to
    assert env.from_[0] == Address("Doe, Jane", None, "jane", "example.org")
    assert env.to == (Address(None, None, "undisclosed-recipients", None),
                      Address(None, None, None, None))


def test_multiple_sender_addresses_and_route() -> None:
    addrs = parse_addresses(b"a@x.org, B <@r1,@r2:b@y.org>, (comment) c@z.org")
    assert [a.mailbox for a in addrs] == ["a", "b", "c"]
    assert addrs[1].route == "@r1,@r2"


def test_missing_headers_and_no_blank_line() -> None:
    raw = b"garbage without colon\r\nX: y"
    tree = structure.parse(raw)
    assert tree.type == "text"
    env = summaries.envelope_of(summaries.summarize(raw))
    assert env.subject is None and env.from_ == ()


def test_eight_bit_headers_survive_round_trip() -> None:
    raw = "Subject: Grüße\r\nFrom: Jörg <j@example.org>\r\n\r\nx".encode() + b"\xff\r\n"
    summary = summaries.decode(summaries.encode(summaries.summarize(raw)))
    env = summaries.envelope_of(summary)
    assert env.subject == "Grüße"
    assert encoding.encode(env.subject) == b"{7}\r\n" + "Grüße".encode()


def test_bad_content_type_and_missing_boundary() -> None:
    raw = b"Content-Type: multipart/mixed\r\n\r\nno boundary here\r\n"
    assert structure.parse(raw).subtype == "octet-stream"
    raw = b"Content-Type: ///\r\n\r\nx\r\n"
    assert structure.parse(raw).type == "text"


def test_deep_nesting_is_bounded() -> None:
    depth = 200
    head = b"".join(b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i)
                    for i in range(depth))
    raw = head + b"Content-Type: text/plain\r\n\r\nleaf\r\n"
    tree = structure.parse(raw)
    assert len(structure.walk(tree)) <= structure.MAX_DEPTH + 2
    encoding.body_structure(tree, True)


def test_encoded_words() -> None:
    assert decode_words("=?utf-8?q?caf=C3=A9?= =?utf-8?b?w6k=?=") == "caféé"
    assert decode_words("=?bogus-charset?q?x?=") == "x"
    assert decode_words("=?utf-8?b?!!!?=") == "=?utf-8?b?!!!?="


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from([
    b"Content-Type: multipart/mixed; boundary=z\r\n", b"--z\r\n", b"--z--\r\n", b"\r\n",
    b"Content-Type: message/rfc822\r\n", b"Content-Transfer-Encoding: base64\r\n",
    b"From: <a@b>, ;:\"\r\n", b"Subject: =?x?q?y?=\r\n", b"\xff\xfe", b"text\r\n", b"\n",
    b" folded\r\n", b"Content-Type: text/plain; charset*0*=utf-8''%ff\r\n"]), max_size=40))
def test_fuzz_summary_and_bodystructure_never_fail(parts: list[bytes]) -> None:
    raw = b"".join(parts)
    summary = summaries.decode(summaries.encode(summaries.summarize(raw)))
    tree = summaries.structure_of(summary)
    assert tree is not None
    wire = encoding.body_structure(tree, True)
    assert wire.count(b"(") >= 1
    encoding.encode(encoding.envelope(summaries.envelope_of(summary)))
    for part in structure.walk(tree):
        assert 0 <= part.header_start <= part.body_start <= part.end <= len(raw)


def test_trailing_comment_is_the_name_of_a_bare_address() -> None:
    [addr] = parse_addresses(b"user@example.org (Real Name)")
    assert addr == Address("Real Name", None, "user", "example.org")
    [addr] = parse_addresses(b"Phrase <p@example.org> (ignored)")
    assert addr.name == "Phrase"
    [addr] = parse_addresses(b"nodomain")
    assert (addr.mailbox, addr.host) == ("nodomain", "MISSING_DOMAIN")
