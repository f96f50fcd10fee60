"""QUOTA (RFC 9208): each account has one quota root, "User quota", holding every
mailbox of the account; its resources are STORAGE (KiB of sealed messages) and
MESSAGE, those of the limits in force (services/accounts/quotas.py). Limits are set
by the administrator (``letterlock quota``), so SETQUOTA is refused."""

from __future__ import annotations

from letterlock.errors import LetterlockError
from letterlock.imap import encoding
from letterlock.imap.commands.mailboxes import decoded_name
from letterlock.imap.context import Context
from letterlock.imap.errors import reply_for
from letterlock.imap.parsing.quota import GetQuota, GetQuotaRoot, SetQuota
from letterlock.imap.reply import Reply, no, ok

ROOT = "User quota"
CAPABILITIES = ("QUOTA", "QUOTA=RES-STORAGE", "QUOTA=RES-MESSAGE")


async def _quota_line(ctx: Context) -> bytes | None:
    """The QUOTA response of the account's root, None if it has no limits."""
    quotas = ctx.services.mailboxes.quotas
    assert ctx.user is not None
    if quotas is None:
        return None
    limits = await quotas.limits(ctx.user.ref.address)
    if limits.unlimited:
        return None
    usage = await quotas.usage(ctx.user.ref)
    resources = []
    if limits.storage is not None:
        # RFC 9208 5.1: STORAGE in units of 1024 octets, rounded up.
        resources.append(b"STORAGE %d %d" % (-(-usage.storage // 1024),
                                             limits.storage // 1024))
    if limits.messages is not None:
        resources.append(b"MESSAGE %d %d" % (usage.messages, limits.messages))
    return b"QUOTA " + encoding.string(ROOT) + b" (" + b" ".join(resources) + b")"


async def getquotaroot(cmd: GetQuotaRoot, ctx: Context) -> Reply:
    name = decoded_name(ctx, cmd.mailbox)
    if isinstance(name, Reply):
        return name
    assert ctx.user is not None
    try:
        await ctx.services.mailboxes.get_mailbox(ctx.user, name)
        line = await _quota_line(ctx)
    except LetterlockError as exc:
        return reply_for(exc)
    root = b"QUOTAROOT " + encoding.astring(cmd.mailbox.decode("utf-8", "replace"))
    ctx.out.untagged(root + (b" " + encoding.string(ROOT) if line else b""))
    if line:
        ctx.out.untagged(line)
    return ok("GETQUOTAROOT completed")


async def getquota(cmd: GetQuota, ctx: Context) -> Reply:
    try:
        line = await _quota_line(ctx)
    except LetterlockError as exc:
        return reply_for(exc)
    if line is None or cmd.root.decode("utf-8", "replace") != ROOT:
        return no("No such quota root", "NONEXISTENT")
    ctx.out.untagged(line)
    return ok("GETQUOTA completed")


async def setquota(cmd: SetQuota, ctx: Context) -> Reply:
    return no("Quotas are set by the administrator", "NOPERM")
