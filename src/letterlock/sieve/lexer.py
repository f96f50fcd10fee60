"""Sieve tokens (RFC 5228 section 8.1): identifiers, tags, numbers, quoted and
multi-line strings, and punctuation. Comments and white space are dropped. Scripts
may use CRLF or bare LF line ends."""

from __future__ import annotations

import re
from dataclasses import dataclass

from letterlock.sieve.errors import SieveSyntaxError

PUNCTUATION = "[](),;{}"
_QUANTIFIERS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
MAX_NUMBER = (1 << 63) - 1
_WORD = re.compile(r"[A-Za-z0-9_]*")
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"', re.DOTALL)
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)


@dataclass(frozen=True)
class Token:
    kind: str
    """"identifier", "tag", "number", "string", or the punctuation character."""
    value: str | int
    line: int
    multiline: bool = False


def _is_ident_start(c: str) -> bool:
    return c == "_" or ("a" <= c <= "z") or ("A" <= c <= "Z")


def _is_ident_char(c: str) -> bool:
    return _is_ident_start(c) or ("0" <= c <= "9")


class _Lexer:
    def __init__(self, text: str) -> None:
        self.text = text.replace("\r\n", "\n")
        self.i = 0
        self.line = 1
        self.out: list[Token] = []

    def fail(self, message: str) -> SieveSyntaxError:
        return SieveSyntaxError(self.line, message)

    def run(self) -> list[Token]:
        text, n = self.text, len(self.text)
        while self.i < n:
            c = text[self.i]
            if c == "\n":
                self.line += 1
                self.i += 1
            elif c in " \t":
                self.i += 1
            elif c == "\r":
                raise self.fail("carriage return without line feed")
            elif c == "#":
                end = text.find("\n", self.i)
                self.i = n if end < 0 else end
            elif text.startswith("/*", self.i):
                end = text.find("*/", self.i + 2)
                if end < 0:
                    raise self.fail("unterminated /* comment")
                self.line += text.count("\n", self.i, end)
                self.i = end + 2
            elif c in PUNCTUATION:
                self.out.append(Token(c, c, self.line))
                self.i += 1
            elif c == '"':
                self.quoted()
            elif c == ":":
                j = self.i + 1
                if j >= n or not _is_ident_start(text[j]):
                    raise self.fail("':' must start a tag such as :is")
                k = self.word_end(j)
                self.out.append(Token("tag", text[j:k].lower(), self.line))
                self.i = k
            elif "0" <= c <= "9":
                self.number()
            elif _is_ident_start(c):
                k = self.word_end(self.i)
                word = text[self.i:k]
                if word.lower() == "text" and k < n and text[k] == ":":
                    self.i = k + 1
                    self.multiline()
                else:
                    self.out.append(Token("identifier", word.lower(), self.line))
                    self.i = k
            else:
                raise self.fail(f"unexpected character {c!r}")
        return self.out

    def word_end(self, j: int) -> int:
        m = _WORD.match(self.text, j)
        return m.end() if m else j

    def number(self) -> None:
        text, j = self.text, self.i
        while j < len(text) and "0" <= text[j] <= "9":
            j += 1
        if j - self.i > 19:  # more digits than any 63-bit number; int() would refuse >4300
            raise self.fail("number too large")
        value = int(text[self.i:j])
        if j < len(text) and text[j].upper() in _QUANTIFIERS:
            value *= _QUANTIFIERS[text[j].upper()]
            j += 1
        if j < len(text) and _is_ident_char(text[j]):
            raise self.fail("a number must be followed by white space or punctuation")
        if value > MAX_NUMBER:
            raise self.fail("number too large")
        self.out.append(Token("number", value, self.line))
        self.i = j

    def quoted(self) -> None:
        m = _QUOTED.match(self.text, self.i)
        if m is None:
            raise SieveSyntaxError(self.line, "unterminated string")
        raw = m.group(1)
        # RFC 5228 2.4.2: an undefined escape means the character itself
        value = _ESCAPE.sub(r"\1", raw) if "\\" in raw else raw
        self.out.append(Token("string", value.replace("\n", "\r\n"), self.line))
        self.line += raw.count("\n")
        self.i = m.end()

    def multiline(self) -> None:
        text, start = self.text, self.line
        end = text.find("\n", self.i)
        if end < 0:
            raise self.fail("text: must be followed by a line break")
        rest = text[self.i:end].strip(" \t")
        if rest and not rest.startswith("#"):
            raise self.fail("only a # comment may follow text: on its line")
        self.i = end + 1
        self.line += 1
        lines: list[str] = []
        while True:
            if self.i >= len(text):
                raise SieveSyntaxError(start, "unterminated text: string (no '.' line)")
            end = text.find("\n", self.i)
            line = text[self.i:] if end < 0 else text[self.i:end]
            self.i = len(text) if end < 0 else end + 1
            self.line += 1
            if line == ".":
                break
            lines.append(line[1:] if line.startswith("..") else line)
        value = "".join(line + "\r\n" for line in lines)
        self.out.append(Token("string", value, start, multiline=True))


def tokenize(text: str) -> list[Token]:
    """The script's tokens; raises SieveSyntaxError with the line of the problem."""
    return _Lexer(text).run()
