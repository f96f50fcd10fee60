"""Scripts in the shape the usual editors write them (Roundcube's managesieve
plugin: one "# rule:[name]" comment per rule, anyof/allof wrappers, tabs, stop after
each rule; Thunderbird's Sieve add-on: hand-edited style, nested ifs, text:
strings), parsed and run."""

from __future__ import annotations

from sieve_helpers import message, run

from letterlock.sieve import Discard, FileInto, Keep, Redirect, Vacation, parse

ROUNDCUBE_RULES = """\
require ["fileinto","imap4flags","copy","body","relational","comparator-i;ascii-numeric","reject"];
# rule:[Newsletter]
if anyof (header :contains "list-id" "news.example.com", header :contains "subject" "[news]")
{
\tfileinto "Newsletter";
\tstop;
}
# rule:[Boss]
if allof (address :is "from" "boss@example.com")
{
\taddflag "\\\\Flagged";
\tfileinto :copy "Important";
}
# rule:[Spam score]
if header :value "ge" :comparator "i;ascii-numeric" "x-spam-score" "5"
{
\tfileinto "Junk";
\tstop;
}
# rule:[Invoices]
if body :text :contains ["invoice","rechnung"]
{
\tfileinto "Invoices";
\tredirect :copy "accounting@example.com";
}
# rule:[Huge]
if size :over 25M
{
\tdiscard;
\tstop;
}
"""

ROUNDCUBE_VACATION = """\
require ["vacation"];
# rule:[Out of office]
if true
{
\tvacation :days 7 :addresses ["me@example.com","alias@example.com"] :subject "Out of office" \
:from "me@example.com" text:
I am on holiday until Monday.
In urgent cases call the office.
.
;
}
"""

THUNDERBIRD = """\
require ["fileinto", "reject", "envelope", "subaddress"];

/* Mailing lists */
if header :contains "List-Id" "<dev.lists.example.org>"
{
  fileinto "INBOX.Lists.dev";
}
elsif exists "X-Spam-Flag"
{
  if header :is "X-Spam-Flag" "YES"
  {
    fileinto "INBOX.Spam";
    stop;
  }
}
# Plus-addressed shop mail
if envelope :detail "to" "shop"
{
  fileinto "INBOX.Shopping";
}
"""


def test_roundcube_rules_parse_and_act() -> None:
    script = parse(ROUNDCUBE_RULES)
    assert "comparator-i;ascii-numeric" in script.requires
    news = message({"List-Id": "<news.example.com>", "From": "boss@example.com"})
    assert run(ROUNDCUBE_RULES, news).actions == (FileInto("Newsletter"),)
    boss = message({"From": "Boss <boss@example.com>", "X-Spam-Score": "12"})
    assert run(ROUNDCUBE_RULES, boss).actions == (
        FileInto("Important", ("\\Flagged",), copy=True), FileInto("Junk", ("\\Flagged",)))
    invoice = message({"Subject": "May"}, "Your Invoice is attached\r\n")
    assert run(ROUNDCUBE_RULES, invoice).actions == (
        FileInto("Invoices"), Redirect("accounting@example.com", True))
    assert run(ROUNDCUBE_RULES, message({"X-Spam-Score": "4"})).actions == (Keep(),)
    huge = message(body="x" * (26 << 20))
    assert run(ROUNDCUBE_RULES, huge).actions == (Discard(),)


def test_roundcube_vacation() -> None:
    out = run(ROUNDCUBE_VACATION, message({"To": "alias@example.com"}),
              recipient="me@example.com")
    reply = out.actions[0]
    assert isinstance(reply, Vacation) and out.actions[1:] == (Keep(),)
    assert reply.reason == "I am on holiday until Monday.\r\nIn urgent cases call the office.\r\n"
    assert reply.subject == "Out of office" and reply.from_ == "me@example.com"
    bulk = message({"To": "me@example.com", "Precedence": "list"})
    assert run(ROUNDCUBE_VACATION, bulk, recipient="me@example.com").actions == (Keep(),)


def test_thunderbird_script() -> None:
    dev = message({"List-Id": "Dev <dev.lists.example.org>"})
    assert run(THUNDERBIRD, dev).actions == (FileInto("INBOX.Lists.dev"),)
    spam = message({"X-Spam-Flag": "YES"})
    assert run(THUNDERBIRD, spam, recipient="me+shop@example.com").actions \
        == (FileInto("INBOX.Spam"),)
    shop = message({"X-Spam-Flag": "NO"})
    assert run(THUNDERBIRD, shop, recipient="me+shop@example.com").actions \
        == (FileInto("INBOX.Shopping"),)
    assert run(THUNDERBIRD, message()).actions == (Keep(),)
