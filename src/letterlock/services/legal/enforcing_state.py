"""The enforcing state's step in a European Production Order (Regulation (EU)
2023/1543 art. 8, 10 and 12): ``enforcing_state_answered``. A base of
:class:`~letterlock.services.legal.matters.LegalService`, as the gag steps are.

A notified order's traffic and content wait (``hold-enforcing-state``, the data kept
by a hold) while the enforcing state's 10 days (96 hours in an emergency) run. This
step records what happened next and lets the policy decide the held findings again:

- the state raised grounds for refusal (``refusal_grounds``): the policy rejects
  them (R14, ``*-15-epoc-enforcing-state-refused``);
- it confirmed it raises none (``refusal_grounds`` empty), or the window passed with
  no answer (``answered=False``): the policy produces them
  (``*-15-epoc-enforcing-state-silent``).

The answer is kept in the matter's facts (``enforcing_state``) and logged with the
evaluation; a waiting matter's held findings are replaced by the new ones as a
follow-up decision (four-eyes applies as to any decision), the findings already
decided are kept. A matter not decided yet gets the new recommendation only.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace

from letterlock.audit.events import EventType
from letterlock.errors import InvalidInput, Refused
from letterlock.policy import (
    AccountFacts,
    Decision,
    LegalRequest,
    format_time,
    parse_facts,
    parse_request,
)
from letterlock.policy.decision import transparency_bucket
from letterlock.policy.e_evidence import window_end
from letterlock.policy.model import REFUSAL_GROUNDS, EnforcingStateAnswer
from letterlock.services.legal.matter import Matter
from letterlock.services.legal.step_base import MatterSteps
from letterlock.storage.legal_sqlite import LegalTxn, MatterRow

HELD = "hold-enforcing-state"


def follow_up(previous: Decision, fresh: Decision) -> Decision:
    """``previous`` with each finding it held for the enforcing state replaced by
    ``fresh``'s finding for the same target and category."""
    targets = tuple(
        (t, tuple((c, fresh.finding(t, c) if f.outcome == HELD else f) for c, f in cats))
        for t, cats in previous.targets)
    held_deadlines = {"enforcing-state-objection"}
    deadlines = tuple(sorted(
        {d for d in previous.deadlines if d.kind not in held_deadlines} | set(fresh.deadlines),
        key=lambda d: (d.due, d.kind)))
    outcomes = [(c, f.outcome) for _, cats in targets for c, f in cats]
    return replace(previous, evaluated_at=fresh.evaluated_at, targets=targets,
                   deadlines=deadlines, transparency=transparency_bucket(outcomes))


class EnforcingStateSteps(MatterSteps):
    """What the legal team records when a notified enforcing state answers, or its
    window passes."""

    # Provided by LegalService.
    async def _load(self, row: MatterRow) -> Matter:
        raise NotImplementedError

    async def _evaluate(self, request: LegalRequest,
                        facts: dict[str, AccountFacts]) -> Decision:
        raise NotImplementedError

    async def _decide_or_propose(self, row: MatterRow, decision: Decision, actor: str, *,
                                 was: str, override: tuple[tuple[str, str], ...],
                                 txn: LegalTxn | None = None) -> Matter:
        raise NotImplementedError

    async def enforcing_state_answered(self, matter_id: str, actor: str, *,
                                       answered: bool = True,
                                       refusal_grounds: Sequence[str] = ()) -> Matter:
        """The enforcing state of the matter's European Production Order answered now
        (``refusal_grounds``: the grounds it raised, none: it raises none), or, with
        ``answered=False``, its window passed without an answer. Refused for a matter
        that is not an EU production order evaluated or waiting, or (no answer)
        while the window still runs; InvalidInput for an unknown ground."""
        await self._recover()
        row = await self._store.get_matter(matter_id)
        request = parse_request(json.loads(row.request))
        if request.instrument != "eu-epoc":
            raise Refused(f"matter {matter_id} is not a European Production Order "
                          f"(instrument {request.instrument})")
        if row.state not in ("evaluated", "waiting"):
            raise Refused(f"matter {matter_id} is {row.state}; the enforcing state's answer "
                          "is recorded while the matter is evaluated or waiting")
        for ground in refusal_grounds:
            if ground not in REFUSAL_GROUNDS:
                raise InvalidInput(f"refusal ground {ground!r}: expected one of "
                                   f"{', '.join(REFUSAL_GROUNDS)} (art. 12(1))")
        now = self._clock()
        ends = window_end(self._engine.jurisdictions, request)
        if not answered:
            if refusal_grounds:
                raise InvalidInput("refusal grounds come with an answer")
            if ends is None or now < ends:
                raise Refused(f"the enforcing state's window on matter {matter_id} runs "
                              f"until {'?' if ends is None else format_time(ends)}: "
                              "record its answer, or wait")
        matter = await self._load(row)
        answer = EnforcingStateAnswer(now, tuple(dict.fromkeys(refusal_grounds))) \
            if answered else None
        facts = {t: replace(f, enforcing_state=answer)
                 for t, f in parse_facts(json.loads(row.facts)).items()}
        fresh = await self._evaluate(request, facts)
        facts_json = json.dumps({a: f.to_json() for a, f in facts.items()})
        what = "none" if answer is None else (",".join(answer.refusal_grounds) or "no-grounds")
        details = (("enforcing_state", what), ("profile", fresh.profile),
                   ("transparency", fresh.transparency))
        if row.state == "evaluated":
            txn = LegalTxn()
            txn.update_matter(replace(row, facts=facts_json,
                                      recommendation=json.dumps(fresh.to_json())),
                              was=row.state)
            self._log(txn, EventType.LEGAL_MATTER_EVALUATED, actor, request, matter_id,
                      details=details)
            await self._commit(txn)
            return await self.show(matter_id)
        previous = matter.decision or matter.recommendation
        if not any(f.outcome == HELD for _, _, f in previous.findings()):
            raise Refused(f"matter {matter_id} holds nothing for the enforcing state")
        # One step: the answer (in the facts the decision's row carries), its
        # evaluation event and the follow-up decision or proposal commit together.
        txn = LegalTxn()
        row = replace(row, facts=facts_json)
        self._log(txn, EventType.LEGAL_MATTER_EVALUATED, actor, request, matter_id,
                  details=details)
        return await self._decide_or_propose(row, follow_up(previous, fresh), actor,
                                             was=row.state, override=(), txn=txn)
