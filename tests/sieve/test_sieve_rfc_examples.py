"""The examples of RFC 5228 (section 9 and the command sections), RFC 5230 and
RFC 5232, written out, with the actions each must give."""

from __future__ import annotations

from sieve_helpers import message, run

from letterlock.sieve import Discard, FileInto, Keep, Redirect, Reject, Vacation

RFC5228_SECTION_9 = """\
# Example Sieve Filter
# Declare any optional features or extension used by the script
require ["fileinto"];

# Handle messages from known mailing lists
# Move messages from IETF filter discussion list to filter mailbox
if header :is "Sender" "owner-ietf-mta-filters@imc.org"
        {
        fileinto "filter";  # move to "filter" mailbox
        }
#
# Keep all messages to or from people in my company
#
elsif address :DOMAIN :is ["From", "To"] "example.com"
        {
        keep;               # keep in "In" mailbox
        }

#
# Try and catch unsolicited email.  If a message is not to me,
# or it contains a subject known to be spam, file it away.
#
elsif anyof (NOT address :all :contains
               ["To", "Cc", "Bcc"] "me@example.com",
             header :matches "subject"
               ["*make*money*fast*", "*university*dipl*mas*"])
        {
        fileinto "spam";   # move to "spam" mailbox
        }
else
        {
        # Move all other (non-company) mail to "personal"
        # mailbox.
        fileinto "personal";
        }
"""


def test_section_9_list_mail_goes_to_filter() -> None:
    msg = message({"Sender": "owner-ietf-mta-filters@imc.org", "To": "me@example.com"})
    assert run(RFC5228_SECTION_9, msg).actions == (FileInto("filter"),)


def test_section_9_company_mail_is_kept() -> None:
    msg = message({"From": "boss@EXAMPLE.com", "To": "me@elsewhere.org"})
    assert run(RFC5228_SECTION_9, msg).actions == (Keep(),)


def test_section_9_spam_and_personal() -> None:
    not_to_me = message({"From": "x@y.org", "To": "you@other.org"})
    assert run(RFC5228_SECTION_9, not_to_me).actions == (FileInto("spam"),)
    # "me@example.com" :contains-matches the To address, whose domain is not the company's
    money = message({"From": "x@y.org", "To": "me@example.com.au",
                     "Subject": "How to MAKE lots of Money Fast!"})
    assert run(RFC5228_SECTION_9, money).actions == (FileInto("spam"),)
    diploma = message({"From": "x@y.org", "Cc": "me@example.com",
                       "To": "a@b.org", "Subject": "university diplomas"})
    assert run(RFC5228_SECTION_9, diploma).actions == (FileInto("spam"),)
    friend = message({"From": "x@y.org", "To": "Me <ME@example.com.au>",
                      "Subject": "lunch"})
    assert run(RFC5228_SECTION_9, friend).actions == (FileInto("personal"),)


def test_section_4_and_5_examples() -> None:
    # 4.2 redirect; 4.3 keep; 4.4 discard; 5.1 address; 5.9 size
    assert run('redirect "bart@example.com";').actions == (Redirect("bart@example.com"),)
    assert run('if size :under 1M { keep; } else { discard; }').actions == (Keep(),)
    assert run('if size :over 100 { discard; }', message(body="x" * 200)).actions \
        == (Discard(),)
    from_tim = message({"From": "tim@example.com"})
    assert run('if address :is :all "from" "tim@example.com" { discard; }',
               from_tim).actions == (Discard(),)
    # 5.5 exists: both headers needed
    script = 'if exists ["From", "Date"] { discard; }'
    assert run(script).actions == (Keep(),)
    assert run(script, message({"Date": "Mon, 1 Jan 2024 00:00:00 +0000"})).actions \
        == (Discard(),)
    # 5.7 header with :matches and a comparator
    assert run('if header :matches :comparator "i;octet" "Subject" "MAKE*FAST" '
               '{ discard; }', message({"Subject": "make money fast"})).actions \
        == (Keep(),)
    assert run('if header :matches "Subject" "MAKE*FAST" { discard; }',
               message({"Subject": "make money fast"})).actions == (Discard(),)


def test_rfc5228_reject_example() -> None:
    script = ('require ["reject"];\nif header :contains "from" "coyote@desert.example.org" {\n'
              '  reject text:\nI am not taking mail from you, and I don\'t\n'
              'want your birdseed, either!\n.\n;\n}\n')
    out = run(script, message({"From": "coyote@desert.example.org"}))
    assert out.actions == (Reject("I am not taking mail from you, and I don't\r\n"
                                  "want your birdseed, either!\r\n"),)


RFC5230_EXAMPLE = """\
require "vacation";
if header :contains "subject" "cyrus" {
    vacation "I'm out -- send mail to cyrus-bugs";
} else {
    vacation "I'm out -- call me at 321-1234";
}
"""


def test_rfc5230_basic_example() -> None:
    out = run(RFC5230_EXAMPLE, message({"Subject": "Cyrus bug"}))
    assert len(out.actions) == 2 and out.actions[1] == Keep()
    reply = out.actions[0]
    assert isinstance(reply, Vacation)
    assert reply.reason == "I'm out -- send mail to cyrus-bugs" and reply.days == 7
    other = run(RFC5230_EXAMPLE).actions[0]
    assert isinstance(other, Vacation) and other.handle != reply.handle


def test_rfc5230_addresses_days_from_mime_handle() -> None:
    script = ('require "vacation";\nvacation :days 23 :addresses ["tjs@example.edu",\n'
              '  "ts4z@landru.example.edu"] :from "Tim <tjs@example.edu>" :subject "Away"\n'
              '  :handle "away-2026" :mime text:\nContent-Type: text/plain\n\n'
              "I'm away until October 19.\n.\n;\n")
    out = run(script, message({"To": "Tim <tjs@example.edu>"}), recipient="t@example.edu")
    reply = out.actions[0]
    assert reply == Vacation("Content-Type: text/plain\r\n\r\nI'm away until October 19.\r\n",
                             "Away", "Tim <tjs@example.edu>",
                             ("tjs@example.edu", "ts4z@landru.example.edu"), 23, 23 * 86400,
                             True, "away-2026")


def test_rfc5232_flags_examples() -> None:
    script = """\
require ["imap4flags", "fileinto"];
if header :contains "from" "boss@frobnitzm.example.edu" {
    setflag "\\\\Flagged";
    fileinto "From Boss";
}
if header :contains "Disposition-Notification-To" "mel@example.com" {
    addflag "$MDNRequired";
}
if header :contains "from" "imap@cac.washington.example.edu" {
    removeflag "$MDNRequired";
    fileinto "imap-list";
}
"""
    boss = message({"From": "boss@frobnitzm.example.edu",
                    "Disposition-Notification-To": "mel@example.com"})
    assert run(script, boss).actions == (FileInto("From Boss", ("\\Flagged",)),)
    mdn = message({"Disposition-Notification-To": "mel@example.com"})
    assert run(script, mdn).actions == (Keep(("$MDNRequired",)),)
    both = message({"From": "imap@cac.washington.example.edu",
                    "Disposition-Notification-To": "mel@example.com"})
    assert run(script, both).actions == (FileInto("imap-list"),)


def test_rfc5232_hasflag_and_flags_argument() -> None:
    script = ('require ["imap4flags", "fileinto"];\naddflag ["\\\\Seen \\\\Answered", "$a"];\n'
              'if hasflag :is "\\\\answered" { fileinto :flags "\\\\Deleted" "Trash"; }\n'
              'removeflag "\\\\Seen";\nkeep;')
    assert run(script).actions == (FileInto("Trash", ("\\Deleted",)),
                                   Keep(("\\Answered", "$a")))
    assert run('require "imap4flags";\nif hasflag :contains "x" { discard; }').actions \
        == (Keep(),)
