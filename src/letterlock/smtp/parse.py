"""Pure parsers for SMTP command arguments and DATA content: text or bytes in,
values out, no I/O. Tested with literals in tests/smtp/test_smtp_parse.py.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from letterlock.smtp.replies import TOO_BIG, Reply

MAX_PATH = 256
"""RFC 5321 4.5.3.1.3: a reverse-path or forward-path is at most 256 octets."""
MAX_LOCAL = 64

_KEYWORD = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*$")
_ESMTP_VALUE = re.compile(r"^[\x21-\x3c\x3e-\x7e\x80-\U0010ffff]+$")
_ATOM = r"[^\x00-\x20\x7f()<>\[\]:;@\\,.\"]+"
_DOT_ATOM = re.compile(rf"^{_ATOM}(\.{_ATOM})*$")
_QUOTED = re.compile(r'^"(?:[^"\\\x00-\x1f\x7f]|\\[\x20-\x7e])*"$')
_DOMAIN = re.compile(
    r"^(?:[A-Za-z0-9\x80-\U0010ffff](?:[A-Za-z0-9\x80-\U0010ffff-]{0,61}"
    r"[A-Za-z0-9\x80-\U0010ffff])?\.)*[A-Za-z0-9\x80-\U0010ffff](?:[A-Za-z0-9\x80-\U0010ffff-]{0,61}"
    r"[A-Za-z0-9\x80-\U0010ffff])?$")
_LITERAL = re.compile(r"^\[(?:\d{1,3}(?:\.\d{1,3}){3}|IPv6:[0-9A-Fa-f:.]+)\]$")
_ROUTE = re.compile(r"^@[^:,]+(?:,@[^:,]+)*:")


class PathError(ValueError):
    """A command argument is malformed; ``reply`` says how to answer it."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(str(reply))
        self.reply = reply


@dataclass(frozen=True)
class PathArg:
    """A parsed ``FROM:<path> params`` or ``TO:<path> params`` argument."""

    address: str
    """The mailbox without brackets; ``""`` for the null reverse-path ``<>``."""
    params: tuple[tuple[str, str | None], ...]
    """ESMTP parameters: (upper-case keyword, value or None)."""

    def param(self, keyword: str) -> str | None:
        for key, value in self.params:
            if key == keyword:
                return value if value is not None else ""
        return None


@dataclass(frozen=True)
class MailParams:
    size: int | None
    body_8bit: bool
    smtputf8: bool


def syntax_error(command: str) -> PathError:
    return PathError(Reply(501, "5.5.4", f"Syntax: {command}"))


def is_mailbox(address: str) -> bool:
    """RFC 5321 Mailbox (with RFC 6531 UTF-8 allowed): local-part "@" domain."""
    try:
        address.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes the reader kept as surrogates
        return False
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain or len(address) > MAX_PATH:
        return False
    if len(local.encode("utf-8", "surrogateescape")) > MAX_LOCAL:
        return False
    if not (_DOT_ATOM.match(local) or _QUOTED.match(local)):
        return False
    return bool(_DOMAIN.match(domain) or _LITERAL.match(domain))


def parse_params(text: str) -> tuple[tuple[str, str | None], ...]:
    """ESMTP parameters (RFC 5321 4.1.2): ``KEY[=VALUE]`` separated by spaces."""
    out: list[tuple[str, str | None]] = []
    for item in text.split():
        key, eq, value = item.partition("=")
        if not _KEYWORD.match(key) or (eq and not _ESMTP_VALUE.match(value)):
            raise PathError(Reply(501, "5.5.4", f"Invalid parameter {item[:40]!r}"))
        out.append((key.upper(), value if eq else None))
    return tuple(out)


def parse_path_arg(arg: str | None, keyword: str, *, allow_null: bool) -> PathArg:
    """Parse the argument of MAIL (``keyword="FROM:"``) or RCPT (``"TO:"``).

    Accepts the space some clients put after the colon and strips a source route
    (RFC 5321 4.1.1.3 says to ignore it). Raises :class:`PathError`.
    """
    command = "MAIL FROM:<address>" if keyword == "FROM:" else "RCPT TO:<address>"
    if arg is None or arg[: len(keyword)].upper() != keyword:
        raise syntax_error(command)
    rest = arg[len(keyword):].lstrip(" ")
    if not rest.startswith("<"):
        # RFC 5321 requires the brackets; accept a bare mailbox as many servers do,
        # but only when it cannot be confused with parameters.
        head, _, tail = rest.partition(" ")
        if not head or not is_mailbox(head):
            raise syntax_error(command)
        return PathArg(head, parse_params(tail))
    end = rest.find(">") if '"' not in rest else _closing_bracket(rest)
    if end < 0:
        raise syntax_error(command)
    inner, tail = rest[1:end], rest[end + 1:]
    if tail and not tail.startswith(" "):
        raise syntax_error(command)
    params = parse_params(tail)
    if inner == "":
        if not allow_null:
            raise PathError(Reply(501, "5.1.3", "Null recipient not allowed"))
        return PathArg("", params)
    route = _ROUTE.match(inner)
    if route:
        inner = inner[route.end():]
    if keyword == "TO:" and inner.lower() == "postmaster":
        return PathArg(inner, params)  # RFC 5321 4.1.1.3: no domain needed
    if not is_mailbox(inner):
        raise PathError(Reply(553, "5.1.3" if keyword == "TO:" else "5.1.7",
                              "Invalid address syntax"))
    return PathArg(inner, params)


def parse_mail_params(params: Sequence[tuple[str, str | None]], *, size_limit: int,
                      auth: bool) -> MailParams:
    """The MAIL parameters this server takes (RFC 1870 SIZE, RFC 6152 BODY, RFC 6531
    SMTPUTF8, and RFC 4954 AUTH where ``auth`` is offered). ``size_limit`` 0 is none.
    Raises :class:`PathError`."""
    size: int | None = None
    body_8bit = False
    smtputf8 = False
    for key, value in params:
        if key == "SIZE":
            if value is None or not value.isdigit() or len(value) > 20:
                raise PathError(Reply(501, "5.5.4", "SIZE needs a number"))
            size = int(value)
            if size_limit and size > size_limit:
                raise PathError(TOO_BIG)
        elif key == "BODY":
            if value is None or value.upper() not in ("7BIT", "8BITMIME"):
                raise PathError(Reply(501, "5.5.4", "BODY must be 7BIT or 8BITMIME"))
            body_8bit = value.upper() == "8BITMIME"
        elif key == "SMTPUTF8":
            if value is not None:
                raise PathError(Reply(501, "5.5.4", "SMTPUTF8 takes no value"))
            smtputf8 = True
        elif key == "AUTH" and auth:
            pass  # RFC 4954 5: we never relay for another submitter, so ignore it
        else:
            raise PathError(Reply(555, "5.5.4", f"Parameter {key} not supported"))
    return MailParams(size, body_8bit, smtputf8)


def _closing_bracket(text: str) -> int:
    """Index of the ``>`` closing the path that starts at ``text[0]``, skipping
    quoted local parts; -1 if there is none."""
    quoted = False
    escaped = False
    for i, ch in enumerate(text[1:], start=1):
        if escaped:
            escaped = False
        elif ch == "\\" and quoted:
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == ">" and not quoted:
            return i
    return -1


_ANY_NEWLINE = re.compile(rb"\r\n|\r|\n")


def decode_data(wire: bytes) -> bytes:
    """The message carried by DATA: ``wire`` is everything the client sent after the
    354 reply up to (not including) the final ``.<CRLF>`` of the terminator.

    Removes dot-stuffing (RFC 5321 4.5.2) at CRLF line starts, then turns every bare
    CR and bare LF into CRLF. That makes SMTP smuggling sequences such as
    ``<LF>.<LF>`` or ``<CR>.<LF>`` inert: they were not an end of data here, and
    after this they are an ordinary dot line that any later hop will dot-stuff.
    """
    if wire.startswith(b"."):
        wire = wire[1:]
    wire = wire.replace(b"\r\n.", b"\r\n")
    crlf = wire.count(b"\r\n")
    if wire.count(b"\n") != crlf or wire.count(b"\r") != crlf:
        wire = _ANY_NEWLINE.sub(b"\r\n", wire)
    return wire


def has_bare_newlines(wire: bytes) -> bool:
    crlf = wire.count(b"\r\n")
    return wire.count(b"\n") != crlf or wire.count(b"\r") != crlf
