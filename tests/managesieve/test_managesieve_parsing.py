"""ManageSieve wire syntax (managesieve/parsing.py), byte literals in, values out."""

from __future__ import annotations

import pytest

from letterlock.managesieve.parsing import (
    Atom,
    Literal,
    SyntaxProblem,
    quote,
    response,
    scan,
)


def test_atoms_strings_numbers_and_a_literal() -> None:
    assert scan(b'PUTSCRIPT "my \\"rules\\"" {12+}') == (
        [Atom("PUTSCRIPT"), 'my "rules"'], Literal(12))
    assert scan(b'HAVESPACE "x" 100') == ([Atom("HAVESPACE"), "x", 100], None)
    assert scan(b'SETACTIVE ""') == ([Atom("SETACTIVE"), ""], None)
    assert scan(b"GETSCRIPT {3}") == ([Atom("GETSCRIPT")], Literal(3))
    assert scan(b'"caf\xc3\xa9"') == (["café"], None)


@pytest.mark.parametrize("line, reason", [
    (b'GETSCRIPT "open', "unterminated"),
    (b'GETSCRIPT "a\\b"', "bad escape"),
    (b"PUTSCRIPT {12+} x", "must end the line"),
    (b"PUTSCRIPT {x+}", "bad literal size"),
    (b"PUTSCRIPT {99999999999+}", "bad literal size"),
    (b'"\xff"', "UTF-8"),
    (b"NOOP \x01", "bad character"),
])
def test_bad_lines_say_why(line: bytes, reason: str) -> None:
    with pytest.raises(SyntaxProblem, match=reason):
        scan(line)


def test_quoting_and_responses() -> None:
    assert quote('a "b" \\') == b'"a \\"b\\" \\\\"'
    assert quote("two\r\nlines") == b"{10}\r\ntwo\r\nlines"
    assert response("NO", "gone", "NONEXISTENT") == b'NO (NONEXISTENT) "gone"\r\n'
    assert response("OK") == b"OK\r\n"
