"""Four-eyes approval of legal decisions (``legal.four_eyes``).

A decision that discloses content, overrides the policy's recommendation, or has a
finding flagged for review is not executed when it is made: the matter becomes
``awaiting-approval`` with the proposal (the decision, who proposed it, why it needs
approval). A second operator then either approves it, which executes it exactly as
the decision would have been executed at once, or refuses it with a reason, which
sends the matter back to the state it was decided in, to be decided again.

The operator who filed the matter and the one who proposed the decision may not
approve it (:class:`SelfApproval`); the front-ends let only the ``legal`` and
``admin`` roles act (an auditor never approves). Each step is one transaction of the
legal database with its audit event (``legal:decision:proposed``, ``approved``,
``approval-refused``), named after the operator who took it; the log line is the
audit event's (``LoggedAuditLog``).
"""

from __future__ import annotations

import json
from dataclasses import replace

from letterlock.audit.events import EventType
from letterlock.errors import ConfigError, InvalidInput, Refused
from letterlock.policy import Decision, parse_request
from letterlock.services.legal.matter import Matter, Proposal
from letterlock.services.legal.step_base import MatterSteps
from letterlock.storage.legal_sqlite import LegalTxn, MatterRow

AWAITING = "awaiting-approval"
KINDS = ("content", "override", "flagged")
"""What may need a second operator's approval (``legal.four_eyes``)."""
DEFAULT = frozenset(KINDS)
NOT_FOR_REVIEW = frozenset({"national-security-band"})
"""Flags that only sort a request for the transparency report; every other flag (the
shipped ``gdpr-art48`` and ``challenge-gag``, and any an operator's policies add) asks
for a human's review."""


class SelfApproval(Refused):
    """The operator who filed the matter or proposed the decision tried to approve it."""


def parse_four_eyes(text: str) -> frozenset[str]:
    """``legal.four_eyes``: a comma list of KINDS, or ``off`` (or empty) for none."""
    words = {w.strip().lower() for w in text.split(",") if w.strip()}
    if words <= {"off", "none"}:
        return frozenset()
    unknown = words - set(KINDS)
    if unknown:
        raise ConfigError(f"legal.four_eyes: unknown {', '.join(sorted(unknown))} "
                          f"(expected a comma list of {', '.join(KINDS)}, or off)")
    return frozenset(words)


def needs_approval(kinds: frozenset[str], decision: Decision,
                   overridden: bool) -> tuple[str, ...]:
    """Why ``decision`` needs a second operator under ``kinds`` (empty: it does not)."""
    findings = [f for _, _, f in decision.findings()]
    why = {
        "content": any(c == "content" and f.outcome == "disclose"
                       for _, c, f in decision.findings()),
        "override": overridden,
        "flagged": any(set(f.flags) - NOT_FOR_REVIEW for f in findings),
    }
    return tuple(k for k in KINDS if k in kinds and why[k])


class FourEyes(MatterSteps):
    """The approval steps of LegalService (its base: matters.py stays the workflow)."""

    _four_eyes: frozenset[str]

    # Provided by LegalService.
    async def _execute(self, row: MatterRow, decision: Decision, actor: str, *, was: str,
                       txn: LegalTxn | None = None) -> Matter:
        raise NotImplementedError

    # -- reading -------------------------------------------------------------------------

    async def _latest_proposal(self, matter_id: str) -> Proposal | None:
        found = await self._store.proposals(matter_id)
        if not found:
            return None
        pid, text, _ = found[-1]
        return Proposal.from_json(pid, json.loads(text))

    async def _pending(self, row: MatterRow) -> Proposal:
        proposal = await self._latest_proposal(row.id)
        if row.state != AWAITING or proposal is None or proposal.outcome is not None:
            raise Refused(f"matter {row.id} is {row.state}, not awaiting approval")
        return proposal

    # -- deciding --------------------------------------------------------------------------

    async def _decide_or_propose(self, row: MatterRow, decision: Decision, actor: str, *,
                                 was: str, override: tuple[tuple[str, str], ...],
                                 txn: LegalTxn | None = None) -> Matter:
        """Execute ``decision`` now, or, when four-eyes asks for it, record it as a
        proposal awaiting a second operator, in one step with whatever ``txn`` holds.
        ``override``: the override's outcome, justification and scope (empty when the
        recommendation is accepted)."""
        needs = needs_approval(self._four_eyes, decision, bool(override))
        if not needs:
            return await self._decided(row, decision, actor, was=was, override=override,
                                       txn=txn)
        request = parse_request(json.loads(row.request))
        proposal = Proposal(0, decision, actor, self._clock(), was, needs,
                            dict(override).get("justification"), override)
        txn = txn or LegalTxn()
        txn.add_proposal(row.id, json.dumps(proposal.to_json()))
        txn.update_matter(replace(row, state=AWAITING), was=was)
        self._log(txn, EventType.LEGAL_DECISION_PROPOSED, actor, request, row.id,
                  details=(("needs", ",".join(needs)),
                           ("overridden", str(bool(override)).lower()), *override))
        await self._commit(txn)
        return await self.show(row.id)

    async def _decided(self, row: MatterRow, decision: Decision, actor: str, *, was: str,
                       override: tuple[tuple[str, str], ...], approved_by: str | None = None,
                       txn: LegalTxn | None = None) -> Matter:
        """Record ``decision`` as decided by ``actor`` (approved by ``approved_by``) and
        execute it, in one step with whatever ``txn`` holds."""
        justification = dict(override).get("justification")
        row = replace(row, decision=json.dumps(decision.to_json()), overridden=bool(override),
                      justification=justification.strip() if justification else None,
                      decided_by=actor)
        request = parse_request(json.loads(row.request))
        txn = txn or LegalTxn()
        if override:
            self._log(txn, EventType.LEGAL_MATTER_OVERRIDDEN, actor, request, row.id,
                      details=override)
        approval = () if approved_by is None else (("approved_by", approved_by),)
        self._log(txn, EventType.LEGAL_MATTER_DECIDED, actor, request, row.id,
                  details=(("overridden", str(bool(override)).lower()), *approval))
        return await self._execute(row, decision, approved_by or actor, was=was, txn=txn)

    # -- the second operator ---------------------------------------------------------------

    async def approve(self, matter_id: str, actor: str) -> Matter:
        """A second operator approves the proposed decision: it is executed now, exactly
        as it would have been when proposed (holds, package, notices), in one step with
        the approval. Refused (SelfApproval) for the matter's filer or the proposer."""
        await self._recover()
        row = await self._store.get_matter(matter_id)
        proposal = await self._pending(row)
        if actor == proposal.proposed_by:
            raise SelfApproval(f"{actor} proposed the decision on matter {matter_id}; "
                               "another operator must approve it")
        if actor == row.filed_by:
            raise SelfApproval(f"{actor} filed matter {matter_id}; another operator must "
                               "approve its decision")
        done = replace(proposal, outcome="approved", resolved_by=actor,
                       resolved_at=self._clock())
        txn = LegalTxn()
        txn.resolve_proposal(proposal.id, json.dumps(done.to_json()), "approved")
        request = parse_request(json.loads(row.request))
        self._log(txn, EventType.LEGAL_DECISION_APPROVED, actor, request, matter_id,
                  details=(("proposed_by", proposal.proposed_by),
                           ("needs", ",".join(proposal.needs))))
        return await self._decided(row, proposal.decision, proposal.proposed_by,
                                   was=AWAITING, override=proposal.override,
                                   approved_by=actor, txn=txn)

    async def reject_approval(self, matter_id: str, actor: str, reason: str) -> Matter:
        """Refuse the proposed decision (with a reason): nothing is executed and the
        matter goes back to the state it was decided in, to be decided again. Any
        acting operator may refuse, the proposer too (a withdrawal)."""
        if not reason or not reason.strip():
            raise InvalidInput("--reason: refusing a proposed decision needs a reason")
        await self._recover()
        row = await self._store.get_matter(matter_id)
        proposal = await self._pending(row)
        done = replace(proposal, outcome="refused", resolved_by=actor,
                       resolved_at=self._clock(), reason=reason.strip())
        txn = LegalTxn()
        txn.resolve_proposal(proposal.id, json.dumps(done.to_json()), "refused")
        txn.update_matter(replace(row, state=proposal.was), was=AWAITING)
        self._log(txn, EventType.LEGAL_DECISION_APPROVAL_REFUSED, actor,
                  parse_request(json.loads(row.request)), matter_id,
                  details=(("proposed_by", proposal.proposed_by),
                           ("reason", reason.strip())))
        await self._commit(txn)
        return await self.show(matter_id)
