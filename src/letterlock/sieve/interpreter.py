"""Running a parsed script against one message (RFC 5228 section 2.10 and the
extensions' action rules): tests are evaluated in order, actions collected, the
implicit keep cancelled by discard, fileinto, redirect and reject (not with :copy),
and duplicates merged. A runtime error leaves only a plain keep."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import UTC, datetime

from letterlock.sieve.actions import (
    Action,
    Discard,
    Envelope,
    FileInto,
    Keep,
    Outcome,
    Redirect,
    Reject,
    Vacation,
)
from letterlock.sieve.dates import header_date, part, zone_of
from letterlock.sieve.errors import SieveRuntimeError
from letterlock.sieve.matching import Matcher
from letterlock.sieve.message import Message
from letterlock.sieve.model import Script
from letterlock.sieve.syntax import Node
from letterlock.sieve.vacation import may_reply, vacation_of
from letterlock.sieve.variables import Variables, modified

MAX_ACTIONS = 32
"""Pigeonhole's default sieve_max_actions."""


class _Stop(Exception):
    """The stop command: end the script now."""


def _flag_words(values: tuple[str, ...]) -> list[str]:
    return [w for v in values for w in v.split()]


def _merge_flags(current: list[str], add: list[str]) -> list[str]:
    seen = {f.lower() for f in current}
    out = list(current)
    for flag in add:
        if flag.lower() not in seen:
            seen.add(flag.lower())
            out.append(flag)
    return out


class _Run:
    def __init__(self, message: bytes, envelope: Envelope,
                 mailbox_exists: Callable[[str], bool] | None, max_redirects: int,
                 variables: bool = False, now: datetime | None = None) -> None:
        self.now = now if now is not None and now.tzinfo is not None else \
            datetime.now(UTC)
        self.variables = Variables() if variables else None
        self.message = Message(message)
        self.size = len(message)
        self.envelope = envelope
        self.mailbox_exists = mailbox_exists
        self.max_redirects = max_redirects
        self.actions: list[Action] = []
        self.implicit_keep = True
        self.discarded = False
        self.flags: list[str] = []
        self.redirects = 0
        self.vacation_seen = False

    # -- commands ---------------------------------------------------------------------

    def block(self, commands: tuple[Node, ...]) -> None:
        done_if = False
        for node in commands:
            name = node.name
            if name == "if":
                done_if = self.test(node.tests[0])
                if done_if:
                    self.block(node.block or ())
            elif name == "elsif":
                if not done_if:
                    done_if = self.test(node.tests[0])
                    if done_if:
                        self.block(node.block or ())
            elif name == "else":
                if not done_if:
                    self.block(node.block or ())
                done_if = True
            else:
                self.command(node if self.variables is None
                             else self.variables.expand_node(node))

    def add(self, action: Action, cancels_keep: bool) -> None:
        if len(self.actions) >= MAX_ACTIONS:
            raise SieveRuntimeError(f"more than {MAX_ACTIONS} actions")
        self.actions.append(action)
        if cancels_keep:
            self.implicit_keep = False

    def flags_for(self, node: Node) -> tuple[str, ...]:
        given = node.tag("flags")
        if isinstance(given, tuple):
            return tuple(_merge_flags([], _flag_words(given)))
        return tuple(self.flags)

    def command(self, node: Node) -> None:
        name = node.name
        copy = bool(node.tag("copy"))
        if name == "require":
            return
        if name == "stop":
            raise _Stop
        if name == "keep":
            self.add(Keep(self.flags_for(node)), True)
        elif name == "discard":
            self.discarded = True
            self.implicit_keep = False
        elif name == "fileinto":
            self.add(FileInto(node.string(0), self.flags_for(node), copy,
                              bool(node.tag("create"))), not copy)
        elif name == "redirect":
            self.redirects += 1
            if self.redirects > self.max_redirects:
                raise SieveRuntimeError(f"more than {self.max_redirects} redirects")
            address = node.string(0).strip()
            if "@" not in address or any(c in address for c in " \t\r\n,<>"):
                raise SieveRuntimeError(f"line {node.line}: invalid redirect address")
            self.add(Redirect(address, copy), not copy)
        elif name in ("reject", "ereject"):
            if any(isinstance(a, Reject) for a in self.actions):
                raise SieveRuntimeError(f"line {node.line}: more than one reject")
            self.add(Reject(node.string(0), name == "ereject"), True)
        elif name == "vacation":
            if self.vacation_seen:
                raise SieveRuntimeError(f"line {node.line}: more than one vacation")
            self.vacation_seen = True
            action = vacation_of(node)
            if may_reply(action, self.message, self.envelope):
                self.add(action, False)
        elif name in ("setflag", "addflag", "removeflag"):
            self.flag_command(node)
        elif name == "set" and self.variables is not None:
            self.variables.set(node.string(0), modified(node, node.string(1)))

    def flag_command(self, node: Node) -> None:
        """RFC 5232: change the internal flag list, or a variable's with "variables"."""
        words = _flag_words(node.strings(len(node.args) - 1))
        target = node.string(0) if len(node.args) == 2 else None
        current = self.flags if target is None or self.variables is None else \
            self.variables.get(target).split()
        if node.name == "setflag":
            current = _merge_flags([], words)
        elif node.name == "addflag":
            current = _merge_flags(current, words)
        else:
            gone = {f.lower() for f in words}
            current = [f for f in current if f.lower() not in gone]
        if target is None or self.variables is None:
            self.flags = current
        else:
            self.variables.set(target, " ".join(current))

    # -- tests ------------------------------------------------------------------------

    def test(self, node: Node) -> bool:
        name = node.name
        if self.variables is not None and name not in ("not", "allof", "anyof"):
            node = self.variables.expand_node(node)
        if name == "true":
            return True
        if name == "false":
            return False
        if name == "not":
            return not self.test(node.tests[0])
        if name == "allof":
            return all(self.test(t) for t in node.tests)
        if name == "anyof":
            return any(self.test(t) for t in node.tests)
        if name == "exists":
            return all(self.message.has(h) for h in node.strings(0))
        if name == "size":
            limit = node.number(0)
            return self.size > limit if node.tag("over") else self.size < limit
        if name == "mailboxexists":
            check = self.mailbox_exists
            return check is not None and all(check(m) for m in node.strings(0))
        keys = node.strings(len(node.args) - 1)
        if name == "header":
            values = [v for h in node.strings(0) for v in self.message.headers(h)]
        elif name in ("address", "envelope"):
            values = self.address_values(node)
        elif name == "body":
            values = self.body_values(node)
        elif name == "hasflag":
            values = self.flags if len(node.args) == 1 or self.variables is None else \
                [f for v in node.strings(0) for f in self.variables.get(v).split()]
        elif name in ("date", "currentdate"):
            values = self.date_values(node)
        elif name == "string":  # RFC 5229 5: empty strings are not counted
            values = [v for v in node.strings(0) if v or not node.tag("count")]
        else:
            raise SieveRuntimeError(f"line {node.line}: unknown test {name}")
        return self.match(Matcher.of(node), values, keys)

    def date_values(self, node: Node) -> list[str]:
        if node.name == "currentdate":
            when: datetime | None = self.now
        else:
            header = node.string(0)
            when = header_date(self.message.headers(header), header)
        if when is None:
            return []
        zone = node.tag("zone")
        if isinstance(zone, str):
            when = when.astimezone(zone_of(zone))
        elif not node.tag("originalzone"):
            when = when.astimezone(self.now.tzinfo)
        return [part(when, node.string(len(node.args) - 2).lower())]

    def match(self, matcher: Matcher, values: list[str], keys: tuple[str, ...]) -> bool:
        if self.variables is None or matcher.kind != "matches":
            return matcher.any(values, keys)
        captures = matcher.captures(values, keys)
        if captures is not None:  # a failed match leaves the match variables alone
            self.variables.matches = captures
        return captures is not None

    def address_values(self, node: Node) -> list[str]:
        pairs: list[tuple[str, str]] = []
        if node.name == "envelope":
            for part in node.strings(0):
                value = (self.envelope.sender if part.lower() == "from"
                         else self.envelope.recipient).strip().strip("<>")
                local, at, domain = value.rpartition("@")
                pairs.append((local, domain) if at else (value, ""))
        else:
            for header in node.strings(0):
                pairs += self.message.addresses(header)
        part = next((p for p in ("localpart", "domain", "user", "detail")
                     if node.tag(p)), "all")
        out: list[str] = []
        for local, domain in pairs:
            if part == "all":
                out.append(f"{local}@{domain}" if domain else local)
            elif part == "localpart":
                out.append(local)
            elif part == "domain":
                out.append(domain)
            elif part == "user":
                out.append(local.split("+", 1)[0])
            elif "+" in local:  # :detail; no separator means no value (RFC 5233 4)
                out.append(local.split("+", 1)[1])
        return out

    def body_values(self, node: Node) -> list[str]:
        if node.tag("raw"):
            return [self.message.body_raw()]
        content = node.tag("content")
        return self.message.body_parts(content if isinstance(content, tuple) else None)

    # -- result -----------------------------------------------------------------------

    def outcome(self) -> Outcome:
        if self.implicit_keep:
            self.actions.append(Keep(tuple(self.flags)))
        rejected = any(isinstance(a, Reject) for a in self.actions)
        if rejected and any(isinstance(a, (Keep, FileInto, Redirect, Vacation))
                            for a in self.actions):
            raise SieveRuntimeError("reject cannot be combined with keep, fileinto, "
                                    "redirect or vacation")
        final = _merged(self.actions)
        if self.discarded and not any(isinstance(a, (Keep, FileInto)) for a in final):
            final.append(Discard())
        return Outcome(tuple(final))


def _merged(actions: list[Action]) -> list[Action]:
    """Keep and fileinto "INBOX" are one delivery; the same mailbox or redirect target
    twice is one action (flags joined, :copy only if every instance had it)."""
    out: list[Action] = []
    index: dict[tuple[str, str], int] = {}
    for action in actions:
        if isinstance(action, Keep | FileInto):
            mailbox = "INBOX" if isinstance(action, Keep) else action.mailbox
            key = ("box", "INBOX" if mailbox.upper() == "INBOX" else mailbox)
            if key in index:
                prev = out[index[key]]
                assert isinstance(prev, Keep | FileInto)
                flags = tuple(_merge_flags(list(prev.flags), list(action.flags)))
                if isinstance(prev, Keep) or isinstance(action, Keep):
                    out[index[key]] = Keep(flags)
                else:
                    out[index[key]] = FileInto(prev.mailbox, flags,
                                               prev.copy and action.copy,
                                               prev.create or action.create)
                continue
            index[key] = len(out)
        elif isinstance(action, Redirect):
            key = ("to", action.address.lower())
            if key in index:
                prev = out[index[key]]
                assert isinstance(prev, Redirect)
                out[index[key]] = Redirect(prev.address, prev.copy and action.copy)
                continue
            index[key] = len(out)
        out.append(action)
    return out


def evaluate(script: Script, message: bytes, envelope: Envelope, *,
             mailbox_exists: Callable[[str], bool] | None = None,
             max_redirects: int = 5, now: datetime | None = None) -> Outcome:
    """Run ``script`` on ``message`` (``now``: the time of delivery for currentdate,
    an aware datetime whose zone is the "local" one; UTC now by default). Never
    raises: a runtime problem (a limit, a conflict between actions) gives a plain
    Keep and the problem in ``errors``."""
    run = _Run(message, envelope, mailbox_exists, max_redirects,
               "variables" in script.requires, now)
    try:
        with contextlib.suppress(_Stop):
            run.block(script.commands)
        return run.outcome()
    except SieveRuntimeError as exc:
        return Outcome((Keep(),), (str(exc),))
    except (RecursionError, MemoryError, ValueError, LookupError) as exc:
        return Outcome((Keep(),), (f"{type(exc).__name__} while filtering",))
