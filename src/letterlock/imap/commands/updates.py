"""Updates of the searches a client asked to be kept current (RETURN (UPDATE), RFC
5267 4.3): after the view has caught up with the mailbox, each context's search is
run again and the difference sent as ADDTO/REMOVEFROM. Expunged results are removed
earlier, before their EXPUNGE responses (SelectedMailbox.removals).

A context is searched again only when the mailbox changed (messages came or went,
or a flag changed: the view's mark), and only as the command's search would be: from
the sealed digests, with bodies only for BODY/TEXT keys.
"""

from __future__ import annotations

from letterlock.imap import esearch
from letterlock.imap.commands.search import run_search
from letterlock.imap.commands.sort import sorted_hits
from letterlock.imap.context import Context
from letterlock.imap.parsing import commands as c
from letterlock.imap.parsing.search import SearchProgram
from letterlock.imap.reply import Reply, ok


async def push(ctx: Context) -> None:
    """ADDTO/REMOVEFROM responses for every context whose result changed."""
    sel = ctx.selected
    if sel is None or not sel.contexts or sel.mark() == sel.context_mark:
        return
    sel.context_mark = sel.mark()
    for context in list(sel.contexts):
        if context.criteria is not None:
            hits = await sorted_hits(ctx, context.criteria, context.keys, context.charset)
        else:
            hits = await run_search(ctx, SearchProgram(context.keys, context.charset, None),
                                    context.charset)
        if isinstance(hits, Reply) or ctx.selected is not sel:
            continue  # the search failed (e.g. the mailbox went): told by the next command
        line = esearch.update(context, [h.uid for h in hits], sel.seq_of)
        if line is not None:
            ctx.out.untagged(line)


async def cancel(cmd: c.CancelUpdate, ctx: Context) -> Reply:
    """CANCELUPDATE (RFC 5267 4.3.5): no more updates for the searches so tagged."""
    sel = ctx.selected
    assert sel is not None
    sel.contexts = [x for x in sel.contexts if x.tag not in cmd.tags]
    return ok("CANCELUPDATE completed")
