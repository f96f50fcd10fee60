"""THREAD and UID THREAD (RFC 5256): search, then thread the matches by subject
(ORDEREDSUBJECT) or by Message-ID/References/In-Reply-To (REFERENCES).

What threading compares comes from each message's sealed digest (its header
section), as for SORT: no body is opened unless a search key needs it."""

from __future__ import annotations

from letterlock.imap import threads
from letterlock.imap.commands.search import Hit, _Candidate, run_search
from letterlock.imap.context import Context
from letterlock.imap.parsing import commands as c
from letterlock.imap.parsing.search import SearchProgram
from letterlock.imap.reply import Reply, ok
from letterlock.imap.subjects import extract
from letterlock.mime import dates
from letterlock.mime.headers import first_values, split_fields


def _message(cand: _Candidate, uid: bool) -> threads.Message:
    fields = first_values(split_fields(cand.header))

    def value(name: str) -> bytes | None:
        found = fields.get(name)
        return found.value if found is not None else None

    raw_date = value("date")
    when = dates.sent_at(raw_date.decode("latin-1")) if raw_date is not None else None
    sent = (when or cand.record.internaldate).timestamp()
    raw_subject = value("subject")
    subject = extract(raw_subject.decode("utf-8", "replace") if raw_subject else "")
    ids = threads.message_ids(value("message-id"))
    return threads.Message(
        seq=cand.seq, number=cand.record.uid if uid else cand.seq, sent=sent,
        subject=subject.text, reply=subject.reply, message_id=ids[0] if ids else None,
        references=threads.references_of(value("references"), value("in-reply-to")))


async def thread(cmd: c.Thread, ctx: Context) -> Reply:
    hits = await run_search(ctx, SearchProgram(cmd.keys, cmd.charset, None), cmd.charset,
                            sort_key=lambda cand: (_message(cand, cmd.uid),))
    if isinstance(hits, Reply):
        return hits
    messages = [_first(h) for h in hits]
    if cmd.algorithm == "ORDEREDSUBJECT":
        roots = threads.ordered_subject(messages)
    else:
        roots = threads.references(messages)
    data = threads.render(roots)
    ctx.out.untagged(b"THREAD" + (b" " + data if data else b""))
    return ok(f"{cmd.name} completed")


def _first(hit: Hit) -> threads.Message:
    message = hit.sort_key[0]
    assert isinstance(message, threads.Message)
    return message
