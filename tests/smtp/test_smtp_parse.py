"""Pure parsers: byte and string literals in, values out; fuzzed with hypothesis."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from letterlock.smtp.parse import PathError, decode_data, is_mailbox, parse_path_arg
from letterlock.smtp.replies import with_enhanced_status


@pytest.mark.parametrize(("arg", "address", "params"), [
    ("FROM:<a@b.test>", "a@b.test", ()),
    ("from: <a@b.test> SIZE=10 BODY=8BITMIME", "a@b.test",
     (("SIZE", "10"), ("BODY", "8BITMIME"))),
    ("FROM:<>", "", ()),
    ("FROM:<\"odd local\"@b.test>", "\"odd local\"@b.test", ()),
    ("FROM:<@r1.test,@r2.test:a@b.test>", "a@b.test", ()),
    ("FROM:a@b.test", "a@b.test", ()),
    ("FROM:<δοκιμή@παράδειγμα.test> SMTPUTF8", "δοκιμή@παράδειγμα.test",
     (("SMTPUTF8", None),)),
    ("FROM:<a@[127.0.0.1]>", "a@[127.0.0.1]", ()),
])
def test_valid_paths(arg: str, address: str, params: tuple[object, ...]) -> None:
    parsed = parse_path_arg(arg, "FROM:", allow_null=True)
    assert (parsed.address, parsed.params) == (address, params)


@pytest.mark.parametrize("arg", [
    None, "", "FROM", "TO:<a@b.test>", "FROM:<a@b.test", "FROM:<a@b.test>x",
    "FROM:<a b@c.test>", "FROM:<a@b..test>", "FROM:<a@>", "FROM:<@b.test>",
    "FROM:<a@b.test> =x", "FROM:<a@b.test> K=", "FROM:<a\udcff@b.test>",
])
def test_invalid_paths(arg: str | None) -> None:
    with pytest.raises(PathError):
        parse_path_arg(arg, "FROM:", allow_null=True)


def test_null_recipient_refused() -> None:
    with pytest.raises(PathError):
        parse_path_arg("TO:<>", "TO:", allow_null=False)


@given(st.text(max_size=300))
def test_path_parser_only_raises_path_error(text: str) -> None:
    for keyword in ("FROM:", "TO:"):
        try:
            parsed = parse_path_arg(keyword + text, keyword, allow_null=True)
        except PathError as exc:
            assert exc.reply.code in (501, 553, 555)
        else:
            assert parsed.address == "" or is_mailbox(parsed.address)


@pytest.mark.parametrize(("wire", "message"), [
    (b"", b""),
    (b"a\r\n", b"a\r\n"),
    (b"..x\r\n", b".x\r\n"),
    (b"a\r\n..\r\n...\r\n", b"a\r\n.\r\n..\r\n"),
    (b"a\nb\r\n", b"a\r\nb\r\n"),
    (b"a\rb\r\n", b"a\r\nb\r\n"),
    (b"a\n.\nb\r\n", b"a\r\n.\r\nb\r\n"),
])
def test_decode_data(wire: bytes, message: bytes) -> None:
    assert decode_data(wire) == message


@given(st.binary(max_size=2000))
def test_decoded_data_has_only_crlf_line_ends(wire: bytes) -> None:
    out = decode_data(wire)
    stripped = out.replace(b"\r\n", b"")
    assert b"\r" not in stripped and b"\n" not in stripped
    # Idempotent on canonical text without leading dots.
    if not out.startswith(b".") and b"\r\n." not in out:
        assert decode_data(out) == out


@pytest.mark.parametrize(("line", "expected"), [
    ("250 OK", "250 2.0.0 OK"),
    ("250 2.1.5 Recipient OK", "250 2.1.5 Recipient OK"),
    ("503 Error: need MAIL command", "503 5.5.1 Error: need MAIL command"),
    ("354 End data with <CR><LF>.<CR><LF>", "354 End data with <CR><LF>.<CR><LF>"),
    ("220 host ready", "220 host ready"),
    ("334 VXNlcm5hbWU6", "334 VXNlcm5hbWU6"),
])
def test_enhanced_status_added(line: str, expected: str) -> None:
    assert with_enhanced_status(line) == expected
