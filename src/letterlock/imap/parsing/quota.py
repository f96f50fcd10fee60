"""The QUOTA commands (RFC 9208 4.1): GETQUOTA, GETQUOTAROOT, SETQUOTA."""

from __future__ import annotations

from dataclasses import dataclass

from letterlock.imap.parsing.commands import AuthCommand, Command
from letterlock.imap.parsing.primitives import (
    MAX_NUMBER64,
    ParseError,
    astring,
    atom,
    expect,
    number,
    peek,
    sp,
)

QUOTA_COMMANDS = frozenset({"GETQUOTA", "GETQUOTAROOT", "SETQUOTA"})


@dataclass(frozen=True)
class GetQuota(AuthCommand):
    root: bytes


@dataclass(frozen=True)
class GetQuotaRoot(AuthCommand):
    mailbox: bytes


@dataclass(frozen=True)
class SetQuota(AuthCommand):
    root: bytes
    limits: tuple[tuple[str, int], ...]


def quota_command(name: str, buf: bytes, pos: int, tag: str) -> tuple[Command, int]:
    """The command ``name`` (one of QUOTA_COMMANDS) from its arguments at ``pos``;
    returns it and the end of what it read."""
    if name == "GETQUOTAROOT":
        mailbox, pos = astring(buf, pos)
        return GetQuotaRoot(tag, mailbox), pos
    root, pos = astring(buf, pos)
    if name == "GETQUOTA":
        return GetQuota(tag, root), pos
    # SETQUOTA quota-root SP "(" [setquota-resource *(SP setquota-resource)] ")"
    pos = expect(buf, sp(buf, pos), b"(")
    limits: list[tuple[str, int]] = []
    while not peek(buf, pos, b")"):
        if limits:
            pos = sp(buf, pos)
        resource, pos = atom(buf, pos)
        limit, pos = number(buf, sp(buf, pos), MAX_NUMBER64)
        limits.append((resource.upper(), limit))
        if len(limits) > 16:
            raise ParseError("too many quota resources")
    return SetQuota(tag, root, tuple(limits)), expect(buf, pos, b")")
