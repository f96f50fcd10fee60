"""The steps of a matter under a non-disclosure order, and of an EU order whose
issuing authority decides when the user is told: ``lift_gag``, ``extend_gag`` and
``inform_requested``. A base of :class:`~letterlock.services.legal.matters.LegalService`
(matters.py stays the workflow), as the four-eyes steps are (approval.py)."""

from __future__ import annotations

import json
from datetime import datetime

from letterlock.audit.events import EventType
from letterlock.errors import InvalidInput, Refused
from letterlock.policy import Decision, format_time, parse_request
from letterlock.services.legal.matter import Matter
from letterlock.services.legal.step_base import MatterSteps
from letterlock.storage.legal_sqlite import LegalTxn


class GagSteps(MatterSteps):
    """What the legal team does when an order's secrecy changes."""

    # Provided by LegalService.
    async def _send_due_notices(self, now: datetime) -> int:
        raise NotImplementedError

    async def lift_gag(self, matter_id: str, actor: str) -> Matter:
        """The non-disclosure order has been lifted (an indefinite gag set aside, or a
        dated one ended early): the user is told now, the matter's sealed audit events
        are revealed, and later events are logged in the clear."""
        await self._recover()
        row = await self._store.get_matter(matter_id)
        request = parse_request(json.loads(row.request))
        if self._engine.jurisdictions.effective_gag(request) is None and \
                matter_id not in await self._store.gag_extensions():
            raise Refused(f"matter {matter_id} has no non-disclosure order")
        if await self._store.gag_lifted_at(matter_id) is not None:
            raise Refused(f"the order on matter {matter_id} was lifted already")
        now = self._clock()
        txn = LegalTxn()
        txn.lift_gag(matter_id, now, actor)
        decision = None if row.decision is None else Decision.from_json(json.loads(row.decision))
        # An EU order's notice still waits for its issuing authority (inform_requested).
        if decision is None or decision.user_notice.when != "on-authority-request":
            txn.set_pending_notices_due(matter_id, now)
        self._log(txn, EventType.LEGAL_GAG_LIFTED, actor, request, matter_id)
        await self._commit(txn, reveal=matter_id)
        await self._send_due_notices(now)
        return await self.show(matter_id)

    async def extend_gag(self, matter_id: str, actor: str,
                         until: datetime | None) -> Matter:
        """The non-disclosure order was renewed or extended to ``until`` (None: without
        end date), or one was served on a matter that had none: the user notices
        still to be sent wait for the new end (``tick`` respects it), and the matter's
        sealed audit events are revealed then, not at the old end."""
        await self._recover()
        row = await self._store.get_matter(matter_id)
        if row.state == "closed":
            raise Refused(f"matter {matter_id} is closed")
        if await self._store.gag_lifted_at(matter_id) is not None:
            raise Refused(f"the order on matter {matter_id} was lifted already; a new "
                          "order is a new matter")
        now = self._clock()
        if until is not None and until <= now:
            raise InvalidInput(f"the order's new end {format_time(until)} is not in the "
                               "future")
        request = parse_request(json.loads(row.request))
        txn = LegalTxn()
        txn.extend_gag(matter_id, now, actor, until)
        decision = None if row.decision is None else Decision.from_json(json.loads(row.decision))
        # An EU order's notice waits for its issuing authority whatever the order says.
        if decision is None or decision.user_notice.when != "on-authority-request":
            txn.set_pending_notices_due(matter_id, until)
        self._log(txn, EventType.LEGAL_GAG_EXTENDED, actor, request, matter_id,
                  details=(("until", "indefinite" if until is None else format_time(until)),))
        await self._commit(txn, reseal=matter_id)
        return await self.show(matter_id)

    async def inform_requested(self, matter_id: str, actor: str) -> Matter:
        """The issuing authority of an EU order asked the provider to inform the user
        (Regulation 2023/1543 art. 13: the authority informs the person, or asks the
        provider to; the provider keeps the order confidential until then): the
        matter's notices are sent now. Refused for a matter whose decision does not
        hold its notice for the authority, one not decided for good, or one whose
        notices were all sent."""
        await self._recover()
        row = await self._store.get_matter(matter_id)
        if row.state not in ("executed", "notified"):
            raise Refused(f"matter {matter_id} is {row.state}; the user is told only once "
                          "the order is decided and executed")
        assert row.decision is not None
        decision = Decision.from_json(json.loads(row.decision))
        if decision.user_notice.when != "on-authority-request":
            raise Refused(f"matter {matter_id}: its user notice is "
                          f"{decision.user_notice.when}, not on the issuing authority's "
                          "request")
        if not [n for n in await self._store.notices(matter_id=matter_id)
                if n.sent_at is None]:
            raise Refused(f"matter {matter_id} has no notice left to send")
        request = parse_request(json.loads(row.request))
        now = self._clock()
        txn = LegalTxn()
        txn.set_pending_notices_due(matter_id, now)
        self._log(txn, EventType.LEGAL_NOTICE_REQUESTED, actor, request, matter_id)
        await self._commit(txn)
        await self._send_due_notices(now)
        return await self.show(matter_id)
