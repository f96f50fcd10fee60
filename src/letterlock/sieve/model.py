"""A parsed script and what running it lets the server see."""

from __future__ import annotations

from dataclasses import dataclass

from letterlock.sieve.errors import SieveSyntaxError
from letterlock.sieve.grammar import EXTENSIONS
from letterlock.sieve.parser import parse_tree
from letterlock.sieve.syntax import Node

__all__ = ["EXTENSIONS", "Disclosure", "Script", "parse"]

VACATION_HEADERS = frozenset({
    "auto-submitted", "precedence", "list-id", "list-help", "list-subscribe",
    "list-unsubscribe", "list-post", "list-owner", "list-archive", "to", "cc", "bcc",
    "resent-to", "resent-cc", "resent-bcc", "subject", "message-id", "references",
})
"""Headers the vacation action reads to decide whether to reply and to thread it."""


@dataclass(frozen=True)
class Disclosure:
    """What running a script lets the server see of a message."""

    envelope: bool
    """Envelope tests (or vacation, which reads the sender)."""
    headers: frozenset[str]
    """Lower-cased names of the headers the script reads."""
    body: bool
    size: bool
    sends_mail: bool
    """redirect, vacation, reject or ereject may send mail out."""


@dataclass(frozen=True)
class Script:
    requires: frozenset[str]
    commands: tuple[Node, ...] = ()

    def reads(self) -> Disclosure:
        envelope = body = size = sends = False
        headers: set[str] = set()
        for top in self.commands:
            for node in top.walk():
                if node.name in ("address", "header", "exists", "date"):
                    headers.update(h.lower() for h in node.strings(0))
                elif node.name == "envelope":
                    envelope = True
                elif node.name == "body":
                    body = True
                elif node.name == "size":
                    size = True
                elif node.name in ("redirect", "reject", "ereject"):
                    sends = True
                elif node.name == "vacation":
                    sends = envelope = True
                    headers |= VACATION_HEADERS
        return Disclosure(envelope, frozenset(headers), body, size, sends)


def parse(text: str, *, max_size: int = 1 << 20) -> Script:
    """Parse and validate a Sieve script (RFC 5228); raises SieveSyntaxError."""
    if not isinstance(text, str):
        raise SieveSyntaxError(1, "a script is text")
    if len(text.encode("utf-8", "surrogatepass")) > max_size:
        raise SieveSyntaxError(1, f"script larger than {max_size} octets")
    if "\x00" in text:
        raise SieveSyntaxError(text[: text.index("\x00")].count("\n") + 1,
                               "NUL character in script")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate: the upload was not UTF-8
        raise SieveSyntaxError(text[: exc.start].count("\n") + 1,
                               "script is not valid UTF-8") from exc
    requires, commands = parse_tree(text)
    return Script(requires, commands)
