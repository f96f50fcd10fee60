"""ManageSieve wire syntax (RFC 5804 4): pure functions, bytes in, values out.

A command is a line of atoms, quoted strings and numbers; a string may instead be a
literal, ``{n+}`` (or ``{n}``, which servers accept alike: RFC 5804 has no
continuation request) at the end of a line, followed by n octets, after which the
line goes on. :func:`scan` reads one line's tokens and says whether a literal follows.
"""

from __future__ import annotations

from dataclasses import dataclass


class SyntaxProblem(ValueError):
    """A line that is not ManageSieve syntax; its text is the reason."""


@dataclass(frozen=True)
class Atom:
    text: str


@dataclass(frozen=True)
class Literal:
    size: int


Token = Atom | str | int


def scan(line: bytes) -> tuple[list[Token], Literal | None]:
    """The tokens of ``line`` (without its CRLF): atoms as :class:`Atom`, quoted
    strings as ``str``, numbers as ``int``; and the literal announced at its end, if
    any. Raises SyntaxProblem."""
    tokens: list[Token] = []
    i, n = 0, len(line)
    while i < n:
        c = line[i:i + 1]
        if c == b" ":
            i += 1
            continue
        if c == b'"':
            out = bytearray()
            i += 1
            while True:
                if i >= n:
                    raise SyntaxProblem("unterminated quoted string")
                ch = line[i]
                if ch == 0x5C:  # backslash: only \" and \\ are allowed
                    if i + 1 >= n or line[i + 1] not in (0x22, 0x5C):
                        raise SyntaxProblem("bad escape in quoted string")
                    out.append(line[i + 1])
                    i += 2
                    continue
                if ch == 0x22:
                    i += 1
                    break
                if ch in (0x0D, 0x0A, 0x00):
                    raise SyntaxProblem("control character in quoted string")
                out.append(ch)
                i += 1
            tokens.append(_text(bytes(out)))
            continue
        if c == b"{":
            end = line.find(b"}", i)
            if end != n - 1:
                raise SyntaxProblem("a literal must end the line")
            inner = line[i + 1:end].removesuffix(b"+")
            if not inner.isdigit() or len(inner) > 10:
                raise SyntaxProblem("bad literal size")
            return tokens, Literal(int(inner))
        j = i
        while j < n and line[j:j + 1] not in (b" ", b'"', b"{"):
            j += 1
        word = line[i:j]
        if word.isdigit():
            if len(word) > 10:
                raise SyntaxProblem("number too large")
            tokens.append(int(word))
        else:
            if not all(0x21 <= b < 0x7F for b in word):
                raise SyntaxProblem("bad character")
            tokens.append(Atom(word.decode("ascii")))
        i = j
    return tokens, None


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SyntaxProblem("strings must be UTF-8") from exc


def literal_text(data: bytes) -> str:
    """A literal's octets as text (RFC 5804: UTF-8). Raises SyntaxProblem."""
    return _text(data)


def quote(text: str) -> bytes:
    """``text`` as a ManageSieve string: quoted when it can be, else a literal."""
    data = text.encode("utf-8")
    if len(data) < 1024 and b"\r" not in data and b"\n" not in data and b"\0" not in data:
        return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return b"{%d}\r\n" % len(data) + data


def response(kind: str, text: str = "", code: str = "") -> bytes:
    """An ``OK``/``NO``/``BYE`` line with an optional response code (RFC 5804 1.3)."""
    out = kind.encode("ascii")
    if code:
        out += b" (" + code.encode("utf-8") + b")"
    if text:
        out += b" " + quote(text)
    return out + b"\r\n"
