"""SEARCH and UID SEARCH (RFC 9051 6.4.4), ESEARCH results (RFC 4731), MODSEQ
(RFC 7162).

Keys are evaluated on data unsealed inside this session, in three tiers so nothing is
opened needlessly: the plain record (flags, UID, size, dates, modseq), the message's
sealed digest (header keys, sent dates; services/mail/digests.py: one pack per window
of messages), and the full body (BODY, TEXT, opened with the content key the digest
holds) -- the last fetched in batches, one storage round trip per batch.

The body tier is answered from the sealed text index where it holds the message
(services/mail/text_index.py: the exact folded text BODY compares, one pack per
window): no body is opened, and a BODY needle the text lacks drops the message
before its digest is read. New mail's text postings (sealed at delivery) are merged
into the packs first; a search that had to open every other body of a window writes
that window's pack for the next one.
"""

from __future__ import annotations

import asyncio
import bisect
import codecs
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from letterlock.errors import LetterlockError
from letterlock.imap import esearch, search_text, views
from letterlock.imap.commands.fetch import bodies_present, still_listed
from letterlock.imap.context import BODY_BYTES, Context
from letterlock.imap.errors import reply_for
from letterlock.imap.parsing import commands as c
from letterlock.imap.parsing import search as s
from letterlock.imap.parsing.primitives import SeqSet
from letterlock.imap.reply import Reply, bad, no, ok
from letterlock.mime import dates
from letterlock.services.mail import text_index
from letterlock.services.mail.digests import (
    PACK_SPAN,
    DamagedPart,
    Digest,
    DigestReader,
    window_of,
)
from letterlock.services.mail.text_index import TextReader
from letterlock.storage.models import MessageRecord

BATCH = 1024
RECORD, SUMMARY, BODY = 0, 1, 2


def tier(key: s.SearchKey) -> int:
    if isinstance(key, s.TextKey):
        return BODY
    if isinstance(key, s.HeaderKey) or (isinstance(key, s.DateKey) and key.sent):
        return SUMMARY
    if isinstance(key, s.NotKey):
        return tier(key.key)
    if isinstance(key, s.OrKey):
        return max(tier(key.left), tier(key.right))
    if isinstance(key, s.AndKey):
        return max(tier(k) for k in key.keys)
    return RECORD


def _tests_header(key: s.SearchKey) -> bool:
    """Whether ``key`` tests a header other than through TEXT (whose header view the
    text index holds)."""
    if isinstance(key, s.HeaderKey) or (isinstance(key, s.DateKey) and key.sent):
        return True
    parts = (key.key,) if isinstance(key, s.NotKey) else (
        (key.left, key.right) if isinstance(key, s.OrKey) else
        key.keys if isinstance(key, s.AndKey) else ())
    return any(_tests_header(k) for k in parts)


def uses_modseq(key: s.SearchKey) -> bool:
    if isinstance(key, s.ModSeqKey):
        return True
    if isinstance(key, s.NotKey):
        return uses_modseq(key.key)
    if isinstance(key, s.OrKey):
        return uses_modseq(key.left) or uses_modseq(key.right)
    if isinstance(key, s.AndKey):
        return any(uses_modseq(k) for k in key.keys)
    return False


class _Candidate:
    """One message being tested; summary and body text are derived lazily, once."""

    def __init__(self, seq: int, record: MessageRecord, largest_seq: int, largest_uid: int,
                 digest: Digest | None, raw: bytes | None,
                 indexed: text_index.Found | None = None) -> None:
        self.seq = seq
        self.record = record
        self.largest_seq = largest_seq
        self.largest_uid = largest_uid
        self.digest = digest
        self.raw = raw
        self.recent = False
        self._fields: bytes | None = indexed[1] if indexed and indexed[1] else None
        self._body = indexed[0] if indexed is not None else None
        """The searchable body text, given when the sealed text index holds it."""

    def searchable(self) -> bytes:
        if self._fields is None:
            kept = (self.digest.views[views.SEARCH]
                    if self.digest is not None and len(self.digest.views) > views.SEARCH
                    else b"")
            # A digest made without IMAP's views (not expected here): from the header.
            self._fields = kept or search_text.encode(self.header)
        return self._fields

    def values(self, name: str) -> list[bytes] | None:
        """Header field ``name`` (lower case) as SEARCH compares it (search_text.py),
        None if the message has no such field."""
        return search_text.field_values(self.searchable(), name)

    def all_values(self) -> list[bytes]:
        """Every header field's value as SEARCH compares it (TEXT)."""
        return search_text.all_values(self.searchable())

    @property
    def header(self) -> bytes:
        """The message's header section (from its digest)."""
        return self.digest.header if self.digest is not None else b""

    def body_text(self) -> str:
        if self._body is None:
            self._body = text_index.body_text(
                self.raw or b"", self.digest.structure if self.digest is not None else b"")
        return self._body

    def sent_date(self) -> date | None:
        """The day of the Date: field, in its own zone (RFC 9051 SENT*)."""
        values = [v.decode("utf-8", "surrogatepass") for v in self.values("date") or ()]
        when = dates.sent_at(values[0]) if values else None
        return when.date() if when is not None else None


def _required(key: s.SearchKey, needle: dict[bytes, tuple[str, bytes]]) -> list[bytes]:
    """Strings that the SEARCH view (search_text.encode) of every message matching
    ``key`` contains: the header keys every match must satisfy. A value holding a
    string means the view holds it, so a message whose view lacks one cannot match."""
    if isinstance(key, s.HeaderKey):
        encoded = needle[key.value][1]
        return [encoded] if encoded else []
    if isinstance(key, s.AndKey):
        return [n for k in key.keys for n in _required(k, needle)]
    return []


def _may_match(digest: Digest | None, required: list[bytes]) -> bool:
    """False only when the message's kept SEARCH view lacks one of ``required``."""
    if digest is None or len(digest.views) <= views.SEARCH or not digest.views[views.SEARCH]:
        return True
    view = digest.views[views.SEARCH]
    return all(n in view for n in required)


def _candidates(windows: dict[int, dict[int, Digest]], uids: list[int],
                required: list[bytes]) -> list[int]:
    """The UIDs (of ascending ``uids``) whose kept SEARCH view holds every string of
    ``required``, and those no kept view describes. Each window's views are joined
    and searched at once, so a message that cannot match costs no Python step; a
    string found across the join is only a false candidate, which matching drops."""
    out: list[int] = []
    i = 0
    while i < len(uids):
        window = window_of(uids[i])
        j = bisect.bisect_left(uids, window + PACK_SPAN, i)
        chunk, i = uids[i:j], j
        pack = windows.get(window)
        if pack is None:
            out += chunk
            continue
        known: list[int] = []
        texts: list[bytes] = []
        for uid in chunk:
            digest = pack.get(uid)
            view = (digest.views[views.SEARCH]
                    if digest is not None and len(digest.views) > views.SEARCH else b"")
            if view:
                known.append(uid)
                texts.append(view)
            else:
                out.append(uid)
        joined = b"\x1e".join(texts)
        starts = list(itertools.accumulate((len(t) + 1 for t in texts), initial=0))
        hits: set[int] | None = None
        for text in required:
            found: set[int] = set()
            pos = joined.find(text)
            while pos >= 0:
                index = bisect.bisect_right(starts, pos) - 1
                found.add(index)
                pos = joined.find(text, starts[index + 1])
            hits = found if hits is None else hits & found
            if not hits:
                break
        out += (known[k] for k in hits or ())
    out.sort()
    return out


def _body_required(key: s.SearchKey, needle: dict[bytes, tuple[str, bytes]]
                   ) -> list[tuple[str, bytes | None]]:
    """(folded text, encoded header needle or None) that every match of ``key``
    satisfies: its body text holds the text, or (TEXT) a header value the needle."""
    if isinstance(key, s.TextKey):
        text, encoded = needle[key.value]
        return [(text, encoded if key.where == "text" else None)] if text else []
    if isinstance(key, s.AndKey):
        return [n for k in key.keys for n in _body_required(k, needle)]
    return []


def _body_may_match(found: text_index.Found | None,
                    required: list[tuple[str, bytes | None]]) -> bool:
    """False only when the indexed body text (and, for TEXT, the indexed header view)
    lacks one of ``required``."""
    if found is None:
        return True
    text, view = found
    for folded, encoded in required:
        if folded in text:
            continue
        if encoded is None or (view and encoded not in view):
            return False
    return True


def _batches(uids: list[int]) -> list[list[int]]:
    """``uids`` in runs of about BATCH, cut between windows (so a window's messages
    are read, and its text pack made, together)."""
    out: list[list[int]] = []
    start = 0
    while start < len(uids):
        end = min(start + BATCH, len(uids))
        if end < len(uids):
            end = bisect.bisect_left(uids, window_of(uids[end]), start + 1)
            if end <= start:
                end = min(start + BATCH, len(uids))
        out.append(uids[start:end])
        start = end
    return out


def _index_windows(texts: TextReader, records: list[MessageRecord],
                   known: dict[int, text_index.Found],
                   made: dict[int, _Candidate], selected: list[int]) -> None:
    """Write the text pack of each window whose every selected message has its text
    (from the index or just made from its body), if any was just made."""
    by_window: dict[int, dict[int, text_index.Entry]] = {}
    for rec in records:
        found = known.get(rec.uid)
        if found is None:
            cand = made.get(rec.uid)
            if cand is None or cand.raw is None:
                continue
            found = (cand.body_text(), cand.searchable())
        by_window.setdefault(window_of(rec.uid), {})[rec.uid] = (rec.blob_id, *found)
    for window, entries in by_window.items():
        lo = bisect.bisect_left(selected, window)
        hi = bisect.bisect_left(selected, window + PACK_SPAN)
        if hi - lo == len(entries) and any(u in made for u in entries):
            texts.put(window, entries)


def _compare(op: str, value: date, day: date) -> bool:
    if op == "before":
        return value < day
    if op == "on":
        return value == day
    return value >= day


def matches(key: s.SearchKey, m: _Candidate, needle: dict[bytes, tuple[str, bytes]]) -> bool:
    rec = m.record
    if isinstance(key, s.AllKey):
        return True
    if isinstance(key, s.FlagKey):
        present = any(f.lower() == key.flag.lower() for f in rec.flags)
        return present == key.present
    if isinstance(key, s.RecentKey):
        recent = m.recent
        if key.which == "new":
            return recent and "\\Seen" not in rec.flags
        return recent if key.which == "recent" else not recent
    if isinstance(key, s.SeqKey):
        if key.uid:
            return key.set.contains(rec.uid, m.largest_uid)
        return key.set.contains(m.seq, m.largest_seq)
    if isinstance(key, s.SizeKey):
        return rec.size > key.size if key.larger else rec.size < key.size
    if isinstance(key, s.ModSeqKey):
        return rec.modseq >= key.modseq
    if isinstance(key, s.DateKey):
        if key.sent:
            sent = m.sent_date()
            return sent is not None and _compare(key.op, sent, key.day.date())
        return _compare(key.op, rec.internaldate.date(), key.day.date())
    if isinstance(key, s.HeaderKey):
        values = m.values(key.field)
        if values is None:
            return False
        encoded = needle[key.value][1]
        return any(encoded in v for v in values)
    if isinstance(key, s.TextKey):
        text, encoded = needle[key.value]
        if key.where == "text" and any(encoded in v for v in m.all_values()):
            return True
        return text in m.body_text()
    if isinstance(key, s.NotKey):
        return not matches(key.key, m, needle)
    if isinstance(key, s.OrKey):
        return matches(key.left, m, needle) or matches(key.right, m, needle)
    if isinstance(key, s.AndKey):
        return all(matches(k, m, needle) for k in key.keys)
    raise AssertionError(f"unhandled search key {key!r}")


def resolve_saved(key: s.SearchKey, saved: list[int]) -> s.SearchKey:
    """The key with ``$`` replaced by the saved UIDs (RFC 5182)."""
    if isinstance(key, s.SeqKey) and key.set.saved:
        return s.SeqKey(SeqSet(tuple((u, u) for u in saved) or ((0xFFFFFFFF, 0xFFFFFFFF),)),
                        True)
    if isinstance(key, s.NotKey):
        return s.NotKey(resolve_saved(key.key, saved))
    if isinstance(key, s.OrKey):
        return s.OrKey(resolve_saved(key.left, saved), resolve_saved(key.right, saved))
    if isinstance(key, s.AndKey):
        return s.AndKey(tuple(resolve_saved(k, saved) for k in key.keys))
    return key


def _strings(key: s.SearchKey) -> list[bytes]:
    if isinstance(key, (s.HeaderKey, s.TextKey)):
        return [key.value]
    if isinstance(key, s.NotKey):
        return _strings(key.key)
    if isinstance(key, s.OrKey):
        return _strings(key.left) + _strings(key.right)
    if isinstance(key, s.AndKey):
        return [v for k in key.keys for v in _strings(k)]
    return []


def _next_group(records: list[MessageRecord], first: MessageRecord) -> list[MessageRecord]:
    group: list[MessageRecord] = []
    total = 0
    for rec in records[records.index(first):]:
        if group and total + rec.size > BODY_BYTES:
            break
        group.append(rec)
        total += rec.size
    return group


@dataclass(frozen=True)
class Hit:
    seq: int
    uid: int
    modseq: int
    sort_key: tuple[object, ...] = ()


SortKeyFn = Callable[[_Candidate], tuple[object, ...]]


async def run_search(ctx: Context, program: s.SearchProgram, charset: str | None,
                     sort_key: SortKeyFn | None = None) -> list[Hit] | Reply:
    """Messages of the selected mailbox matching ``program`` (ascending sequence)."""
    assert ctx.user is not None and ctx.selected is not None
    user, sel = ctx.user, ctx.selected
    charset = charset or "UTF-8"
    try:
        codec = codecs.lookup(charset)
        b"a".decode(charset)  # a text encoding, not base64, rot13 and the like
    except (LookupError, ValueError):
        return no(f"Unsupported charset {charset}", "BADCHARSET (UTF-8 US-ASCII)")
    needle: dict[bytes, tuple[str, bytes]] = {}
    for raw in _strings(program.keys):
        # Clients (and test tools) sometimes cut a multi-byte character in half; an
        # undecodable fragment is dropped rather than the whole SEARCH refused.
        text = codec.decode(raw, "ignore")[0]
        needle[raw] = (search_text.fold(text), search_text.needle(text))
    program = s.SearchProgram(resolve_saved(program.keys, sel.saved), program.charset,
                              program.returns)
    level = tier(program.keys)
    required = _required(program.keys, needle) if level >= SUMMARY else []
    if sort_key is not None:
        level = max(level, SUMMARY)
    if uses_modseq(program.keys):
        ctx.enable_condstore()
    svc = ctx.services.mailboxes
    found: list[Hit] = []
    uids = list(sel.uids)
    largest_seq = len(uids)
    largest_uid = sel.uids.last
    reader: DigestReader | None = None
    # The sealed text index: BODY/TEXT, and the header views it also keeps.
    texts = svc.text_reader(user, sel.id) if level >= SUMMARY else None
    body_required = _body_required(program.keys, needle) if texts is not None else []
    selected = uids  # the whole selection (uids is narrowed by new lists, never in place)
    body_needles = [f for f, encoded in body_required if encoded is None]
    headers = _tests_header(program.keys) or sort_key is not None
    try:
        if texts is not None:
            # New mail's text postings, sealed at delivery, join the index first
            # (services/mail/text_postings.py): their bodies need not be opened.
            await texts.merge(selected)
        if required:
            # Header keys every match must satisfy narrow the messages first: from
            # the text packs' header views, else from the digests kept.
            rest = uids
            if texts is not None:
                uids, rest = await texts.narrow_headers(uids, required)
            if rest:
                reader = svc.digest_reader(user, sel.id)
                uids = sorted(uids + _candidates(await reader.kept(rest), rest, required))
        if texts is not None and body_required:
            # So do the body needles, from the sealed text index, a window at a time
            # in C: a message whose text rules it out is not read at all.
            uids = await texts.narrow(uids, body_required)
        for start, batch in enumerate(_batches(uids)):
            records = await svc.get_messages(user, sel.id, batch, with_summary=False)
            indexed = await texts.get(records) if texts is not None else {}
            all_records = records
            if body_needles and indexed:
                # The sealed text index answers BODY (and TEXT's body half) without
                # opening bodies, nor digests for messages whose text rules them out.
                records = [r for r in records if (t := indexed.get(r.uid)) is None
                           or all(f in t[0] for f in body_needles)]
            digests: dict[int, Digest] = {}
            # Digests where a header key is tested or a body must be opened: the
            # index holds what BODY and TEXT compare.
            wanting = records if sort_key is not None or not indexed else [
                r for r in records if r.uid not in indexed
                or (headers and not indexed[r.uid][1])]
            if level >= SUMMARY and wanting:
                if reader is None:
                    reader = svc.digest_reader(user, sel.id)
                digests = await reader.get(wanting)
                if required:
                    # Header keys first, in C: messages that cannot match are neither
                    # tested one by one nor have their bodies opened.
                    records = [r for r in records if _may_match(digests.get(r.uid), required)]
            if indexed and any(e is not None for _, e in body_required):
                records = [r for r in records
                           if _body_may_match(indexed.get(r.uid), body_required)]
            unindexed = [r for r in records if r.uid not in indexed]
            raws: dict[int, bytes] = {}
            attempted: set[int] = set()
            made: dict[int, _Candidate] = {}
            for rec in records:
                if level >= BODY and rec.uid not in attempted and rec.uid not in indexed:
                    # Bodies in size-bounded groups (one storage round trip each).
                    group = _next_group(unindexed, rec)
                    attempted.update(r.uid for r in group)
                    failures: dict[int, DamagedPart] = {}
                    raws = await bodies_present(ctx, group, digests, skip_damaged=True,
                                                failures=failures)
                    lost = [r for r in group if r.uid not in raws]
                    if lost and (damaged := await still_listed(
                            ctx, sel.id, lost, failures,
                            reader.damaged if reader is not None else None)):
                        # Missing, not expunged meanwhile: a search must not pass over it.
                        return no("Stored data of message UID "
                                  + ",".join(str(r.uid) for r in damaged)
                                  + " is missing or damaged", "CORRUPTION")
                seq = sel.seq_of(rec.uid)
                if seq is None:
                    continue
                cand = _Candidate(seq, rec, largest_seq, largest_uid, digests.get(rec.uid),
                                  raws.get(rec.uid), indexed.get(rec.uid))
                if rec.uid not in indexed:
                    made[rec.uid] = cand
                cand.recent = rec.uid in sel.recent
                if matches(program.keys, cand, needle):
                    found.append(Hit(seq, rec.uid, rec.modseq,
                                     sort_key(cand) if sort_key else ()))
            if texts is not None and made and not required:
                _index_windows(texts, all_records, indexed, made, selected)
            if start:
                await asyncio.sleep(0)
    except LetterlockError as exc:
        return reply_for(exc)
    return found


async def search(cmd: c.Search, ctx: Context) -> Reply:
    program = cmd.program
    with_modseq = uses_modseq(program.keys)
    hits = await run_search(ctx, program, program.charset)
    saving = program.returns is not None and "SAVE" in program.returns
    assert ctx.selected is not None
    if isinstance(hits, Reply):
        if saving:
            ctx.selected.saved = []  # RFC 5182 2.1: a failed SAVE empties the result
        return hits
    found = [(h.seq, h.uid, h.modseq) for h in hits]
    if saving and program.returns is not None:
        uids = [h.uid for h in hits]
        others = set(program.returns) - {"SAVE"}
        if uids and others and others <= {"MIN", "MAX"}:
            # SAVE with only MIN and/or MAX saves just those messages.
            uids = sorted({*([uids[0]] if "MIN" in others else []),
                           *([uids[-1]] if "MAX" in others else [])})
        ctx.selected.saved = uids
        if not others:
            return ok(f"{cmd.name} completed, result saved")
    numbers = [uid if cmd.uid else seq for seq, uid, _ in found]
    top_modseq = max((m for _, _, m in found), default=0)
    out = ctx.out
    if program.returns is None and not ctx.rev2:
        line = b"SEARCH" + b"".join(b" %d" % n for n in numbers)
        if with_modseq and numbers:
            line += b" (MODSEQ %d)" % top_modseq
        out.untagged(line)
        return ok(f"{cmd.name} completed")
    returns = program.returns or ("ALL",)
    line = esearch.correlator(cmd.tag, cmd.uid)
    line += esearch.return_data(numbers, returns, program.partial)
    if with_modseq and numbers:
        if set(returns) <= {"MIN", "MAX", "SAVE"}:
            # RFC 7162 3.1.5 with RFC 4731: the modseq of the messages returned.
            shown = {min(numbers) if "MIN" in returns else None,
                     max(numbers) if "MAX" in returns else None} - {None}
            top_modseq = max(m for seq, uid, m in found
                             if (uid if cmd.uid else seq) in shown)
        line += b" MODSEQ %d" % top_modseq
    refused = begin_updates(ctx, cmd.tag, cmd.uid, program, None, [h.uid for h in hits])
    if refused is not None:
        return refused
    out.untagged(line)
    return ok(f"{cmd.name} completed")


def begin_updates(ctx: Context, tag: str, uid: bool, program: s.SearchProgram,
                  criteria: tuple[tuple[bool, str], ...] | None,
                  results: list[int]) -> Reply | None:
    """Keep the result up to date if the command asked for UPDATE (RFC 5267 4.3): BAD
    if the tag names a live context already; an untagged NO [NOUPDATE] if the session
    holds as many as it may (the result is still returned)."""
    if program.returns is None or "UPDATE" not in program.returns:
        return None
    assert ctx.selected is not None
    keys = resolve_saved(program.keys, ctx.selected.saved)
    refusal = esearch.begin(ctx.selected.contexts, esearch.UpdateContext(
        tag, uid, keys, program.charset, criteria, results))
    if refusal is None:
        ctx.selected.context_mark = ctx.selected.mark()
    if refusal == "in use":
        return bad(f"Tag {tag} is in use by an updating search")
    if refusal == "full":
        ctx.out.untagged(b'NO [NOUPDATE "' + tag.encode() + b'"] Too many updating searches')
    return None
