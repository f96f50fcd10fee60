"""Sieve engine throughput: scripts parsed per second, and deliveries filtered per
second (parse once, evaluate per message) for a Roundcube-style rule set against a
plain message, a multipart one searched by the body test, and a 1 MB one.

    .venv/bin/python bench/sieve.py [--seconds 2]
"""

from __future__ import annotations

import argparse
import base64
import time
from collections.abc import Callable

from letterlock.sieve import Envelope, evaluate, parse

RULES = """\
require ["fileinto","imap4flags","copy","body","relational","comparator-i;ascii-numeric",
         "envelope","subaddress","variables","vacation"];
# rule:[Newsletter]
if anyof (header :contains "list-id" "news.example.com", header :contains "subject" "[news]")
{ fileinto "Newsletter"; stop; }
# rule:[Boss]
if address :is "from" "boss@example.com" { addflag "\\\\Flagged"; fileinto :copy "Important"; }
# rule:[Spam]
if header :value "ge" :comparator "i;ascii-numeric" "x-spam-score" "5" { fileinto "Junk"; stop; }
# rule:[Lists]
if header :matches "List-Id" "*<*.*>" { fileinto "Lists.${2}"; }
# rule:[Shop]
if envelope :detail "to" "shop" { fileinto "Shopping"; }
# rule:[Invoices]
if body :text :contains ["invoice", "rechnung"] { fileinto "Invoices"; }
vacation :days 7 :subject "Away" "I am away until Monday.";
"""

PLAIN = (b"From: Ann <ann@example.org>\r\nTo: me@example.com\r\nSubject: lunch?\r\n"
         b"Message-ID: <1@example.org>\r\n\r\nShall we meet at noon?\r\n")
MULTIPART = (b"From: shop@example.net\r\nTo: me@example.com\r\nSubject: Your order\r\n"
             b"MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=B\r\n\r\n"
             b"--B\r\nContent-Type: text/plain; charset=utf-8\r\n"
             b"Content-Transfer-Encoding: quoted-printable\r\n\r\n" + b"Danke f=C3=BCr=\r\n"
             b" Ihre Bestellung.\r\n" * 50 + b"--B\r\nContent-Type: text/html\r\n"
             b"Content-Transfer-Encoding: base64\r\n\r\n"
             + base64.encodebytes(b"<p>Thanks for your <b>order</b></p>" * 50)
             + b"--B--\r\n")
LARGE = PLAIN.replace(b"\r\n\r\n", b"\r\n\r\n" + b"x" * 76 + b"\r\n", 1) * 1 + \
    (b"y" * 76 + b"\r\n") * 13000


def rate(fn: Callable[[], object], seconds: float) -> float:
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        count += 1
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    script = parse(RULES)
    envelope = Envelope("ann@example.org", "me+shop@example.com")
    print(f"script: {len(RULES)} characters, {len(script.commands)} top-level commands")
    print(f"parse:                    {rate(lambda: parse(RULES), args.seconds):>9,.0f} /s")
    for name, message in (("plain", PLAIN), ("multipart", MULTIPART), ("1 MB", LARGE)):
        per_s = rate(lambda m=message: evaluate(script, m, envelope), args.seconds)  # type: ignore[misc]
        print(f"evaluate {name:<10} {len(message):>8} B {per_s:>9,.0f} /s")


if __name__ == "__main__":
    main()
