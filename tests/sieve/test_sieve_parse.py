"""Parsing and validation: line-numbered errors, strings, comments, requires, and
what a script discloses to the server."""

from __future__ import annotations

import pytest

from letterlock.sieve import EXTENSIONS, SieveError, SieveSyntaxError, parse
from letterlock.sieve.syntax import Node

ERRORS = [
    # (script, line, words in the message)
    ('fileinto "x";', 1, "require"),
    ('require "fileinto";\nif true {\n  require "body";\n}', 3, "require must come"),
    ('keep;\nrequire "fileinto";', 2, "require must come"),
    ('require "frobnicate";', 1, "not supported"),
    ('require ["fileinto", "include"];', 1, "not supported"),
    ('require "date";\nif currentdate "fortnight" "1" { }', 2, "date part"),
    ('require "date";\nif currentdate :zone "CET" "year" "1" { }', 2, "zone"),
    ('require "date";\nif currentdate :originalzone "year" "1" { }', 2, "originalzone"),
    ('require "variables";\nset "a-b" "x";', 2, "variable name"),
    ('require "imap4flags";\nsetflag "v" "x";', 2, '"variables"'),
    ('require "variables";\nset :lower :upper "a" "x";', 2, "conflicts"),
    ("keep", 1, "';'"),
    ("\n\nfoo;", 3, "unknown command foo"),
    ('if frob { keep; }', 1, "unknown test frob"),
    ("if true keep;", 1, "'{'"),
    ("if true { keep; ", 1, "'}'"),
    ("}", 1, "unexpected"),
    ('header "a" "b";', 1, "is a test, not a command"),
    ('elsif true { keep; }', 1, "without a preceding if"),
    ('keep;\nelse { keep; }', 2, "without a preceding if"),
    ('if header :is :contains "a" "b" { }', 1, "conflicts"),
    ('if header :frob "a" "b" { }', 1, "does not take :frob"),
    ('if header "a" { }', 1, "takes strings, strings"),
    ('if size 10 { }', 1, ":over or :under"),
    ('if size :over "10" { }', 1, "number"),
    ('if size :over :under 10 { }', 1, "conflicts"),
    ('\nif size :over 10Q { }', 2, "number"),
    ("if size :over 99999999999G { }", 1, "too large"),
    ('redirect ["a@b", "c@d"];', 1, "string"),
    ('keep :flags "x";', 1, "imap4flags"),
    ('require "fileinto";\nfileinto :copy "x";', 2, '"copy"'),
    ('if header :comparator "i;frob" "a" "b" { }', 1, "unknown comparator"),
    ('if header :comparator "i;ascii-numeric" "a" "b" { }', 1, "comparator-i;ascii-numeric"),
    ('require "relational";\nif header :value "xx" "a" "b" { }', 2, "unknown relation"),
    ('require "envelope";\nif envelope "subject" "a" { }', 2, "envelope part"),
    ('if exists "bad name" { }', 1, "invalid header name"),
    ('"unterminated', 1, "unterminated string"),
    ("/* never closed\n\n", 1, "unterminated /* comment"),
    ('require "vacation";\nvacation text:\nhello\n', 2, "unterminated text:"),
    ('require "vacation";\nvacation text: junk\nhi\n.\n;', 2, "# comment"),
    ('keep;\n\n\n@', 4, "unexpected character"),
    ('if true { keep; }\nif not { }', 2, None),
    ('if anyof true { }', 1, "'('"),
    ('if anyof (true false) { }', 1, "')'"),
    ('if allof (true,) { }', 1, "a test"),
    ('require "encoded-character";\nkeep :x;', 2, None),
    ('require "encoded-character";\nif header "a" "${unicode:D800}" { }', 2, "Unicode"),
    ('require "encoded-character";\nif header "a" "${hex:ff}" { }', 2, "UTF-8"),
    ("keep;\rkeep;", 1, "carriage return"),
    ('require "vacation";\nvacation :handle "" "x";', 2, "handle"),
    ('require "imap4flags";\nif hasflag :contains { }', 2, None),
    (": x;", 1, "tag"),
    ("keep\x00;", 1, "NUL"),
    ('keep;\nif header "a" "\ud800" { }', 2, "UTF-8"),
    ('\nredirect "no address";', 2, "invalid address"),
    ('redirect "Ann <a@b.example>";', 1, "invalid address"),
    ('require "fileinto";\nfileinto "";', 2, "mailbox name"),
]


@pytest.mark.parametrize(("script", "line", "words"), ERRORS)
def test_parse_errors_name_their_line(script: str, line: int, words: str | None) -> None:
    with pytest.raises(SieveSyntaxError) as info:
        parse(script)
    assert info.value.line == line, str(info.value)
    assert str(info.value).startswith(f"line {line}: ")
    if words:
        assert words in info.value.message


def test_size_limit() -> None:
    with pytest.raises(SieveSyntaxError, match="larger than"):
        parse("keep;" * 100, max_size=200)
    parse("keep;" * 40, max_size=200)


def test_nesting_limit() -> None:
    parse("if true { " * 30 + "keep;" + " }" * 30)
    with pytest.raises(SieveSyntaxError, match="nesting"):
        parse("if true { " * 40 + "keep;" + " }" * 40)
    with pytest.raises(SieveSyntaxError, match="nesting"):
        parse("if " + "not " * 50 + "true { }")


def test_crlf_lf_comments_and_case() -> None:
    script = ('# a comment\r\nREQUIRE "fileinto"; /* multi\r\nline */\r\n'
              'IF Header :CONTAINS "Subject" "x" { FileInto "A"; } # end\r\n')
    tree = parse(script)
    assert tree.requires == frozenset({"fileinto"})
    node = tree.commands[1]
    assert node.name == "if" and node.line == 4
    assert node.tests[0].tags == {"contains": True}


def test_quoted_string_escapes() -> None:
    node = parse(r'if header "a" "q\"b\\c\d" { }').commands[0].tests[0]
    assert node.strings(1) == ('q"b\\cd',)


def test_multiline_string_dot_stuffing_and_comment() -> None:
    script = 'require "reject";\nreject text: # why\nfirst\n..dotted\n.\n;\n'
    node = parse(script).commands[1]
    assert node.string(0) == "first\r\n.dotted\r\n"
    script_crlf = script.replace("\n", "\r\n")
    assert parse(script_crlf).commands[1].string(0) == "first\r\n.dotted\r\n"


def test_multiline_string_keeps_more_lines() -> None:
    node = parse('require "reject";\nreject text:\nsecond . line\n.. \n.\n;').commands[1]
    assert node.string(0) == "second . line\r\n. \r\n"


def test_encoded_character() -> None:
    script = ('require "encoded-character";\n'
              'if header "subject" ["${hex:48 65 6C 6c 6F}", "${UNICODE:263A}x",'
              ' "${hex:zz}", "$${hex:41}"] { }')
    node = parse(script).commands[1].tests[0]
    assert node.strings(1) == ("Hello", "\u263ax", "${hex:zz}", "$A")
    plain = parse('if header "subject" "${hex:41}" { }').commands[0].tests[0]
    assert plain.strings(1) == ("${hex:41}",), "decoded only when required"


def test_numbers_with_quantifiers() -> None:
    sizes = [parse(f"if size :over {s} {{ }}").commands[0].tests[0].number(0)
             for s in ("10", "2K", "3m", "1G")]
    assert sizes == [10, 2048, 3 << 20, 1 << 30]


def test_every_extension_is_accepted_by_require() -> None:
    tree = parse(f"require {list(EXTENSIONS)!r};".replace("'", '"'))
    assert tree.requires == frozenset(EXTENSIONS)


def test_error_tree() -> None:
    assert issubclass(SieveSyntaxError, SieveError)
    from letterlock.errors import LetterlockError
    assert issubclass(SieveError, LetterlockError)


def test_disclosure_lists_what_the_script_reads() -> None:
    quiet = parse('require "fileinto";\nif header :contains "Subject" "x" '
                  '{ fileinto "A"; }\nif address :domain "From" "a.example" { keep; }')
    reads = quiet.reads()
    assert reads.headers == frozenset({"subject", "from"})
    assert not (reads.envelope or reads.body or reads.size or reads.sends_mail)
    loud = parse('require ["envelope", "body"];\nif anyof (envelope "from" "a@b", '
                 'body :contains "x", size :over 1M, exists ["X-Spam"]) '
                 '{ redirect "c@d"; }').reads()
    assert loud.envelope and loud.body and loud.size and loud.sends_mail
    assert loud.headers == frozenset({"x-spam"})
    away = parse('require "vacation";\nvacation "away";').reads()
    assert away.sends_mail and away.envelope and "auto-submitted" in away.headers
    assert parse("keep;").reads().headers == frozenset()


def test_tree_nodes_walk() -> None:
    tree = parse('if allof (true, not false) { if true { stop; } }')
    names = [n.name for n in tree.commands[0].walk()]
    assert names == ["if", "allof", "true", "not", "false", "if", "true", "stop"]
    assert isinstance(tree.commands[0], Node)


def test_a_number_of_thousands_of_digits_is_a_syntax_error() -> None:
    # found by tests/fuzz: int() refuses more than 4300 digits with a ValueError
    with pytest.raises(SieveSyntaxError, match="too large"):
        parse("if size :over " + "9" * 5000 + " { }")
