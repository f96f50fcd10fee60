"""Whatever text a user uploads, parse raises nothing but SieveError, and a script
that parses runs without raising at all."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from sieve_helpers import message

from letterlock.sieve import Envelope, SieveError, evaluate, parse

PIECES = ['require', ' ', '"fileinto"', '["body", "copy"]', ";", "{", "}", "(", ")", "[",
          "]", ",", "if", "elsif", "else", "not", "anyof", "allof", "header", "address",
          "body", "size", ":over", ":is", ":matches", ":contains", ":comparator",
          '"i;octet"', '"*?\\\\"', "text:\n", "\n.\n", "..", "#", "/*", "*/", "\r\n",
          "\r", "\x00", "10K", "99999999999999999999G", "fileinto", "keep", "discard",
          "redirect", "stop", "vacation", ":days", '"${hex:ff}"', '"${unicode:110000}"',
          ":", "\\", '"', "é", "\ud800", '"variables"', "set", '"${1}"', '"${a}"',
          "string", ":upper", ":length"]


def _check(text: str) -> None:
    try:
        script = parse(text)
    except SieveError:
        return
    evaluate(script, message({"Subject": "x"}), Envelope("a@b.c", "me@example.com"))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=40))
def test_token_soup_only_raises_sieve_errors(pieces: list[str]) -> None:
    _check("".join(pieces))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_random_text_only_raises_sieve_errors(text: str) -> None:
    _check(text)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=30))
def test_valid_prefix_with_soup(pieces: list[str]) -> None:
    _check('require ["fileinto", "body", "copy", "vacation", "encoded-character", "variables"];\n'
           + "".join(pieces))
