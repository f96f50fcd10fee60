"""FETCH and UID FETCH (RFC 9051 6.4.5, BINARY RFC 3516, CONDSTORE/QRESYNC RFC 7162).

Messages are read in batches: one storage round trip for the records of a batch,
one for their full bodies when (and only when) an item needs them. Everything else
(ENVELOPE, BODYSTRUCTURE, header sections) comes from the messages' sealed digests
(services/mail/digests.py), which a window of messages shares, with ENVELOPE and
BODYSTRUCTURE already encoded (imap/views.py); bodies open with the content key the
digest holds.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import partial

from letterlock.errors import CryptoError, LetterlockError, NotFound
from letterlock.imap import encoding, views
from letterlock.imap.context import BODY_BYTES, Context
from letterlock.imap.errors import reply_for
from letterlock.imap.parsing import commands as c
from letterlock.imap.parsing.fetch import FetchItem, Section
from letterlock.imap.reply import Reply, bad, no, ok
from letterlock.imap.selected import BadSequence, SelectedMailbox, compress
from letterlock.mime import sections, structure
from letterlock.mime.headers import split_fields
from letterlock.services.mail.digests import DamagedPart, Digest, DigestReader
from letterlock.services.operations.log_events import LogEvent, event
from letterlock.storage.models import MessageRecord

BATCH = 1024
_DIGEST_ITEMS = frozenset({"ENVELOPE", "BODYSTRUCTURE", "RFC822.HEADER"})
_STRUCTURE_VIEWS = {"BODYSTRUCTURE": views.BODYSTRUCTURE, "BODY": views.BODY}


class UnknownEncoding(Exception):
    pass


@dataclass
class _Message:
    record: MessageRecord
    digest: Digest | None
    raw: bytes | None
    _tree: structure.Part | None = None

    def tree(self) -> structure.Part:
        if self._tree is None:
            if self.digest is not None and self.digest.structure:
                self._tree = structure.Part.from_json(json.loads(self.digest.structure))
            else:
                assert self.raw is not None
                self._tree = structure.parse(self.raw)
        return self._tree

    @property
    def size(self) -> int:
        """RFC822.SIZE: from the sealed copy when this command opened it (a digest
        holds the size sealed at delivery), else the metadata row's."""
        if self.digest is not None:
            return self.digest.size
        if self.raw is not None:
            return len(self.raw)
        return self.record.size

    @property
    def header(self) -> bytes:
        if self.digest is not None:
            return self.digest.header
        assert self.raw is not None
        return self.raw[: structure.header_end(self.raw)]


def _needs_digest(item: FetchItem) -> bool:
    return item.name in _DIGEST_ITEMS or (item.name == "BODY") or item.needs_body


def _partial(data: bytes, partial: tuple[int, int] | None) -> bytes:
    if partial is None:
        return data
    origin, count = partial
    return data[origin : origin + count]


def _without_nul(msg: _Message, section: Section, data: bytes) -> bytes:
    """NUL may not appear in a literal (RFC 9051 4.3). A binary leaf part is sent
    base64-encoded, as if it had been stored so; anything else gets 0x80 for NUL
    (encoding.literal)."""
    if section.part and section.text is None:
        part = structure.find_part(msg.tree(), section.part)
        if part is not None and not part.children:
            return base64.encodebytes(data).replace(b"\n", b"\r\n")
    return data.replace(b"\x00", encoding.NUL_STANDIN)


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
        return b"RFC822.SIZE %d" % msg.size
    if name == "MODSEQ":
        return b"MODSEQ (%d)" % rec.modseq
    if name == "ENVELOPE":
        if msg.digest is not None:
            return b"ENVELOPE " + views.view(msg.digest, views.ENVELOPE, utf8)
        fields = split_fields(msg.header)
        return b"ENVELOPE " + encoding.encode(encoding.envelope(
            structure.envelope_of(fields)), utf8)
    if name in ("BODYSTRUCTURE", "BODY") and item.section is None:
        if msg.digest is not None:
            rendered = views.view(msg.digest, _STRUCTURE_VIEWS[name], utf8)
            if rendered:
                return name.encode() + b" " + rendered
        return name.encode() + b" " + encoding.body_structure(
            msg.tree(), name == "BODYSTRUCTURE", utf8)
    if name == "RFC822.HEADER":
        return b"RFC822.HEADER " + encoding.literal(msg.header)
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
            data = sections.header_only(msg.header, section.text, section.fields)
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


Renderer = Callable[[_Message, bool, SelectedMailbox], bytes]


def _compile(item: FetchItem) -> Renderer:
    """A renderer for one item of a FETCH, chosen once per command: the common items
    get a direct one, the rest go through :func:`_render`."""
    name = item.name
    if name == "UID":
        return lambda m, _u, _s: b"UID %d" % m.record.uid
    if name == "RFC822.SIZE":
        return lambda m, _u, _s: b"RFC822.SIZE %d" % m.size
    if name == "FLAGS":
        lists: dict[frozenset[str], bytes] = {}

        def flags(m: _Message, _u: bool, s: SelectedMailbox) -> bytes:
            rec = m.record
            if rec.uid in s.recent:
                return b"FLAGS " + s.flags(rec.uid, rec.flags)
            known = lists.get(rec.flags)
            if known is None:
                known = lists[rec.flags] = b"FLAGS " + s.flags(rec.uid, rec.flags)
            return known

        return flags
    if name == "MODSEQ":
        return lambda m, _u, _s: b"MODSEQ (%d)" % m.record.modseq
    if name == "INTERNALDATE":
        return lambda m, _u, _s: b"INTERNALDATE " + encoding.internaldate(
            m.record.internaldate)
    section = item.section
    if (name == "BODY" and section is not None and not section.part
            and section.text == "HEADER" and item.partial is None):
        label = f"BODY[{section.spec()}] ".encode()
        return lambda m, _u, _s: label + encoding.literal(m.header)
    return partial(_render, item)


def _structure_missing(items: list[FetchItem], digests: dict[int, Digest]) -> bool:
    """Whether a BODY/BODYSTRUCTURE item needs a body to be parsed (a digest without
    a part tree: summaries made before trees were kept)."""
    if not any(i.name in ("BODY", "BODYSTRUCTURE") and i.section is None for i in items):
        return False
    return any(not d.structure for d in digests.values())


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
    need_digest = any(_needs_digest(i) for i in items)
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
    reader: DigestReader | None = None
    renderers = [_compile(i) for i in items]
    utf8 = ctx.utf8
    known_flags: set[frozenset[str]] = set()
    """Flag sets whose keywords this session has been told of during this command."""
    missing = 0
    unopened: list[MessageRecord] = []
    """Listed in this command but without a body or digest: expunged meanwhile, or
    damaged (told apart at the end)."""
    failures: dict[int, DamagedPart] = {}
    """uid -> why its body did not open."""
    for start in range(0, len(uids), BATCH):
        batch = uids[start : start + BATCH]
        try:
            records = await svc.get_messages(user, sel.id, batch, with_summary=False)
            missing += len(batch) - len(records)
            if mods.changedsince is not None:
                records = [r for r in records if r.modseq > mods.changedsince]
            if sets_seen:
                records = await _mark_seen(ctx, records)
            digests: dict[int, Digest] = {}
            if need_digest and records:
                if reader is None:
                    reader = svc.digest_reader(user, sel.id)
                digests = await reader.get(records)
            body_needed = need_body or _structure_missing(items, digests)
        except LetterlockError as exc:
            return reply_for(exc)
        # Bodies are read in groups bounded by size, so one command never holds more
        # than about BODY_BYTES of message data (plus one message) in memory.
        for group in (_by_size(records) if body_needed else [records]):
            raws: dict[int, bytes] = {}
            if body_needed and group:
                try:
                    raws = await bodies_present(ctx, group, digests, skip_damaged=True,
                                                failures=failures)
                except LetterlockError as exc:
                    return reply_for(exc)
            for rec in group:
                seq = sel.seq_of(rec.uid)
                if seq is None:
                    continue
                if body_needed and rec.uid not in raws:
                    unopened.append(rec)  # expunged (and its blob released) since listed?
                    continue
                digest = digests.get(rec.uid)
                if need_digest and digest is None and (
                        rec.uid not in raws or (reader is not None and rec.uid in reader.damaged)):
                    # Expunged since listed (its summary gone too?), or its sealed
                    # summary is damaged (even if the body, bound by the summary's
                    # header, opened).
                    unopened.append(rec)
                    continue
                if rec.flags not in known_flags:
                    for line in sel.learn_keywords(rec.flags):
                        out.untagged(line)
                    known_flags.add(rec.flags)
                msg = _Message(rec, digest, raws.get(rec.uid))
                try:
                    rendered = [r(msg, utf8, sel) for r in renderers]
                except UnknownEncoding:
                    return no("Unknown Content-Transfer-Encoding", "UNKNOWN-CTE")
                out.write(b"* %d FETCH (" % seq + b" ".join(rendered) + b")\r\n")
            await out.maybe_flush()
        if start:
            await asyncio.sleep(0)  # let other connections run between batches
    if unopened:
        try:
            damaged = await still_listed(ctx, sel.id, unopened, failures,
                                         reader.damaged if reader is not None else {})
        except LetterlockError as exc:
            return reply_for(exc)
        if damaged:
            return no("Stored data of message UID " + ",".join(str(r.uid) for r in damaged)
                      + " is missing or damaged", "CORRUPTION")
        missing += len(unopened)
    if missing and not cmd.uid:
        # Expunged by another session but not yet reported to this one: the rest was
        # sent; the EXPUNGE follows at the next command that may carry it (RFC 2180
        # 4.1.3, RFC 5530 EXPUNGEISSUED).
        return ok("FETCH completed; some messages were expunged meanwhile", "EXPUNGEISSUED")
    return ok(f"{cmd.name} completed")


async def still_listed(ctx: Context, mailbox_id: int, records: list[MessageRecord],
                       failures: Mapping[int, DamagedPart] | None = None,
                       reported: Mapping[int, str] | None = None) -> list[MessageRecord]:
    """Of ``records``, whose body or summary did not open, those still listed with the
    same blob: not expunged meanwhile but damaged (a missing, zeroed, truncated or
    foreign blob, another part in its place). Each is one ``mail:message:damaged``
    line for the operator naming the part and why (from ``failures``), unless it was
    ``reported`` already (a summary found damaged by the digest reader)."""
    assert ctx.user is not None
    now = await ctx.services.mailboxes.get_messages(
        ctx.user, mailbox_id, [r.uid for r in records], with_summary=False)
    blobs = {r.uid: r.blob_id for r in records}
    damaged = [r for r in now if blobs.get(r.uid) == r.blob_id]
    for rec in damaged:
        if reported and rec.uid in reported:
            continue
        failure = None if failures is None else failures.get(rec.uid)
        event(LogEvent.MESSAGE_DAMAGED, user=ctx.user.address, mailbox=mailbox_id,
              uid=rec.uid, blob=rec.blob_id,
              part=failure.part if failure is not None else "body",
              message=failure.message if failure is not None else "",
              reason=failure.reason if failure is not None else "missing")
    return damaged


async def bodies_present(ctx: Context, records: list[MessageRecord],
                         digests: dict[int, Digest] | None = None, *,
                         skip_damaged: bool = False,
                         failures: dict[int, DamagedPart] | None = None,
                         ) -> dict[int, bytes]:
    """Bodies of ``records`` in one round trip; if some were expunged meanwhile by
    another session (their blobs gone) or do not open (damaged, or another message's
    blob: the content key of the message's own summary does not open it), the
    others, one by one. Those that do not open are left out only with
    ``skip_damaged`` (the caller then tells them from expunged ones: ``still_listed``);
    otherwise CryptoError is raised, after one ``mail:message:damaged`` line.
    ``failures`` gets, per message left out, which part failed and why."""
    assert ctx.user is not None
    svc = ctx.services.mailboxes
    try:
        return await svc.bodies(ctx.user, records, digests)
    except (NotFound, CryptoError):
        pass
    out: dict[int, bytes] = {}
    for rec in records:
        try:
            out.update(await svc.bodies(ctx.user, [rec], digests))
        except NotFound:
            if failures is not None:
                failures[rec.uid] = DamagedPart("body", "missing")
        except CryptoError as exc:
            damage = exc if isinstance(exc, DamagedPart) else DamagedPart("body", str(exc))
            if skip_damaged:
                if failures is not None:
                    failures[rec.uid] = damage
                continue
            # The caller answers NO [CORRUPTION]: this is the operator's line.
            event(LogEvent.MESSAGE_DAMAGED, user=ctx.user.address, mailbox=rec.mailbox_id,
                  uid=rec.uid, blob=rec.blob_id, part=damage.part, message=damage.message,
                  reason=damage.reason)
            raise
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
