"""Whatever text a user uploads, parse raises nothing but SieveError, and a script
that parses runs without raising at all."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st
from sieve_helpers import message, run

from letterlock.sieve import Discard, Envelope, Keep, SieveError, evaluate, parse
from letterlock.sieve.matching import glob

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


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="ab*?\\", max_size=8), st.text(alphabet="ab*?", max_size=10))
def test_glob_agrees_with_a_regular_expression(pattern: str, value: str) -> None:
    out, i = [], 0
    while i < len(pattern):
        if pattern[i] == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append({"*": "(.*?)", "?": "(.)"}.get(pattern[i], re.escape(pattern[i])))
        i += 1
    expected = re.fullmatch("".join(out), value, re.DOTALL)
    spans = glob(pattern, value)
    assert (spans is None) == (expected is None)
    if expected is not None and spans is not None:
        # same match variables as the leftmost-shortest expression
        assert [value[a:b] for a, b in spans] == list(expected.groups())


def test_many_wildcards_against_a_long_header_do_not_backtrack() -> None:
    # a backtracking regular expression needs about len(value)**stars steps here
    key = "*a" * 15 + "*b"
    out = run(f'if header :matches "Subject" "{key}" {{ discard; }}',
              message({"Subject": "a" * 3000}))
    assert out.actions == (Keep(),)
    out = run(f'require "variables";\nif header :matches "Subject" "{key}" {{ discard; }}',
              message({"Subject": "a" * 3000 + "b"}))
    assert out.actions == (Discard(),)
