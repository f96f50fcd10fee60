"""Legal matters: one service function per step, shared by the CLI and the HTTP API.

    received -> evaluated -> decided -> executed -> notified -> closed
                               |    ^
                               v    |  (a follow-up decision)
                              waiting        (awaiting-approval: four-eyes, approval.py)


- ``file``: record a request; facts come from the store (existence, home region's
  country, hosted-tenant domains, key custody), plus what the legal team asserts
  (US person, residence, conflicting laws); the policy recommends a decision.
- ``decide``: a human accepts the recommendation or overrides it (with a written
  justification); the decision is executed at once: preservation places holds,
  disclosure writes a signed production package; then the user notice is sent, or
  scheduled for the gag's expiry. A decision that waits for an enforcing state
  (``hold-enforcing-state``, a European Production Order) leaves the matter
  ``waiting``: no notice, and it is decided again once the state's window has passed
  or it has answered.
- ``inform_requested``: the issuing authority of an EU order asked the provider to
  inform the user (Regulation 2023/1543 art. 13): its notice, held until then, is
  sent.
- ``tick``: due work: notices whose gag has expired, holds that have run out.
- ``close``: ends the matter and releases its holds.

Every step is one transaction of the legal database together with its audit events,
which ``journal`` then puts in the audit log exactly once (sealed while the matter's
order is in force); a crash anywhere leaves a whole step or none, and what was left
undelivered is finished the next time the service is used (``_recover``). The signed
production package is written by ``production``, the user notice's letter by
``notices``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import secrets
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from letterlock.audit.events import AuditSink, EventType
from letterlock.errors import (
    AlreadyExists,
    InvalidInput,
    MatterOpen,
    NotFound,
    Refused,
    UnknownAccount,
)
from letterlock.policy import (
    AccountFacts,
    AssertedFacts,
    Decision,
    LegalRequest,
    PolicyEngine,
    format_time,
    operator_for,
    parse_asserted_facts,
    parse_facts,
    parse_request,
)
from letterlock.policy.rules import OUTCOMES
from letterlock.services.accounts.accounts import AccountService
from letterlock.services.cells import Cells
from letterlock.services.legal.approval import AWAITING, FourEyes
from letterlock.services.legal.deadlines import deadline_status
from letterlock.services.legal.enforcing_state import EnforcingStateSteps
from letterlock.services.legal.facts import facts_from_store
from letterlock.services.legal.gag_steps import GagSteps
from letterlock.services.legal.journal import MatterJournal
from letterlock.services.legal.letters import LetterSteps
from letterlock.services.legal.matter import Matter, TickReport
from letterlock.services.legal.matter_export import MatterExportSteps
from letterlock.services.legal.notices import default_contact, notice_message, notice_text
from letterlock.services.legal.production import mailbox_contents, produce
from letterlock.services.legal.stages import (
    DECIDABLE,
    categories_of,
    disclosed,
    disclosed_so_far,
    earliest,
    is_waiting,
    stage_name,
    waiting_hold_expiry,
    waiting_pairs,
)
from letterlock.services.legal.stages import (
    override as override_findings,
)
from letterlock.services.mail.delivery import DeliveryResult, DeliveryService
from letterlock.storage.contracts import ControlStore
from letterlock.storage.legal_sqlite import HoldRow, LegalStore, LegalTxn, MatterRow, NoticeRow

STATES = ("received", "evaluated", AWAITING, "decided", "waiting", "executed", "notified",
          "closed")


def _now() -> datetime:
    return datetime.now(UTC)


class LegalService(FourEyes, GagSteps, EnforcingStateSteps, MatterExportSteps, LetterSteps):
    def __init__(self, store: LegalStore, control: ControlStore, cells: Cells,
                 accounts: AccountService, delivery: DeliveryService, audit: AuditSink,
                 engine: PolicyEngine, operator_country: str, work_dir: Path,
                 clock: Callable[[], datetime] = _now, contact: str = "",
                 four_eyes: frozenset[str] = frozenset()) -> None:
        self._store = store
        self._four_eyes = four_eyes  # what needs a second operator (approval.py)
        self._contact = contact  # whom notices name (empty: postmaster@ the user's domain)
        self._control = control
        self._cells = cells
        self._accounts = accounts
        self._delivery = delivery
        self._audit = audit
        self._engine = engine
        self._operator_country = operator_country
        self._dir = work_dir
        self._clock = clock
        self._due_lock = asyncio.Lock()
        self._journal = MatterJournal(store, audit, engine.jurisdictions, work_dir)
        self._recovered = False

    @contextlib.asynccontextmanager
    async def _due_work(self) -> AsyncIterator[None]:
        """Exclusive right to send due notices and release expired holds, in this
        process and across processes (`serve`'s periodic tick beside a `legal tick` or
        `legal lift-gag` command): without it both could send one notice twice."""
        async with self._due_lock:
            self._dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self._dir / "due-work.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)  # closing releases the lock

    # -- reading ------------------------------------------------------------------------

    async def _load(self, row: MatterRow) -> Matter:
        assert row.recommendation is not None
        recommendation = Decision.from_json(json.loads(row.recommendation))
        decision = None if row.decision is None else Decision.from_json(json.loads(row.decision))
        holds = tuple(await self._store.holds(matter_id=row.id))
        notices = tuple(await self._store.notices(matter_id=row.id))
        return Matter(
            id=row.id, state=row.state, filed_at=row.filed_at, filed_by=row.filed_by,
            request=parse_request(json.loads(row.request)),
            facts=parse_facts(json.loads(row.facts)),
            recommendation=recommendation, decision=decision,
            overridden=row.overridden, justification=row.justification,
            decided_by=row.decided_by, package=row.package, closed_at=row.closed_at,
            holds=holds, notices=notices, proposal=await self._latest_proposal(row.id),
            deadlines=deadline_status(row.state, decision, recommendation, holds, notices,
                                      self._clock()),
        )

    async def show(self, matter_id: str) -> Matter:
        await self._recover()
        return await self._load(await self._store.get_matter(matter_id))

    async def list_matters(self, *, open_only: bool = False,
                   due_within: timedelta | None = None) -> list[Matter]:
        await self._recover()
        now = self._clock()
        out = []
        for row in await self._store.list_matters():
            if (open_only or due_within is not None) and row.state == "closed":
                continue
            matter = await self._load(row)
            if due_within is not None and (matter.next_due is None
                                           or matter.next_due > now + due_within):
                continue
            out.append(matter)
        return out

    # -- committing steps, and finishing what a crash left ------------------------------

    def _log(self, txn: LegalTxn, kind: EventType, actor: str, request: LegalRequest,
             matter: str, account: str | None = None,
             details: Sequence[tuple[str, str]] = ()) -> None:
        self._journal.log(txn, kind, actor, self._clock(), request, matter, account, details)

    async def _commit(self, txn: LegalTxn, *, reveal: str | None = None,
                      reseal: str | None = None) -> None:
        """Apply a step and its audit events at once, then put the events in the log
        (and the blobs released holds no longer keep out of the cells)."""
        await self._store.commit(txn)
        await self._journal.deliver(reveal=reveal, reseal=reseal)
        await self._purge()

    async def _purge(self) -> None:
        doomed = await self._store.pending_purges()
        by_region: dict[str, list[str]] = {}
        for region, blob in doomed:
            by_region.setdefault(region, []).append(blob)
        for region, blobs in by_region.items():
            await self._cells.get(region).blobs.delete_many(blobs)
        if doomed:
            await self._store.purged(doomed)

    async def _recover(self) -> None:
        """Once per service: finish what a crash left (events not yet in the audit
        log, sealed events of a lifted order, blobs of released holds), and repair
        matters written half by earlier versions (filed but never evaluated; decided
        but never executed)."""
        if self._recovered:
            return
        self._recovered = True
        await self._journal.deliver()
        await self._journal.reveal_lifted()
        await self._journal.reseal_extended()
        await self._purge()
        for row in await self._store.list_matters():
            if row.recommendation is None:
                await self._evaluate_filed(row)
            elif row.state == "decided" and row.decision is not None:
                await self._execute(row, Decision.from_json(json.loads(row.decision)),
                                    row.decided_by or "system", was="decided")

    # -- filing and evaluation ------------------------------------------------------------

    async def facts_from_store(self, request: LegalRequest,
                               asserted: Mapping[str, AssertedFacts]) -> dict[str, AccountFacts]:
        """Existence, location, hosted tenancy and key custody come from the store;
        residence, US-person status and conflicting laws from the legal team."""
        return await facts_from_store(self._control, self._cells, request, asserted)

    async def _evaluate(self, request: LegalRequest,
                        facts: Mapping[str, AccountFacts]) -> Decision:
        regions = frozenset(r.country for r in await self._control.list_regions())
        operator = operator_for(self._engine.jurisdictions, self._operator_country, regions)
        return self._engine.evaluate(request, facts, operator, self._clock())

    async def file(self, request_data: object, actor: str,
                   asserted_facts: object | None = None) -> Matter:
        """Record a request (LEGAL.md JSON) and evaluate it, in one step. Returns the
        matter."""
        await self._recover()
        request = parse_request(request_data)
        asserted = parse_asserted_facts(asserted_facts) if asserted_facts is not None else {}
        now = self._clock()
        matter_id = request.id or f"M-{now:%Y%m%d}-{secrets.token_hex(3)}"
        if request.id is not None and await self._exists(matter_id):
            raise AlreadyExists(f"legal matter {matter_id} exists already: give the request "
                                "another id, or none to have one assigned")
        request = replace(request, id=matter_id)
        facts = await self.facts_from_store(request, asserted)
        recommendation = await self._evaluate(request, facts)
        row = MatterRow(matter_id, now, actor, "evaluated", json.dumps(request.to_json()),
                        json.dumps({a: f.to_json() for a, f in facts.items()}),
                        json.dumps(recommendation.to_json()), None, False, None, None, None,
                        earliest(recommendation, now), None)
        txn = LegalTxn()
        txn.add_matter(row)
        self._log(txn, EventType.LEGAL_MATTER_FILED, actor, request, matter_id,
                  details=(("instrument", request.instrument),
                           ("issuer_country", request.issuer.country)))
        self._log(txn, EventType.LEGAL_MATTER_EVALUATED, "policy", request, matter_id,
                  details=(("profile", recommendation.profile),
                           ("transparency", recommendation.transparency)))
        await self._commit(txn)
        return await self._load(row)

    async def _exists(self, matter_id: str) -> bool:
        try:
            await self._store.get_matter(matter_id)
        except NotFound:
            return False
        return True

    async def _evaluate_filed(self, row: MatterRow) -> None:
        """A matter an earlier version recorded but never evaluated (it crashed
        between the two writes): evaluate it now, with the facts of now."""
        request = parse_request(json.loads(row.request))
        asserted = parse_asserted_facts(json.loads(row.facts or "{}"))
        facts = await self.facts_from_store(request, asserted)
        recommendation = await self._evaluate(request, facts)
        txn = LegalTxn()
        txn.update_matter(replace(row, state="evaluated",
                                  facts=json.dumps({a: f.to_json() for a, f in facts.items()}),
                                  recommendation=json.dumps(recommendation.to_json()),
                                  next_due=earliest(recommendation, self._clock())),
                          was=row.state)
        self._log(txn, EventType.LEGAL_MATTER_EVALUATED, "policy", request, row.id,
                  details=(("profile", recommendation.profile),
                           ("transparency", recommendation.transparency)))
        await self._commit(txn)

    # -- deciding and executing -----------------------------------------------------------

    async def decide(self, matter_id: str, actor: str, *, override: str | None = None,
                     justification: str | None = None, targets: Sequence[str] = (),
                     categories: Sequence[str] = ()) -> Matter:
        """Accept the recommendation (``override`` None) or replace findings' outcome
        with ``override``, which needs a justification: every finding, or only those
        of ``targets`` and/or ``categories`` (the others keep the recommendation).
        Then execute: deciding and executing are one step (unless four-eyes makes it
        a proposal for another operator to approve: approval.py). A matter ``waiting`` for
        an enforcing state is decided again the same way (override its
        hold-enforcing-state findings once the state's window has passed or it
        objected)."""
        await self._recover()
        row = await self._store.get_matter(matter_id)
        was = row.state
        if was not in DECIDABLE:
            raise Refused(f"matter {matter_id} is {was}; only an evaluated matter, or one "
                          "waiting for an enforcing state, can be decided")
        matter = await self._load(row)
        # A follow-up decision starts from the decision before it.
        decision = matter.decision if was == "waiting" and matter.decision else \
            matter.recommendation
        if was == "waiting" and override is None:
            raise InvalidInput(f"matter {matter_id} waits on open findings: a follow-up "
                               "decision overrides them (--override with a justification)")
        if override is not None:
            if override not in OUTCOMES:
                raise InvalidInput(f"--override: expected one of {', '.join(OUTCOMES)}")
            if not justification or not justification.strip():
                raise InvalidInput("--justification: an override needs a justification")
            decision = override_findings(decision, override, actor, targets, categories)
        elif targets or categories:
            raise InvalidInput("targets and categories narrow an override; give one")
        scope = tuple((k, ",".join(v)) for k, v in (("targets", targets),
                                                     ("categories", categories)) if v)
        why = () if override is None else (("outcome", override),
                                           ("justification", justification or ""), *scope)
        return await self._decide_or_propose(row, decision, actor, was=was, override=why)

    async def _execute(self, row: MatterRow, decision: Decision, actor: str, *, was: str,
                       txn: LegalTxn | None = None) -> Matter:
        """One stage: holds, the production package of what no earlier stage handed
        over, and the notices of ``decision``, committed with the matter's new state
        in one step (the package is written before: a crash leaves at most a package
        that the next try writes again). A before-disclosure notice is its own step
        before the production (the matter ``decided`` in between)."""
        matter = await self._load(row)
        request, now = matter.request, self._clock()
        txn = txn or LegalTxn()
        notice = decision.user_notice
        waiting = is_waiting(decision)
        earlier = await asyncio.to_thread(disclosed_so_far, row.package)
        fresh = disclosed(decision) - earlier
        if notice.when == "before-disclosure" and fresh:
            # The user is told before anything is handed over: the decision and its
            # notices are one step, the notices are sent, then the production is the
            # next step. A crash in between leaves a decided matter that _recover
            # executes the same way (its notices are then made already).
            if was != "decided":
                self._add_notices(txn, matter, decision, now, fresh, earlier, ahead=True)
                row = replace(row, state="decided")
                txn.update_matter(row, was=was)
                await self._commit(txn)
                txn, was = LegalTxn(), "decided"
            await self._send_due_notices(now)
            matter = await self._load(row)
        # Preservation: a hold on each account with something to preserve, or with
        # traffic/content a waiting finding may yet hand over.
        holding = {h.address for h in matter.holds if h.released_at is None}
        keep = waiting_pairs(decision)
        for target, cats in decision.targets:
            preserve = any(f.outcome == "preserve" for _, f in cats)
            if target in holding or not (preserve or categories_of(keep, target)):
                continue
            region = await self._control.lookup(target)
            if region is None:
                continue
            expiry = next((d.due for d in decision.deadlines
                           if d.kind == "preservation-expiry"), now + timedelta(days=90)) \
                if preserve else waiting_hold_expiry(decision, now)
            txn.add_hold(row.id, target, region, now, expiry,
                         await mailbox_contents(self._control, self._cells, target))
            details = [("expires_at", format_time(expiry))]
            if not preserve:
                details.append(("while_waiting", ",".join(categories_of(keep, target))))
            self._log(txn, EventType.LEGAL_HOLD_PLACED, actor, request, row.id,
                      account=target, details=details)
        # Disclosure: a signed package with exactly what this stage hands over.
        package = None
        if fresh:
            held = {t: await self._store.held_messages(t) for t in request.targets}
            ours = {n.blob_id for t in request.targets
                    for n in await self._store.notices(address=t) if n.blob_id}
            package = await produce(matter.id, decision, control=self._control,
                                    cells=self._cells, work_dir=self._dir,
                                    clock=self._clock, held=held,
                                    date_range=request.date_range, exclude=ours,
                                    earlier=earlier,
                                    name=stage_name(matter.id, row.package))
            self._log(txn, EventType.LEGAL_PRODUCTION_EXECUTED, actor, request, row.id,
                      details=(("package", package),))
        # A final decision ends the holds placed while waiting (not a preservation's).
        if not waiting and not any(f.outcome == "preserve"
                                   for _, _, f in decision.findings()):
            for hold in matter.holds:
                if hold.released_at is None:
                    self._release(txn, hold, actor, request,
                                  len(await self._store.held_blobs(hold.id)))
        # User notice: for what this stage hands over, or once the matter is decided
        # for good (what was done); now, at the gag's expiry (tick), when an EU order's
        # issuing authority asks (inform_requested), never while only preserving.
        adding = notice.when != "none" and was != "decided" and bool(
            fresh or (not waiting and not matter.notices))
        if adding:
            self._add_notices(txn, matter, decision, now, fresh, earlier, ahead=False)
        told = bool(matter.notices) and not adding and all(
            n.sent_at is not None for n in matter.notices)
        state = "waiting" if waiting else "notified" if told else "executed"
        txn.update_matter(replace(row, state=state, package=package or row.package),
                          was=was)
        await self._commit(txn)
        if notice.when != "none":
            await self._send_due_notices(now)
        return await self.show(row.id)

    # -- notices, holds, closing ------------------------------------------------------------

    def _add_notices(self, txn: LegalTxn, matter: Matter, decision: Decision,
                     now: datetime, fresh: frozenset[tuple[str, str]],
                     earlier: frozenset[tuple[str, str]], *, ahead: bool) -> None:
        """One notice per existing target (with something new to tell, once the matter
        had a notice): due now (before disclosure, after an emergency), at the gag's
        expiry, or at no date (until a gag is lifted or an EU order's issuing
        authority asks)."""
        notice = decision.user_notice
        due = now if notice.when in ("before-disclosure", "after-emergency") \
            else notice.not_before
        for target in matter.request.targets:
            facts = matter.facts.get(target)
            if facts is None or not facts.exists:
                continue
            if matter.notices and not categories_of(fresh, target):
                continue
            txn.add_notice(matter.id, target, due, notice_text(
                matter.id, matter.request, decision, target, now, ahead=ahead,
                contact=self._contact or default_contact(target),
                earlier=categories_of(earlier, target)))

    async def _blob_of(self, region: str, result: DeliveryResult) -> str | None:
        """The blob a delivered notice is stored as (copies share it), so that a
        production can tell the provider's own notices from the user's mail."""
        if result.stored is None:
            return None
        found = await self._cells.get(region).store.get_messages(
            result.stored.mailbox_id, [result.stored.uid], with_summary=False)
        return found[0].blob_id if found else None

    async def _send_due_notices(self, now: datetime) -> int:
        async with self._due_work():
            return await self._send_due_notices_locked(now)

    async def _send_due_notices_locked(self, now: datetime) -> int:
        sent = 0
        for notice in await self._store.notices():
            if notice.sent_at is not None or notice.due_at is None or notice.due_at > now:
                continue
            row = await self._store.get_matter(notice.matter_id)
            if row.state == "closed":
                continue
            request = parse_request(json.loads(row.request))
            try:
                ref = await self._accounts.resolve(notice.address)
            except UnknownAccount:
                continue
            # Delivered first, then recorded: a crash between the two sends the notice
            # again (at least once), never loses it.
            results = await self._delivery.deliver(notice_message(notice), [ref])
            if not all(r.ok for r in results):
                continue
            txn = LegalTxn()
            txn.mark_notice_sent(notice.id, now, await self._blob_of(ref.region, results[0]))
            self._log(txn, EventType.LEGAL_NOTICE_SENT, "system", request, row.id,
                      account=notice.address)
            pending = [n for n in await self._store.notices(matter_id=row.id)
                       if n.sent_at is None and n.id != notice.id]
            if not pending and row.state == "executed":
                txn.update_matter(replace(row, state="notified"), was="executed")
            await self._commit(txn)
            sent += 1
        return sent

    def _release(self, txn: LegalTxn, hold: HoldRow, actor: str, request: LegalRequest,
                 kept: int) -> None:
        txn.release_hold(hold.id, self._clock())
        self._log(txn, EventType.LEGAL_HOLD_RELEASED, actor, request, hold.matter_id,
                  account=hold.address, details=(("blobs_released", str(kept)),))

    async def tick(self) -> TickReport:
        """Run due work once: notices whose time has come, holds that have expired."""
        await self._recover()
        now = self._clock()
        sent = await self._send_due_notices(now)
        released = 0
        async with self._due_work():
            for hold in await self._store.holds():
                if hold.released_at is None and hold.expires_at <= now:
                    row = await self._store.get_matter(hold.matter_id)
                    txn = LegalTxn()
                    self._release(txn, hold, "system", parse_request(json.loads(row.request)),
                                  len(await self._store.held_blobs(hold.id)))
                    await self._commit(txn)
                    released += 1
        return TickReport(sent, released)

    async def close(self, matter_id: str, actor: str) -> Matter:
        await self._recover()
        async with self._due_work():
            row = await self._store.get_matter(matter_id)
            if row.state == "closed":
                raise Refused(f"matter {matter_id} is closed already")
            request = parse_request(json.loads(row.request))
            txn = LegalTxn()
            for hold in await self._store.holds(matter_id=matter_id):
                if hold.released_at is None:
                    self._release(txn, hold, actor, request,
                                  len(await self._store.held_blobs(hold.id)))
            txn.update_matter(replace(row, state="closed", closed_at=self._clock()),
                              was=row.state)
            self._log(txn, EventType.LEGAL_MATTER_CLOSED, actor, request, matter_id)
            await self._commit(txn)
        return await self.show(matter_id)

    # -- what other services ask ------------------------------------------------------------

    async def check_account_free(self, address: str) -> None:
        """Raises MatterOpen if an open matter names the account (deleting it or moving
        it to another region must wait)."""
        for row in await self._store.list_matters():
            if row.state != "closed":
                request = parse_request(json.loads(row.request))
                if address.lower() in request.targets:
                    raise MatterOpen(f"{address} is the subject of open legal matter {row.id}")

    async def retain(self, ref: Any, blob_ids: Sequence[str]) -> set[str]:
        """Mailbox retention hook: while a hold is active, expunged mail stays stored."""
        holds = await self._store.holds(address=ref.address, active_at=self._clock())
        if not holds:
            return set()
        await self._store.keep_blobs([h.id for h in holds], ref.region, list(blob_ids))
        return set(blob_ids)

    async def region_blob_ids(self, region: str) -> set[str]:
        """The region's blobs only legal records name (expunged mail a hold keeps, or
        blobs waiting to be purged): backups keep them (services/operations/backup.py)."""
        return await self._store.region_blob_ids(region)

    async def active_holds(self, address: str, at: datetime) -> list[HoldRow]:
        """The account's preservation holds in force at ``at`` (the privacy center
        shows those whose placing the audit log shows in the clear)."""
        return await self._store.holds(address=address.lower(), active_at=at)

    async def notices_for(self, address: str) -> list[NoticeRow]:
        """The notices an account holder may read (those already sent)."""
        return [n for n in await self._store.notices(address=address.lower())
                if n.sent_at is not None]
