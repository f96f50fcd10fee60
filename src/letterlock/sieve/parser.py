"""Sieve scripts to validated trees (RFC 5228 section 8.2 grammar). Validation
happens while parsing, so every error names its line: unknown commands, extensions
used without ``require``, wrong argument types, conflicting tags, misplaced
elsif/else/require, and the engine's limits."""

from __future__ import annotations

import re

from letterlock.sieve.dates import PARTS, ZONE
from letterlock.sieve.errors import SieveSyntaxError
from letterlock.sieve.grammar import (
    COMMANDS,
    COMPARATORS,
    ENVELOPE_PARTS,
    EXTENSIONS,
    RELATIONS,
    TAGS,
    TESTS,
    Spec,
)
from letterlock.sieve.lexer import Token, tokenize
from letterlock.sieve.syntax import Node

MAX_DEPTH = 32
"""Deepest nesting of blocks and tests together."""
MAX_COMMANDS = 4096

_ENCODED = re.compile(r"\$\{(hex|unicode):([^}]*)\}", re.IGNORECASE)
_ADDRESS = re.compile(r"[^\s@<>,;:\"()\[\]\\]+@[^\s@<>,;:\"()\[\]\\]+")
_HEX_LIST = re.compile(r"[ \t\r\n]*(?:[0-9A-Fa-f]+[ \t\r\n]*)*")

Value = str | int | tuple[str, ...] | bool


def decode_encoded_characters(value: str, line: int) -> str:
    """RFC 5228 2.4.2.4: ${hex:..} and ${unicode:..}; text that does not fit the
    syntax stays as written."""

    def one(m: re.Match[str]) -> str:
        kind, body = m.group(1).lower(), m.group(2)
        if not _HEX_LIST.fullmatch(body):
            return m.group(0)
        items = body.split()
        if kind == "hex":
            try:
                return bytes(int(h, 16) for h in items).decode("utf-8")
            except (ValueError, UnicodeDecodeError) as exc:
                raise SieveSyntaxError(line, "${hex:...} is not valid UTF-8") from exc
        out = []
        for h in items:
            code = int(h, 16)
            if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                raise SieveSyntaxError(line, f"${{unicode:{h}}} is not a Unicode character")
            out.append(chr(code))
        return "".join(out)

    return _ENCODED.sub(one, value)


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.pos = 0
        self.requires: set[str] = set()
        self.count = 0

    def peek(self) -> Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def next(self, what: str) -> Token:
        tok = self.peek()
        if tok is None:
            last = self.tokens[-1].line if self.tokens else 1
            raise SieveSyntaxError(last, f"script ends where {what} was expected")
        self.pos += 1
        return tok

    def expect(self, kind: str, what: str) -> Token:
        tok = self.next(what)
        if tok.kind != kind:
            raise SieveSyntaxError(tok.line, f"expected {what}, found {_describe(tok)}")
        return tok

    # -- grammar --------------------------------------------------------------------

    def commands(self, depth: int, top: bool) -> tuple[Node, ...]:
        out: list[Node] = []
        may_require = top
        while (tok := self.peek()) is not None and tok.kind != "}":
            node = self.command(depth)
            if node.name == "require" and not may_require:
                raise SieveSyntaxError(node.line, "require must come before other commands")
            if node.name != "require":
                may_require = False
            if node.name in ("elsif", "else") and (
                    not out or out[-1].name not in ("if", "elsif")):
                raise SieveSyntaxError(node.line, f"{node.name} without a preceding if")
            out.append(node)
        return tuple(out)

    def command(self, depth: int) -> Node:
        if depth > MAX_DEPTH:
            raise SieveSyntaxError(self.tokens[self.pos].line, "nesting too deep")
        self.count += 1
        if self.count > MAX_COMMANDS:
            raise SieveSyntaxError(self.tokens[self.pos].line, "too many commands")
        tok = self.expect("identifier", "a command")
        name = str(tok.value)
        spec = COMMANDS.get(name)
        if spec is None:
            if name in TESTS:
                raise SieveSyntaxError(tok.line, f"{name} is a test, not a command")
            raise SieveSyntaxError(tok.line, f"unknown command {name}")
        node = self.arguments(tok, spec, depth)
        if spec.block:
            self.expect("{", "'{' to open a block")
            block = self.commands(depth + 1, False)
            self.expect("}", "'}' to close the block")
            node = Node(node.name, node.line, node.tags, node.args, node.tests, block)
        else:
            self.expect(";", f"';' after {name}")
        if name == "require":
            self.require(node)
        return node

    def test(self, depth: int) -> Node:
        if depth > MAX_DEPTH:
            raise SieveSyntaxError(self.tokens[self.pos].line, "nesting too deep")
        tok = self.expect("identifier", "a test")
        spec = TESTS.get(str(tok.value))
        if spec is None:
            raise SieveSyntaxError(tok.line, f"unknown test {tok.value}")
        return self.arguments(tok, spec, depth)

    def arguments(self, head: Token, spec: Spec, depth: int) -> Node:
        name, line = str(head.value), head.line
        self.need(spec.extension, line, name)
        tags: dict[str, Value] = {}
        groups: dict[str, str] = {}
        positional: list[tuple[str, ...] | int] = []
        while (tok := self.peek()) is not None:
            if tok.kind == "tag":
                if positional:
                    raise SieveSyntaxError(tok.line, f":{tok.value} after positional arguments")
                self.pos += 1
                self.tag(name, spec, tok, tags, groups)
            elif tok.kind == "number":
                self.pos += 1
                positional.append(int(tok.value))
            elif tok.kind in ("string", "["):
                positional.append(self.string_list())
            else:
                break
        sub: list[Node] = []
        tok = self.peek()
        if spec.tests == "one":
            sub.append(self.test(depth + 1))
        elif spec.tests == "list":
            self.expect("(", f"'(' and a list of tests after {name}")
            sub.append(self.test(depth + 1))
            while self.peek() is not None and self.tokens[self.pos].kind == ",":
                self.pos += 1
                sub.append(self.test(depth + 1))
            self.expect(")", "')' to close the test list")
        elif tok is not None and tok.kind in ("identifier", "(") and name in COMMANDS \
                and not spec.block:
            raise SieveSyntaxError(tok.line, f"{name} takes no test")
        self.check_positional(name, line, spec, positional)
        node = Node(name, line, tags, tuple(positional), tuple(sub))
        self.check_semantics(node)
        return node

    def tag(self, name: str, spec: Spec, tok: Token, tags: dict[str, Value],
            groups: dict[str, str]) -> None:
        tag = str(tok.value)
        tspec = TAGS.get(tag)
        if tspec is None or tag not in spec.tags:
            raise SieveSyntaxError(tok.line, f"{name} does not take :{tag}")
        self.need(tspec.extension, tok.line, f":{tag}")
        if tspec.group in groups:
            raise SieveSyntaxError(
                tok.line, f":{tag} conflicts with :{groups[tspec.group]} on {name}")
        groups[tspec.group] = tag
        value: Value = True
        if tspec.kind == "number":
            arg = self.next(f"a number after :{tag}")
            if arg.kind != "number":
                raise SieveSyntaxError(arg.line, f":{tag} needs a number")
            value = int(arg.value)
        elif tspec.kind is not None:
            after = self.peek()
            if after is None or after.kind not in ("string", "["):
                raise SieveSyntaxError(tok.line, f":{tag} needs a string")
            strings = self.string_list()
            if tspec.kind == "string":
                if len(strings) != 1:
                    raise SieveSyntaxError(tok.line, f":{tag} needs a single string")
                value = strings[0]
            else:
                value = strings
        tags[tag] = value

    def string_list(self) -> tuple[str, ...]:
        tok = self.next("a string")
        if tok.kind == "string":
            return (self.decoded(tok),)
        out = [self.decoded(self.expect("string", "a string in the list"))]
        while (sep := self.next("',' or ']'")).kind == ",":
            out.append(self.decoded(self.expect("string", "a string after ','")))
        if sep.kind != "]":
            raise SieveSyntaxError(sep.line, f"expected ',' or ']', found {_describe(sep)}")
        return tuple(out)

    def decoded(self, tok: Token) -> str:
        value = str(tok.value)
        if "encoded-character" in self.requires:
            value = decode_encoded_characters(value, tok.line)
        return value

    # -- validation -------------------------------------------------------------------

    def need(self, extension: str | None, line: int, what: str) -> None:
        if extension is not None and extension not in self.requires:
            raise SieveSyntaxError(line, f"{what} needs require \"{extension}\"")

    def require(self, node: Node) -> None:
        for ext in node.strings(0):
            if ext not in EXTENSIONS:
                raise SieveSyntaxError(node.line, f"extension {ext!r} is not supported")
            self.requires.add(ext)

    def check_positional(self, name: str, line: int, spec: Spec,
                         positional: list[tuple[str, ...] | int]) -> None:
        for shape in spec.positional:
            if len(shape) == len(positional) and all(
                    _fits(kind, arg) for kind, arg in zip(shape, positional, strict=True)):
                return
        wanted = " or ".join(", ".join(shape) or "no arguments" for shape in spec.positional)
        raise SieveSyntaxError(line, f"{name} takes {wanted}")

    def check_semantics(self, node: Node) -> None:
        comparator = node.tag("comparator")
        if isinstance(comparator, str):
            if comparator not in COMPARATORS:
                raise SieveSyntaxError(node.line, f"unknown comparator {comparator!r}")
            self.need(COMPARATORS[comparator], node.line, f"comparator {comparator!r}")
            if comparator == "i;ascii-numeric" and (
                    node.tag("contains") or node.tag("matches")):
                raise SieveSyntaxError(node.line, "i;ascii-numeric supports only :is and "
                                       "relational matches")
        for rel in ("count", "value"):
            value = node.tag(rel)
            if isinstance(value, str) and value.lower() not in RELATIONS:
                raise SieveSyntaxError(node.line, f"unknown relation {value!r} for :{rel}")
        if node.name == "size" and not node.tags:
            raise SieveSyntaxError(node.line, "size needs :over or :under")
        if node.name == "envelope":
            for part in node.strings(0):
                if part.lower() not in ENVELOPE_PARTS:
                    raise SieveSyntaxError(node.line, f"unknown envelope part {part!r}")
        if node.name in ("address", "header", "exists"):
            for header in node.strings(0):
                if not header or any(c <= " " or c == ":" or c > "~" for c in header):
                    raise SieveSyntaxError(node.line, f"invalid header name {header!r}")
        self.check_variables(node)
        self.check_targets(node)
        self.check_date(node)
        if node.name == "vacation" and node.tag("handle") == "":
            raise SieveSyntaxError(node.line, "vacation :handle must not be empty")

    def check_variables(self, node: Node) -> None:
        """RFC 5229: names are identifiers; the flag commands take a variable name
        first only with "variables"."""
        names: tuple[str, ...] = ()
        if node.name == "set":
            names = node.strings(0)
        elif node.name in ("setflag", "addflag", "removeflag", "hasflag") and \
                len(node.args) == 2:
            self.need("variables", node.line, f"{node.name} with a variable name")
            names = node.strings(0)
        for name in names:
            if not _VARIABLE_NAME.fullmatch(name):
                raise SieveSyntaxError(node.line, f"invalid variable name {name!r}")

    def check_targets(self, node: Node) -> None:
        """Where a mailbox or address is written out (no ${...} to expand at run
        time), refuse what could never be delivered to, at upload as Pigeonhole does."""
        if node.name not in ("fileinto", "redirect"):
            return
        target = node.string(0)
        if "${" in target and "variables" in self.requires:
            return
        if node.name == "fileinto" and (not target or "\x00" in target):
            raise SieveSyntaxError(node.line, "fileinto needs a mailbox name")
        if node.name == "redirect" and not _ADDRESS.fullmatch(target.strip()):
            raise SieveSyntaxError(node.line, f"redirect to an invalid address {target!r}")

    def check_date(self, node: Node) -> None:
        if node.name not in ("date", "currentdate"):
            return
        zone = node.tag("zone")
        if isinstance(zone, str) and not ZONE.fullmatch(zone):
            raise SieveSyntaxError(node.line, f"invalid :zone {zone!r} (use +hhmm or -hhmm)")
        date_part = node.string(len(node.args) - 2).lower()
        if date_part not in PARTS:
            raise SieveSyntaxError(node.line, f"unknown date part {date_part!r}")


_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _fits(kind: str, arg: tuple[str, ...] | int) -> bool:
    if kind == "number":
        return isinstance(arg, int)
    if kind == "string":
        return isinstance(arg, tuple) and len(arg) == 1
    return isinstance(arg, tuple)


def _describe(tok: Token) -> str:
    if tok.kind == "string":
        return "a string"
    if tok.kind == "tag":
        return f":{tok.value}"
    if tok.kind in ("identifier", "number"):
        return f"{tok.kind} {tok.value}"
    return f"'{tok.kind}'"


def parse_tree(text: str) -> tuple[frozenset[str], tuple[Node, ...]]:
    """The script's requires and validated commands; raises SieveSyntaxError."""
    parser = _Parser(tokenize(text))
    commands = parser.commands(0, True)
    tok = parser.peek()
    if tok is not None:
        raise SieveSyntaxError(tok.line, f"unexpected {_describe(tok)}")
    return frozenset(parser.requires), commands
