"""Four-eyes approval survives a crash at any point between its writes: a child
process files a request, lee proposes the decision, ada approves it and the matter
is closed, stopping after each durable write (legal database transaction, audit log
append); the test SIGKILLs it there, once per write, then opens the HOME again and
checks that the matter is whole (a proposal pending exactly while it awaits
approval), that the log holds each step exactly once, and that it can be finished."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from letterlock.app import open_app
from support.env import make_config
from support.legal_steps import FOUR_EYES_ENV

from .test_matter_crash import REQUEST, _events_of, kill_at_each_write

PROPOSED = "legal:decision:proposed"
APPROVED = "legal:decision:approved"


def _expected(state: str, notices_sent: int) -> Counter[str]:
    out = Counter(["legal:matter:filed", "legal:matter:evaluated"])
    if state != "evaluated":
        out.update([PROPOSED])
    if state in ("decided", "executed", "notified", "closed"):
        out.update([APPROVED, "legal:matter:decided"])
    if state in ("executed", "notified", "closed"):
        out.update(["legal:production:executed"])
    if notices_sent:
        out.update(["legal:notice:sent"])
    if state == "closed":
        out.update(["legal:matter:closed"])
    return out


async def _check_whole(home: Path) -> None:
    async with open_app(make_config(home, **FOUR_EYES_ENV)) as app:
        matters = await app.legal.list_matters()
        assert len(matters) <= 1
        for matter in matters:
            shown = await app.legal.show(matter.id)
            pending = shown.proposal is not None and shown.proposal.outcome is None
            assert pending == (shown.state == "awaiting-approval"), shown.state
            if shown.state in ("executed", "notified", "closed", "decided"):
                assert shown.proposal is not None and shown.proposal.outcome == "approved"
                assert shown.decided_by == "lee"
            sent = sum(1 for n in shown.notices if n.sent_at is not None)
            assert _events_of(home, matter.id, False) == _expected(shown.state, sent), \
                shown.state
            # ...and it can be finished, by the same two operators.
            if shown.state == "evaluated":
                shown = await app.legal.decide(matter.id, "lee")
            if shown.state == "awaiting-approval":
                shown = await app.legal.approve(matter.id, "ada")
            await app.legal.tick()
            if shown.state != "closed":
                await app.legal.close(matter.id, "ada")
            await app.audit.flush()  # type: ignore[attr-defined]
            assert _events_of(home, matter.id, False) == _expected("closed", 1)


async def test_sigkill_between_the_writes_of_an_approval(tmp_path: Path) -> None:
    kills, lines = await kill_at_each_write(tmp_path, REQUEST, _check_whole, "four-eyes")
    assert "STEP proposed" in lines and "STEP closed" in lines
    assert kills >= 8, f"only {kills} writes: the steps did not run as expected"
