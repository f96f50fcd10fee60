"""RFC 5229 variables: set and its modifiers, ${name} and match variables, the
string test, and imap4flags with variables (RFC 5232 section 3)."""

from __future__ import annotations

import pytest
from sieve_helpers import message, run

from letterlock.sieve import FileInto, Keep, Reject, Vacation


def test_rfc5229_set_example() -> None:
    script = """\
require ["variables", "vacation"];
set "honorific"  "Mr";
set "first_name" "Wile";
set "last_name"  "Coyote";
set "vacation" text:
Dear ${HONORIFIC} ${last_name},
I'm out, please leave a message after the meep.
.
;
vacation :subject "Re: ${first_name}" "${vacation}";
"""
    reply = run(script).actions[0]
    assert isinstance(reply, Vacation) and reply.subject == "Re: Wile"
    assert reply.reason == ("Dear Mr Coyote,\r\n"
                            "I'm out, please leave a message after the meep.\r\n")


def test_rfc5229_match_variables_example() -> None:
    script = """\
require ["fileinto", "variables"];
if header :matches "List-ID" "*<*@*" {
    fileinto "INBOX.lists.${2}"; stop;
}
if header :matches "Subject" "[*] *" {
    fileinto "INBOX.lists.${1}"; stop;
}
"""
    listed = message({"List-ID": "Users <acme-users@lists.example.org>"})
    assert run(script, listed).actions == (FileInto("INBOX.lists.acme-users"),)
    tagged = message({"Subject": "[acme-users] [fwd] version 1.0 is out"})
    assert run(script, tagged).actions == (FileInto("INBOX.lists.acme-users"),)
    assert run(script).actions == (Keep(),)


@pytest.mark.parametrize(("modifiers", "value", "result"), [
    (":lower", "HeLLo", "hello"),
    (":upper", "HeLLo", "HELLO"),
    (":upperfirst", "joe", "Joe"),
    (":lower :upperfirst", "JOE", "Joe"),
    (":lowerfirst", "JOE", "jOE"),
    (":quotewildcard", "a*b?c\\\\d", "a\\*b\\?c\\\\d"),
    (":length", "hello", "5"),
    (":length :upper", "", "0"),
])
def test_set_modifiers(modifiers: str, value: str, result: str) -> None:
    out = run(f'require ["variables", "reject"];\nset {modifiers} "v" "{value}";\n'
              'reject "${v}";')
    assert out.actions == (Reject(result),)


def test_string_test_and_unknown_variables() -> None:
    script = ('require ["variables", "fileinto", "relational"];\n'
              'set "a" "x";\n'
              'if string :is "${a}${unknown}" "x" { fileinto "one"; }\n'
              'if string :count "eq" ["${a}", "", "${b}"] "1" { fileinto "two"; }\n'
              'if string :matches "${a}" "y" { fileinto "three"; }\n'
              'if string :is "${1}" "" { fileinto "four"; }')
    assert run(script).actions == (FileInto("one"), FileInto("two"), FileInto("four"))


def test_failed_match_keeps_old_match_variables() -> None:
    script = ('require ["variables", "fileinto"];\n'
              'if header :matches "Subject" "*-*" { }\n'
              'if header :matches "Subject" "zz*" { }\n'
              'fileinto "${1}";')
    assert run(script, message({"Subject": "left-right"})).actions == (FileInto("left"),)


def test_keys_are_expanded_and_quotewildcard_protects_them() -> None:
    script = ('require ["variables", "fileinto"];\n'
              'set :quotewildcard "k" "a*";\n'
              'if header :matches "Subject" "${k}" { fileinto "literal"; }')
    assert run(script, message({"Subject": "a*"})).actions == (FileInto("literal"),)
    assert run(script, message({"Subject": "abc"})).actions == (Keep(),)


def test_imap4flags_with_variables() -> None:
    script = ('require ["variables", "imap4flags", "fileinto"];\n'
              'setflag "mine" "\\\\Seen";\naddflag "mine" ["$a", "$b"];\n'
              'removeflag "mine" "$a";\n'
              'if hasflag "mine" "$b" { fileinto :flags "${mine}" "F"; }\n'
              'if hasflag "$b" { discard; }')
    assert run(script).actions == (FileInto("F", ("\\Seen", "$b")),)


def test_variable_values_are_bounded() -> None:
    script = ('require ["variables", "reject"];\nset "a" "0123456789";\n'
              + 'set "a" "${a}${a}${a}${a}";\n' * 6 + 'reject "${a}";')
    out = run(script)
    reject = out.actions[0]
    assert isinstance(reject, Reject) and len(reject.reason) == 4096
