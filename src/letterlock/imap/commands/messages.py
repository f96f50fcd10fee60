"""Commands on messages of the selected mailbox, other than FETCH and SEARCH: STORE
(CONDSTORE UNCHANGEDSINCE), COPY and MOVE (RFC 6851, UIDPLUS COPYUID), EXPUNGE and
UID EXPUNGE, CLOSE and UNSELECT."""

from __future__ import annotations

from letterlock.errors import InvalidInput, LetterlockError
from letterlock.imap.commands.mailboxes import decoded_name, deselect
from letterlock.imap.context import Context
from letterlock.imap.errors import reply_for
from letterlock.imap.esearch import ordered_set
from letterlock.imap.parsing import commands as c
from letterlock.imap.reply import Reply, bad, no, ok
from letterlock.imap.selected import BadSequence, SelectedMailbox, compress
from letterlock.services.accounts.accounts import Session
from letterlock.services.mail.mailbox import canonical_flags
from letterlock.storage.models import apply_flag_mode


def _sel(ctx: Context) -> tuple[Session, SelectedMailbox]:
    assert ctx.user is not None and ctx.selected is not None  # state-checked
    return ctx.user, ctx.selected


def report_expunged(ctx: Context, uids: list[int]) -> None:
    """EXPUNGE (or, with QRESYNC, VANISHED) responses for messages this session removed."""
    _, sel = _sel(ctx)
    if not uids:
        return
    for line in sel.removals(uids):
        ctx.out.untagged(line)
    if ctx.qresync:
        sel.remove(uids)
        ctx.out.untagged(b"VANISHED " + compress(uids).encode())
    else:
        for seq in sel.remove(uids):
            ctx.out.untagged(b"%d EXPUNGE" % seq)
    for line in sel.recent_update():
        ctx.out.untagged(line)


async def _deleted_uids(ctx: Context, within: list[int] | None) -> list[int]:
    user, sel = _sel(ctx)
    svc = ctx.services.mailboxes
    if within is None:
        async with ctx.services.listing:
            records = await svc.messages(user, sel.id, with_summary=False)
    else:
        records = await svc.get_messages(user, sel.id, within, with_summary=False)
    return [m.uid for m in records if "\\Deleted" in m.flags and sel.seq_of(m.uid)]


async def expunge(cmd: c.Expunge, ctx: Context) -> Reply:
    user, sel = _sel(ctx)
    if sel.readonly:
        return no("Mailbox is read-only", "READ-ONLY")
    try:
        within = None if cmd.uids is None else sel.resolve(cmd.uids, uid=True)
        doomed = await _deleted_uids(ctx, within)
        gone = await ctx.services.mailboxes.expunge(user, sel.id, doomed) if doomed else []
    except LetterlockError as exc:
        return reply_for(exc)
    # The view's modseq is not advanced here: changes by other sessions that came
    # before this expunge must still be reported by the next refresh.
    report_expunged(ctx, [g.uid for g in gone])
    top = max([sel.modseq, *(g.modseq for g in gone)])
    code = f"HIGHESTMODSEQ {top}" if ctx.condstore else None
    return ok(f"{cmd.name} completed", code)


async def close(cmd: c.Close, ctx: Context) -> Reply:
    user, sel = _sel(ctx)
    if not sel.readonly:
        try:
            doomed = await _deleted_uids(ctx, None)
            if doomed:
                await ctx.services.mailboxes.expunge(user, sel.id, doomed)
        except LetterlockError as exc:
            return reply_for(exc)
    deselect(ctx)
    return ok("CLOSE completed")


async def unselect(cmd: c.Unselect, ctx: Context) -> Reply:
    deselect(ctx)
    return ok("UNSELECT completed")


async def store(cmd: c.Store, ctx: Context) -> Reply:
    user, sel = _sel(ctx)
    if sel.readonly:
        return no("Mailbox is read-only", "READ-ONLY")
    if any(f.lower() == "\\recent" for f in cmd.flags):
        return bad("\\Recent cannot be stored")
    try:
        uids = sel.resolve(cmd.set, cmd.uid)
    except BadSequence as exc:
        return bad(str(exc))
    if cmd.unchanged_since is not None:
        ctx.enable_condstore()
    svc = ctx.services.mailboxes
    try:
        changes, refused = await svc.store_flags(user, sel.id, uids, cmd.mode, cmd.flags,
                                                 cmd.unchanged_since)
        changed_uids = {ch.uid for ch in changes}
        current: dict[int, tuple[frozenset[str], int]] = {}
        """uid -> (flags, modseq) of messages the STORE did not change."""
        vanished = False
        if not cmd.silent:
            rest = [u for u in uids if u not in changed_uids and u not in refused]
            if rest:
                current = {m.uid: (m.flags, m.modseq) for m in await svc.get_messages(
                    user, sel.id, rest, with_summary=False)}
                vanished = len(current) < len(rest)
            if vanished and cmd.unchanged_since is None:
                # Expunged by another session, but still in this session's view until
                # the EXPUNGE can be sent: answered as ghosts (RFC 2180 4.1.1), with
                # the flags the message had when expunged, changed as asked. Nothing
                # is stored: the message is gone.
                wanted = canonical_flags(cmd.flags)
                ghosts = await svc.expunged_flags(
                    user, sel.id, [u for u in rest if u not in current])
                for uid, ghost in ghosts.items():
                    current[uid] = (apply_flag_mode(ghost.flags, cmd.mode, wanted),
                                    ghost.modseq)
    except InvalidInput as exc:
        return bad(str(exc))
    except LetterlockError as exc:
        return reply_for(exc)
    # Keywords named in the STORE exist in the mailbox from now on, whether or not a
    # message changed; announce them first (PERMANENTFLAGS has \\*).
    shown = [*cmd.flags] if cmd.mode != "remove" else []
    shown += [f for ch in changes for f in ch.flags] + \
        [f for flags, _ in current.values() for f in flags]
    for line in sel.learn_keywords(shown):
        ctx.out.untagged(line)
    by_uid = {ch.uid: ch for ch in changes}
    for uid in uids:
        seq = sel.seq_of(uid)
        if seq is None:
            continue
        ch = by_uid.get(uid)
        if ch is not None:
            sel.note_reported(uid, ch.modseq)
            items = []
            if not cmd.silent:
                items.append(b"FLAGS " + sel.flags(uid, ch.flags))
            if cmd.uid or ctx.qresync:
                items.insert(0, b"UID %d" % uid)
            if ctx.condstore:
                items.append(b"MODSEQ (%d)" % ch.modseq)
            if not cmd.silent or ctx.condstore:
                ctx.out.untagged(b"%d FETCH (%s)" % (seq, b" ".join(items)))
        elif uid in current:
            flags, modseq = current[uid]
            items = [b"FLAGS " + sel.flags(uid, flags)]
            if cmd.uid or ctx.qresync:
                items.insert(0, b"UID %d" % uid)
            if ctx.condstore:
                items.append(b"MODSEQ (%d)" % modseq)
            ctx.out.untagged(b"%d FETCH (%s)" % (seq, b" ".join(items)))
    if vanished and not cmd.uid:
        # Some messages were expunged by another session (not yet reported here): the
        # others were updated; the gone ones have no flags left to show (RFC 2180 4.2.1).
        return ok("STORE completed; some messages were expunged meanwhile", "EXPUNGEISSUED")
    if refused:
        if cmd.uid:
            listed = compress(refused)
        else:
            listed = compress(s for s in (sel.seq_of(u) for u in refused) if s is not None)
        return ok("Conditional STORE failed for some messages", f"MODIFIED {listed}")
    return ok(f"{cmd.name} completed")


async def copy(cmd: c.Copy, ctx: Context) -> Reply:
    user, sel = _sel(ctx)
    if cmd.move and sel.readonly:
        return no("Mailbox is read-only", "READ-ONLY")
    try:
        uids = sel.resolve(cmd.set, cmd.uid)
    except BadSequence as exc:
        return bad(str(exc))
    target = decoded_name(ctx, cmd.mailbox)
    if isinstance(target, Reply):
        return target
    svc = ctx.services.mailboxes
    if not uids:
        try:
            await svc.get_mailbox(user, target)
        except LetterlockError as exc:
            return reply_for(exc, trycreate=True)
        return ok(f"{cmd.name} completed (no messages)")
    try:
        if cmd.move:
            pairs, gone = await svc.move(user, sel.id, uids, target)
        else:
            pairs, gone = await svc.copy(user, sel.id, uids, target), []
    except LetterlockError as exc:
        return reply_for(exc, trycreate=True)
    code = None
    if pairs:
        validity = pairs[0][1].uidvalidity
        code = (f"COPYUID {validity} {ordered_set([p[0] for p in pairs])} "
                f"{ordered_set([p[1].uid for p in pairs])}")
    if cmd.move:
        if code:
            ctx.out.untagged(f"OK [{code}] Moved".encode())
            code = None
        report_expunged(ctx, [g.uid for g in gone])
    return ok(f"{cmd.name} completed", code)
