"""Mailbox commands: SELECT/EXAMINE (with CONDSTORE/QRESYNC, RFC 7162), CREATE
(CREATE-SPECIAL-USE, RFC 6154), DELETE, RENAME, SUBSCRIBE/UNSUBSCRIBE, LIST
(LIST-EXTENDED RFC 5258, LIST-STATUS RFC 5819, SPECIAL-USE, CHILDREN), LSUB, STATUS,
APPEND (UIDPLUS RFC 4315, APPENDLIMIT RFC 7889, BINARY RFC 3516, MULTIAPPEND RFC 3502,
CATENATE RFC 4469)."""

from __future__ import annotations

import re

from letterlock.errors import LetterlockError
from letterlock.imap import encoding
from letterlock.imap.commands import catenate
from letterlock.imap.context import Context
from letterlock.imap.errors import reply_for
from letterlock.imap.parsing import commands as c
from letterlock.imap.reply import Reply, bad, no, ok
from letterlock.imap.selected import SelectedMailbox, compress
from letterlock.imap.state import State
from letterlock.services.accounts.accounts import Session
from letterlock.services.mail.mailbox_folders import HIERARCHY
from letterlock.storage.models import MailboxRecord


def _user(ctx: Context) -> Session:
    assert ctx.user is not None  # guaranteed by the state check
    return ctx.user


def decoded_name(ctx: Context, raw: bytes) -> str | Reply:
    try:
        return ctx.mailbox_name(raw)
    except (UnicodeDecodeError, ValueError):
        # Well-formed syntax, but no mailbox can have this name.
        return no("No such mailbox (invalid name encoding)", "NONEXISTENT")


def deselect(ctx: Context) -> None:
    if ctx.selected is not None:
        ctx.selected.close()
        ctx.selected = None
    if ctx.state is State.SELECTED:
        ctx.state = State.AUTHENTICATED


async def select(cmd: c.Select, ctx: Context) -> Reply:
    if ctx.selected is not None:
        deselect(ctx)
        ctx.out.untagged(b"OK [CLOSED] Previous mailbox closed")
    name = decoded_name(ctx, cmd.mailbox)
    if isinstance(name, Reply):
        return name
    if cmd.qresync is not None and not ctx.qresync:
        return bad("QRESYNC must be enabled first")
    if cmd.condstore:
        ctx.enabled.add("CONDSTORE")
    user = _user(ctx)
    svc = ctx.services.mailboxes
    try:
        box = await svc.get_mailbox(user, name)
    except LetterlockError as exc:
        return reply_for(exc)
    watch = svc.hub.watch(box.id)
    changed = watch.__enter__()
    try:
        # The UIDs and aggregates, not a record per message (issue 17: memory taken
        # by a burst of SELECTs stayed with the process); still bound how many
        # connections list a whole mailbox at once.
        async with ctx.services.listing:
            index = await svc.mailbox_index(user, box.id)
    except LetterlockError as exc:
        watch.__exit__(None, None, None)
        return reply_for(exc)
    claims = None if ctx.rev2 else ctx.services.recent
    recent: set[int] = set()
    if claims is not None:
        try:
            recent = await claims.claim(svc, user, box.id, index.last, index.uids_above,
                                        take=not cmd.readonly)
        except LetterlockError as exc:
            watch.__exit__(None, None, None)
            return reply_for(exc)
    sel = SelectedMailbox(box, index, cmd.readonly, watch, changed, claims, recent)
    out = ctx.out
    for line in sel.flags_responses():
        out.untagged(line)
    out.untagged(b"%d EXISTS" % sel.exists)
    if not ctx.rev2:
        out.untagged(b"%d RECENT" % len(sel.recent))
        first_unseen = (None if index.first_unseen is None
                        else sel.seq_of(index.first_unseen))
        if first_unseen is not None:
            out.untagged(b"OK [UNSEEN %d] First unseen" % first_unseen)
    out.untagged(b"OK [UIDVALIDITY %d] UIDs valid" % sel.uidvalidity)
    out.untagged(b"OK [UIDNEXT %d] Predicted next UID" % sel.uidnext)
    out.untagged(b"OK [HIGHESTMODSEQ %d] Highest" % sel.modseq)
    if ctx.rev2:
        out.untagged(b"LIST () \"/\" " + ctx.mailbox_wire(box.name))
    ctx.selected = sel
    ctx.state = State.SELECTED
    q = cmd.qresync
    if q is not None and q.uidvalidity == sel.uidvalidity:
        try:
            changes = await svc.changes_since(user, box.id, q.modseq, with_summary=False)
        except LetterlockError as exc:
            return reply_for(exc)
        largest = sel.uids.last
        vanished = [u for u in changes.vanished
                    if q.known_uids is None or q.known_uids.contains(u, max(largest, u))]
        if vanished:
            out.untagged(b"VANISHED (EARLIER) " + compress(vanished).encode())
        for m in changes.changed:
            seq = sel.seq_of(m.uid)
            if seq is not None:
                out.untagged(b"%d FETCH (UID %d FLAGS %s MODSEQ (%d))"
                             % (seq, m.uid, sel.flags(m.uid, m.flags), m.modseq))
    mode = "READ-ONLY" if cmd.readonly else "READ-WRITE"
    return ok(f"{cmd.name} completed", mode)


async def create(cmd: c.Create, ctx: Context) -> Reply:
    name = decoded_name(ctx, cmd.mailbox)
    if isinstance(name, Reply):
        return name
    name = name.rstrip(HIERARCHY)  # RFC 9051 6.3.4: a trailing separator is dropped
    if "*" in name or "%" in name:
        return no("Mailbox names cannot contain * or %", "CANNOT")
    if name == "INBOX":
        return no("INBOX always exists", "ALREADYEXISTS")
    if len(cmd.special_use) > 1:
        return no("Only one special use per mailbox", "USEATTR")
    special = None
    if cmd.special_use:
        special = next((s for s in ("\\All", "\\Archive", "\\Drafts", "\\Flagged",
                                    "\\Junk", "\\Sent", "\\Trash")
                        if s.lower() == cmd.special_use[0].lower()), None)
        if special is None:
            return no(f"Unknown special use {cmd.special_use[0]}", "USEATTR")
    svc = ctx.services.mailboxes
    try:
        # RFC 9051 6.3.4: creating a mailbox does not subscribe to it (a name
        # subscribed earlier stays subscribed).
        await svc.create_mailbox(_user(ctx), name, special, subscribe=False)
    except LetterlockError as exc:
        return reply_for(exc)
    return ok("CREATE completed")


async def delete(cmd: c.Delete, ctx: Context) -> Reply:
    name = decoded_name(ctx, cmd.mailbox)
    if isinstance(name, Reply):
        return name
    svc = ctx.services.mailboxes
    user = _user(ctx)
    try:
        boxes = await svc.list_mailboxes(user)
        if not any(b.name == name for b in boxes) and \
                any(b.name.startswith(name + HIERARCHY) for b in boxes):
            # Only the parent of other mailboxes (\Noselect): RFC 9051 6.3.5 makes
            # deleting such a name an error.
            return no("Only a parent of other mailboxes; delete them first", "HASCHILDREN")
        # A mailbox with children is deleted with its messages; the children stay and
        # the name remains as their \Noselect parent (RFC 9051 6.3.5, as Dovecot does).
        if ctx.selected is not None and ctx.selected.name == name:
            deselect(ctx)
            ctx.out.untagged(b"OK [CLOSED] Mailbox deleted")
        await svc.delete_mailbox(user, name)
    except LetterlockError as exc:
        return reply_for(exc)
    return ok("DELETE completed")


async def rename(cmd: c.Rename, ctx: Context) -> Reply:
    old = decoded_name(ctx, cmd.old)
    if isinstance(old, Reply):
        return old
    new = decoded_name(ctx, cmd.new)
    if isinstance(new, Reply):
        return new
    try:
        await ctx.services.mailboxes.rename_mailbox(_user(ctx), old, new.rstrip(HIERARCHY))
    except LetterlockError as exc:
        return reply_for(exc)
    return ok("RENAME completed")


async def subscribe(cmd: c.Subscribe, ctx: Context) -> Reply:
    name = decoded_name(ctx, cmd.mailbox)
    if isinstance(name, Reply):
        return name
    try:
        await ctx.services.mailboxes.subscribe(_user(ctx), name, cmd.subscribe)
    except LetterlockError as exc:
        if cmd.subscribe:
            return reply_for(exc)
    return ok(f"{cmd.name} completed")


# -- LIST ----------------------------------------------------------------------------

def pattern_regex(pattern: str) -> re.Pattern[str]:
    out = []
    for ch in pattern:
        if ch == "*":
            out.append(".*")
        elif ch == "%":
            out.append(f"[^{re.escape(HIERARCHY)}]*")
        else:
            out.append(re.escape(ch))
    body = "".join(out)
    # INBOX is case-insensitive, including as the first level of a name.
    if pattern[:5].upper() == "INBOX" and (len(pattern) == 5 or pattern[5] in HIERARCHY + "*%"):
        body = "(?i:INBOX)" + "".join(out[5:])
    return re.compile(body + r"\Z", re.DOTALL)


def _pattern_text(ctx: Context, raw: bytes) -> str:
    try:
        return ctx.mailbox_name(raw)
    except (UnicodeDecodeError, ValueError):
        return raw.decode("utf-8", "surrogateescape")


def _canonical_pattern(reference: str, pattern: str) -> str:
    if not reference or pattern.startswith(HIERARCHY):
        return pattern
    if reference.endswith(HIERARCHY):
        return reference + pattern
    return reference + HIERARCHY + pattern


def _ancestors(name: str) -> list[str]:
    parts = name.split(HIERARCHY)
    return [HIERARCHY.join(parts[:i]) for i in range(1, len(parts))]


async def list_(cmd: c.List, ctx: Context) -> Reply:
    """LIST, LSUB and LIST-EXTENDED.

    Three kinds of names can be listed: mailboxes; subscribed names, which need not
    be mailboxes (RFC 9051 6.3.7: shown by LIST (SUBSCRIBED) with \\NonExistent, by
    LSUB with \\Noselect); and names that exist only as the parent of a mailbox or
    of a subscribed name (\\Noselect / \\NonExistent, or a CHILDINFO entry)."""
    user = _user(ctx)
    svc = ctx.services.mailboxes
    # A pattern that is not valid modified UTF-7 is matched as written (it then
    # matches nothing); it is not an error (RFC 9051 6.3.9).
    reference = _pattern_text(ctx, cmd.reference) if cmd.reference else ""
    patterns = [_pattern_text(ctx, p) if p.upper() != b"INBOX" else "INBOX"
                for p in cmd.patterns]
    verb = b"LSUB" if cmd.lsub else b"LIST"
    if not cmd.lsub and patterns == [""]:
        ctx.out.untagged(b'LIST (\\Noselect) "/" ""')
        return ok("LIST completed")
    subscribed_only = cmd.lsub or "SUBSCRIBED" in cmd.selection
    show_subscribed = "SUBSCRIBED" in cmd.returns or "SUBSCRIBED" in cmd.selection
    try:
        boxes = {b.name: b for b in await svc.list_mailboxes(user)}
        subscribed = set(await svc.subscriptions(user)) \
            if subscribed_only or show_subscribed else set()
    except LetterlockError as exc:
        return reply_for(exc)
    regexes = [pattern_regex(_canonical_pattern(reference, p)) for p in patterns if p]
    recursive = "RECURSIVEMATCH" in cmd.selection
    special_only = "SPECIAL-USE" in cmd.selection
    show_special = not cmd.extended or "SPECIAL-USE" in cmd.returns or special_only \
        or not cmd.returns
    show_children = not cmd.extended or "CHILDREN" in cmd.returns
    parents = {a for name in boxes for a in _ancestors(name)}
    """Names with at least one mailbox below them (\\HasChildren)."""
    candidates = set(boxes) | parents
    if subscribed_only:
        candidates |= subscribed | {a for name in subscribed for a in _ancestors(name)}

    def matched(name: str) -> bool:
        return any(r.match(name) for r in regexes)

    for name in sorted(candidates, key=lambda n: (n != "INBOX", n)):
        if not matched(name):
            continue
        box = boxes.get(name)
        attrs: list[str] = []
        extra = b""
        if subscribed_only and name not in subscribed:
            # A subscribed descendant that is not listed itself (no pattern matches
            # it) makes this name appear: with CHILDINFO under RECURSIVEMATCH (RFC
            # 5258 3.5), as \Noselect in LSUB (RFC 3501 6.3.9).
            hidden_child = any(n.startswith(name + HIERARCHY) and not matched(n)
                               for n in subscribed)
            if recursive and hidden_child:
                extra = b' ("CHILDINFO" ("SUBSCRIBED"))'
                if box is None:
                    attrs.append("\\NonExistent")
            elif cmd.lsub and hidden_child:
                attrs.append("\\Noselect")
            else:
                continue
        elif box is None:
            if name in subscribed and subscribed_only:
                # Subscribed, but no such mailbox (any more, or yet).
                attrs.append("\\Noselect" if cmd.lsub else "\\NonExistent")
            elif name in parents:
                attrs.append("\\Noselect")  # the parent of mailboxes, not one itself
            else:
                continue
        if special_only and (box is None or box.special_use is None):
            continue
        if not cmd.lsub:
            if show_children:
                attrs.append("\\HasChildren" if name in parents else "\\HasNoChildren")
            if show_subscribed and name in subscribed:
                attrs.append("\\Subscribed")
            if show_special and box is not None and box.special_use:
                attrs.append(box.special_use)
        line = (verb + b" (" + " ".join(attrs).encode() + b') "/" '
                + ctx.mailbox_wire(name) + extra)
        ctx.out.untagged(line)
        if cmd.status_items and box is not None:
            status_line = await _status_line(ctx, box, cmd.status_items)
            if status_line is not None:
                ctx.out.untagged(status_line)
    return ok(f"{cmd.name} completed")


# -- STATUS --------------------------------------------------------------------------

async def _status_line(ctx: Context, box: MailboxRecord, items: tuple[str, ...],
                       ) -> bytes | None:
    user = _user(ctx)
    values: list[bytes] = []
    index = None
    if any(i in ("UNSEEN", "DELETED", "SIZE", "RECENT") for i in items):
        index = await ctx.services.mailboxes.mailbox_index(user, box.id)
    for item in items:
        if item == "MESSAGES":
            v = box.messages
        elif item == "UIDNEXT":
            v = box.uidnext
        elif item == "UIDVALIDITY":
            v = box.uidvalidity
        elif item == "UNSEEN" and index is not None:
            v = index.unseen
        elif item == "DELETED" and index is not None:
            v = index.deleted
        elif item == "SIZE" and index is not None:
            v = index.size
        elif item == "RECENT" and index is not None:
            v = len(await ctx.services.recent.claim(ctx.services.mailboxes, user, box.id,
                                                    index.last, index.uids_above,
                                                    take=False))
        elif item == "HIGHESTMODSEQ":
            v = box.highestmodseq
        elif item == "APPENDLIMIT":
            v = ctx.services.config.max_literal_bytes
        else:
            continue
        values.append(item.encode() + b" %d" % v)
    return b"STATUS " + ctx.mailbox_wire(box.name) + b" (" + b" ".join(values) + b")"


async def status(cmd: c.Status, ctx: Context) -> Reply:
    name = decoded_name(ctx, cmd.mailbox)
    if isinstance(name, Reply):
        return name
    if "HIGHESTMODSEQ" in cmd.items:
        ctx.enable_condstore()
    try:
        box = await ctx.services.mailboxes.get_mailbox(_user(ctx), name)
        line = await _status_line(ctx, box, cmd.items)
    except LetterlockError as exc:
        return reply_for(exc)
    if line is not None:
        ctx.out.untagged(line)
    return ok("STATUS completed")


# -- APPEND --------------------------------------------------------------------------

async def append(cmd: c.Append, ctx: Context) -> Reply:
    """APPEND, and MULTIAPPEND (RFC 3502): every message is stored, in order and in
    one group commit, or none is."""
    name = decoded_name(ctx, cmd.mailbox)
    if isinstance(name, Reply):
        return name
    messages: list[bytes] = []
    if any(part.catenate for part in cmd.parts):
        # A missing target is TRYCREATE before any URL is looked at (RFC 4469 5: a
        # client creates the mailbox and tries again).
        try:
            await ctx.services.mailboxes.get_mailbox(_user(ctx), name)
        except LetterlockError as exc:
            return reply_for(exc, trycreate=True)
    for part in cmd.parts:
        message = part.message
        if part.catenate:
            # CATENATE (RFC 4469): made of text and the user's own messages' parts.
            made = await catenate.assemble(ctx, part.catenate)
            if isinstance(made, Reply):
                return made
            message = made
        if len(message) > ctx.services.config.max_literal_bytes:
            return no("Message too large", "TOOBIG")
        if not message:
            return no("Empty message", "CANNOT")
        if any(f.lower() == "\\recent" for f in part.flags):
            return bad("\\Recent cannot be set")
        messages.append(message)
    user = _user(ctx)
    try:
        appended = await ctx.services.mailboxes.append_many(
            user.ref, name, [(m, p.flags, p.date) for m, p in zip(messages, cmd.parts,
                                                                  strict=True)])
    except LetterlockError as exc:
        return reply_for(exc, trycreate=True)
    uids = compress([a.uid for a in appended])
    return ok("APPEND completed", f"APPENDUID {appended[0].uidvalidity} {uids}")


__all__ = ["append", "create", "delete", "encoding", "list_", "rename", "select",
           "status", "subscribe"]
