"""FETCH and UID FETCH (RFC 9051 6.4.5, BINARY RFC 3516, CONDSTORE/QRESYNC RFC 7162).

Messages are read in batches: one storage round trip for the records of a batch,
one for their full bodies when (and only when) an item needs them. Everything else
(ENVELOPE, BODYSTRUCTURE, header sections) comes from the sealed summary alone.
"""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass, replace

from letterlock.errors import LetterlockError, NotFound
from letterlock.imap import encoding
from letterlock.imap.context import BODY_BYTES, Context
from letterlock.imap.errors import reply_for
from letterlock.imap.parsing import commands as c
from letterlock.imap.parsing.fetch import FetchItem, Section
from letterlock.imap.reply import Reply, bad, no, ok
from letterlock.imap.selected import BadSequence, SelectedMailbox, compress
from letterlock.mime import sections, structure
from letterlock.mime import summary as summaries
from letterlock.storage.models import MessageRecord

BATCH = 256
_SUMMARY_ITEMS = frozenset({"ENVELOPE", "BODYSTRUCTURE", "RFC822.HEADER"})


class UnknownEncoding(Exception):
    pass


@dataclass
class _Message:
    record: MessageRecord
    summary: summaries.MessageSummary | None
    raw: bytes | None
    _tree: structure.Part | None = None

    def tree(self) -> structure.Part:
        if self._tree is None:
            if self.summary is not None:
                self._tree = summaries.structure_of(self.summary)
            if self._tree is None:
                assert self.raw is not None
                self._tree = structure.parse(self.raw)
        return self._tree


def _needs_summary(item: FetchItem) -> bool:
    return item.name in _SUMMARY_ITEMS or (item.name == "BODY") or item.needs_body


def _structure_needs_body(msg_summary: summaries.MessageSummary | None) -> bool:
    return msg_summary is None or "structure" not in msg_summary.extra


def _partial(data: bytes, partial: tuple[int, int] | None) -> bytes:
    if partial is None:
        return data
    origin, count = partial
    return data[origin : origin + count]


def _without_nul(msg: _Message, section: Section, data: bytes) -> bytes:
    """NUL may not appear in a literal (RFC 9051 4.3). A binary leaf part is sent
    base64-encoded, as if it had been stored so; anything else gets 0x80 for NUL."""
    if section.part and section.text is None:
        part = structure.find_part(msg.tree(), section.part)
        if part is not None and not part.children:
            return base64.encodebytes(data).replace(b"\n", b"\r\n")
    return data.replace(b"\x00", b"\x80")


def _render(item: FetchItem, msg: _Message, utf8: bool, sel: SelectedMailbox) -> bytes:
    rec = msg.record
    name = item.name
    if name == "UID":
        return b"UID %d" % rec.uid
    if name == "FLAGS":
        return b"FLAGS " + sel.flags(rec.uid, rec.flags)
    if name == "INTERNALDATE":
        return b"INTERNALDATE " + encoding.internaldate(rec.internaldate)
    if name == "RFC822.SIZE":
        return b"RFC822.SIZE %d" % rec.size
    if name == "MODSEQ":
        return b"MODSEQ (%d)" % rec.modseq
    if name == "ENVELOPE":
        assert msg.summary is not None
        return b"ENVELOPE " + encoding.encode(encoding.envelope(
            summaries.envelope_of(msg.summary)), utf8)
    if name in ("BODYSTRUCTURE", "BODY") and item.section is None:
        return name.encode() + b" " + encoding.body_structure(
            msg.tree(), name == "BODYSTRUCTURE", utf8)
    if name == "RFC822.HEADER":
        assert msg.summary is not None
        return b"RFC822.HEADER " + encoding.literal(msg.summary.header)
    if name == "RFC822":
        assert msg.raw is not None
        return b"RFC822 " + encoding.literal(msg.raw)
    if name == "RFC822.TEXT":
        assert msg.raw is not None
        return b"RFC822.TEXT " + encoding.literal(
            msg.raw[msg.tree().body_start :])
    section = item.section
    assert section is not None
    label = f"{name}[{section.spec()}]".encode()
    if name == "BODY":
        data: bytes | None
        if not section.part and section.text in ("HEADER", "HEADER.FIELDS",
                                                 "HEADER.FIELDS.NOT"):
            assert msg.summary is not None
            data = sections.header_only(msg.summary.header, section.text, section.fields)
        else:
            assert msg.raw is not None
            data = sections.section(msg.raw, msg.tree(), section.part, section.text,
                                    section.fields)
            if data is not None and b"\x00" in data:
                data = _without_nul(msg, section, data)
        if item.partial is not None:
            label += b"<%d>" % item.partial[0]
        if data is None:
            return label + b" NIL"
        return label + b" " + encoding.literal(_partial(data, item.partial))
    assert msg.raw is not None
    decoded = sections.binary_section(msg.raw, msg.tree(), section.part)
    if decoded is False:
        raise UnknownEncoding()
    assert not isinstance(decoded, bool)
    if name == "BINARY.SIZE":
        return label + b" %d" % (0 if decoded is None else len(decoded))
    if item.partial is not None:
        label += b"<%d>" % item.partial[0]
    if decoded is None:
        return label + b" NIL"
    chunk = _partial(decoded, item.partial)
    return label + b" " + encoding.literal(chunk, binary=b"\x00" in chunk)


async def fetch(cmd: c.Fetch, ctx: Context) -> Reply:
    assert ctx.user is not None and ctx.selected is not None
    user, sel = ctx.user, ctx.selected
    try:
        uids = sel.resolve(cmd.set, cmd.uid)
    except BadSequence as exc:
        return bad(str(exc))
    items = list(cmd.items)
    mods = cmd.modifiers
    if mods.changedsince is not None or any(i.name == "MODSEQ" for i in items):
        ctx.enable_condstore()
    if mods.vanished and not ctx.qresync:
        return bad("VANISHED needs QRESYNC enabled")
    names = {i.name for i in items}
    if cmd.uid and "UID" not in names:
        items.insert(0, FetchItem("UID"))
    if ctx.condstore and "MODSEQ" not in names:
        items.append(FetchItem("MODSEQ"))
    need_body = any(i.needs_body for i in items)
    need_summary = any(_needs_summary(i) for i in items)
    sets_seen = not sel.readonly and any(i.sets_seen for i in items)
    if sets_seen and "FLAGS" not in names:
        items.append(FetchItem("FLAGS"))
    svc = ctx.services.mailboxes
    out = ctx.out
    if mods.vanished and mods.changedsince is not None:
        try:
            changes = await svc.changes_since(user, sel.id, mods.changedsince,
                                              with_summary=False)
        except LetterlockError as exc:
            return reply_for(exc)
        largest = sel.uids.last
        gone = [u for u in changes.vanished if cmd.set.contains(u, max(largest, u))]
        if gone:
            out.untagged(b"VANISHED (EARLIER) " + compress(gone).encode())
    missing = 0
    for start in range(0, len(uids), BATCH):
        batch = uids[start : start + BATCH]
        try:
            records = await svc.get_messages(user, sel.id, batch, with_summary=need_summary)
            missing += len(batch) - len(records)
            if mods.changedsince is not None:
                records = [r for r in records if r.modseq > mods.changedsince]
            if sets_seen:
                records = await _mark_seen(ctx, records)
            summaries_: dict[int, summaries.MessageSummary] = {}
            if need_summary:
                summaries_ = {r.uid: svc.open_summary(user, r) for r in records}
            body_needed = need_body or (
                any(i.name in ("BODY", "BODYSTRUCTURE") and i.section is None for i in items)
                and any(_structure_needs_body(s) for s in summaries_.values()))
        except LetterlockError as exc:
            return reply_for(exc)
        # Bodies are read in groups bounded by size, so one command never holds more
        # than about BODY_BYTES of message data (plus one message) in memory.
        for group in (_by_size(records) if body_needed else [records]):
            raws: dict[int, bytes] = {}
            if body_needed and group:
                try:
                    raws = await bodies_present(ctx, group)
                except LetterlockError as exc:
                    return reply_for(exc)
            for rec in group:
                seq = sel.seq_of(rec.uid)
                if seq is None:
                    continue
                if body_needed and rec.uid not in raws:
                    missing += 1  # expunged (and its blob released) since listed
                    continue
                for line in sel.learn_keywords(rec.flags):
                    out.untagged(line)
                msg = _Message(rec, summaries_.get(rec.uid), raws.get(rec.uid))
                try:
                    rendered = [_render(i, msg, ctx.utf8, sel) for i in items]
                except UnknownEncoding:
                    return no("Unknown Content-Transfer-Encoding", "UNKNOWN-CTE")
                out.write(b"* %d FETCH (" % seq + b" ".join(rendered) + b")\r\n")
            await out.maybe_flush()
        if start:
            await asyncio.sleep(0)  # let other connections run between batches
    if missing and not cmd.uid:
        # Expunged by another session but not yet reported to this one: the rest was
        # sent; the EXPUNGE follows at the next command that may carry it (RFC 2180
        # 4.1.3, RFC 5530 EXPUNGEISSUED).
        return ok("FETCH completed; some messages were expunged meanwhile", "EXPUNGEISSUED")
    return ok(f"{cmd.name} completed")


async def bodies_present(ctx: Context, records: list[MessageRecord]) -> dict[int, bytes]:
    """Bodies of ``records`` in one round trip; if some were expunged meanwhile by
    another session (their blobs gone), the others, one by one."""
    assert ctx.user is not None
    svc = ctx.services.mailboxes
    try:
        return await svc.bodies(ctx.user, records)
    except NotFound:
        out: dict[int, bytes] = {}
        for rec in records:
            try:
                out.update(await svc.bodies(ctx.user, [rec]))
            except NotFound:
                continue
        return out


def _by_size(records: list[MessageRecord]) -> list[list[MessageRecord]]:
    groups: list[list[MessageRecord]] = [[]]
    total = 0
    for rec in records:
        if groups[-1] and total + rec.size > BODY_BYTES:
            groups.append([])
            total = 0
        groups[-1].append(rec)
        total += rec.size
    return groups


async def _mark_seen(ctx: Context, records: list[MessageRecord]) -> list[MessageRecord]:
    """Set \\Seen on messages read with BODY[...] / BINARY[...] / RFC822(.TEXT)."""
    assert ctx.user is not None and ctx.selected is not None
    unseen = [r.uid for r in records if "\\Seen" not in r.flags]
    if not unseen:
        return records
    changes, _ = await ctx.services.mailboxes.store_flags(
        ctx.user, ctx.selected.id, unseen, "add", ["\\Seen"])
    updated = {ch.uid: ch for ch in changes}
    out = []
    for r in records:
        ch = updated.get(r.uid)
        if ch is not None:
            ctx.selected.note_reported(r.uid, ch.modseq)
            r = replace(r, flags=ch.flags, modseq=ch.modseq)
        out.append(r)
    return out
