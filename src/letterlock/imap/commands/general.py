"""Commands valid in any state, and session-wide settings: CAPABILITY, NOOP, LOGOUT,
ID (RFC 2971), ENABLE (RFC 5161), NAMESPACE (RFC 2342), CHECK."""

from __future__ import annotations

from letterlock.imap import encoding
from letterlock.imap.context import Context
from letterlock.imap.parsing import commands as c
from letterlock.imap.reply import Reply, ok
from letterlock.imap.state import State

ENABLEABLE = ("CONDSTORE", "QRESYNC", "IMAP4REV2", "UTF8=ACCEPT")


async def capability(cmd: c.Capability, ctx: Context) -> Reply:
    ctx.out.untagged(b"CAPABILITY " + " ".join(ctx.capabilities()).encode())
    return ok("CAPABILITY completed")


async def noop(cmd: c.Noop | c.Check, ctx: Context) -> Reply:
    return ok(f"{cmd.name} completed")


async def logout(cmd: c.Logout, ctx: Context) -> Reply:
    ctx.out.untagged(b"BYE letterlock logging out")
    ctx.state = State.LOGOUT
    return ok("LOGOUT completed")


async def id_(cmd: c.Id, ctx: Context) -> Reply:
    fields: list[encoding.Value] = ["name", "letterlock", "vendor", "letterlock",
                                    "support-url", "https://letterlock.example/"]
    ctx.out.untagged(b"ID " + encoding.encode(fields))
    return ok("ID completed")


async def enable(cmd: c.Enable, ctx: Context) -> Reply:
    newly: list[str] = []
    for cap in cmd.capabilities:
        if cap not in ENABLEABLE or cap in ctx.enabled:
            continue
        if cap == "QRESYNC" and "CONDSTORE" not in ctx.enabled:
            ctx.enabled.add("CONDSTORE")
        ctx.enabled.add(cap)
        newly.append(cap)
    names = {"IMAP4REV2": "IMAP4rev2"}
    ctx.out.untagged(b"ENABLED" + b"".join(b" " + names.get(n, n).encode() for n in newly))
    return ok("ENABLE completed")


async def namespace(cmd: c.Namespace, ctx: Context) -> Reply:
    ctx.out.untagged(b'NAMESPACE (("" "/")) NIL NIL')
    return ok("NAMESPACE completed")

