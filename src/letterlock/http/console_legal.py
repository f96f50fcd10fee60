"""The legal area of the operator console (issue 14 point 7): roles ``legal``,
``admin`` and ``auditor`` read; ``legal`` and ``admin`` act (console_legal_actions).

    GET  /console/legal                      the queue: matters by their next deadline,
                                             overdue and due-soon marked; ?state=
    GET  /console/legal/{id}                 the matter: request, facts, recommendation
                                             (each cited policy and R-code in plain
                                             words), decision, deadlines, history,
                                             holds, notices, approval, the actions
    GET  /console/legal/{id}/trail           the matter's audit events
    GET  /console/legal/{id}/package/{zip}   a production stage's signed package

Everything is read through the legal service (the same calls as ``letterlock legal``
and /api/legal); the explanations come from services/legal/explain.py, the trail and
packages from services/legal/trail.py. A download is a ``legal:package:downloaded``
log line naming the operator.
"""

# No `from __future__ import annotations`: FastAPI must see the handlers' annotations.

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, Response

from letterlock.app import App
from letterlock.errors import LetterlockError
from letterlock.http.console_auth import ConsoleSession, ConsoleSessions, RoleRefused, current
from letterlock.http.console_legal_actions import ACTORS, install_console_legal_actions
from letterlock.http.errors import status_for
from letterlock.policy import Decision, format_time, load_jurisdictions
from letterlock.policy.jurisdiction import Jurisdictions
from letterlock.policy.model import REFUSAL_GROUNDS
from letterlock.services.legal import explain
from letterlock.services.legal.approval import AWAITING
from letterlock.services.legal.matter import Matter
from letterlock.services.legal.matters import STATES
from letterlock.services.legal.stages import DECIDABLE
from letterlock.services.legal.trail import (
    MatterTrails,
    TrailEntry,
    package_archive,
    package_archives,
)
from letterlock.services.operations.log_events import LogEvent, event

READERS = frozenset({"legal", "admin", "auditor"})
DUE_SOON = timedelta(days=2)
"""A deadline this close is marked due soon in the queue."""
NEEDS = {
    "content": "it hands over content",
    "override": "it overrides the policy's recommendation",
    "flagged": "a finding is flagged for review",
}
HISTORY = {
    "legal:matter:filed": "filed",
    "legal:matter:evaluated": "evaluated by the policy",
    "legal:decision:proposed": "decision proposed (awaiting a second operator)",
    "legal:decision:approved": "decision approved",
    "legal:decision:approval-refused": "proposed decision refused",
    "legal:matter:overridden": "recommendation overridden",
    "legal:matter:decided": "decided",
    "legal:hold:placed": "preservation hold placed",
    "legal:hold:released": "hold released",
    "legal:production:executed": "production package written",
    "legal:notice:sent": "user notice sent",
    "legal:notice:requested": "issuing authority asked to inform the user",
    "legal:gag:lifted": "non-disclosure order lifted",
    "legal:gag:extended": "non-disclosure order extended",
    "legal:matter:closed": "closed",
}


def legal_reader(sessions: ConsoleSessions, request: Request) -> ConsoleSession:
    console = current(sessions, request)
    if console.role not in READERS:
        raise RoleRefused(console, "legal, admin or auditor")
    return console


def _t(moment: datetime | None) -> str | None:
    return None if moment is None else format_time(moment)


def _deadline_mark(matter: Matter, now: datetime) -> str:
    if matter.overdue:
        return "overdue"
    if matter.next_due is not None and matter.next_due - now <= DUE_SOON:
        return "due"
    return ""


def queue_rows(matters: list[Matter], now: datetime) -> list[dict[str, Any]]:
    """The queue's rows: the matters with a deadline to meet first, the earliest
    first (overdue ones lead), then the others, newest filed first."""
    far = datetime.max.replace(tzinfo=now.tzinfo)
    ordered = sorted(matters, key=lambda m: (m.next_due or far,
                                             -m.filed_at.timestamp()))
    return [{
        "id": m.id, "state": m.state, "filed_at": _t(m.filed_at), "filed_by": m.filed_by,
        "issuer": m.request.issuer.country, "authority": m.request.issuer.authority,
        "instrument": m.request.instrument, "targets": ", ".join(m.request.targets) or "-",
        "next_due": _t(m.next_due), "mark": _deadline_mark(m, now),
        "proposed_by": m.proposal.proposed_by
        if m.state == AWAITING and m.proposal is not None else None,
    } for m in ordered]


def _findings(decision: Decision) -> list[dict[str, Any]]:
    return [{"target": t, "category": c, "outcome": f.outcome,
             "meaning": explain.OUTCOMES.get(f.outcome, ""), "reasons": list(f.reasons),
             "policies": list(f.policies), "flags": list(f.flags)}
            for t, c, f in decision.findings()]


def decision_view(decision: Decision, words: explain.PolicyExplainer) -> dict[str, Any]:
    notice = decision.user_notice
    return {
        "profile": decision.profile, "evaluated_at": _t(decision.evaluated_at),
        "findings": _findings(decision),
        "policies": words.cited(decision),
        "reasons": explain.reasons_in(decision),
        "flags": sorted({(fl, explain.FLAGS.get(fl, "")) for _, _, f in decision.findings()
                         for fl in f.flags}),
        "notice": notice.when, "notice_meaning": explain.NOTICES.get(notice.when, ""),
        "notice_not_before": _t(notice.not_before),
        "transparency": decision.transparency,
    }


def _enforcing_state(matter: Matter, jurisdictions: Jurisdictions) -> dict[str, Any] | None:
    """The enforcing state's step of a European Production Order (services/legal/
    enforcing_state.py) while it can be recorded: the grounds it may raise."""
    if matter.request.instrument != "eu-epoc" or matter.state not in ("evaluated", "waiting"):
        return None
    held = any(f.outcome == "hold-enforcing-state"
               for _, _, f in (matter.decision or matter.recommendation).findings())
    if matter.state == "waiting" and not held:
        return None
    grounds = jurisdictions.e_evidence_rules.refusal_grounds
    return {"grounds": [{"id": g, "words": grounds[g].words if g in grounds else g,
                         "article": grounds[g].article if g in grounds else ""}
                        for g in REFUSAL_GROUNDS]}


def matter_view(matter: Matter, words: explain.PolicyExplainer,
                trail: list[TrailEntry]) -> dict[str, Any]:
    request = matter.request
    jurisdictions = load_jurisdictions()
    gag = jurisdictions.effective_gag(request)
    p = matter.proposal
    return {
        "id": matter.id, "state": matter.state, "open": matter.open,
        "filed_at": _t(matter.filed_at), "filed_by": matter.filed_by,
        "closed_at": _t(matter.closed_at), "decided_by": matter.decided_by,
        "overridden": matter.overridden, "justification": matter.justification,
        "request": {
            "instrument": request.instrument, "action": request.action,
            "issuer": request.issuer, "categories": list(request.categories),
            "targets": list(request.targets), "selector": request.selector,
            "received_at": _t(request.received_at), "served_at": _t(request.served_at),
            "emergency": request.emergency, "offence": request.offence,
            "date_range": None if request.date_range is None
            else request.date_range.to_json(),
            "gag": None if gag is None else ("indefinite" if gag.until is None
                                             else _t(gag.until)),
            "gag_implied": gag is not None and request.gag is None,
        },
        "facts": [{"target": t, **f.to_json()} for t, f in matter.facts.items()],
        "recommendation": decision_view(matter.recommendation, words),
        "decision": None if matter.decision is None
        else decision_view(matter.decision, words),
        "deadlines": [{"kind": d.kind, "meaning": explain.DEADLINES.get(d.kind, ""),
                       "due": _t(d.due), "done": d.done, "overdue": d.overdue}
                      for d in matter.deadlines],
        "holds": [{"address": h.address, "region": h.region, "placed_at": _t(h.placed_at),
                   "expires_at": _t(h.expires_at), "released_at": _t(h.released_at)}
                  for h in matter.holds],
        "notices": [{"address": n.address, "due_at": _t(n.due_at), "sent_at": _t(n.sent_at)}
                    for n in matter.notices],
        "proposal": None if p is None else {
            "pending": p.outcome is None and matter.state == AWAITING,
            "proposed_by": p.proposed_by, "proposed_at": _t(p.proposed_at),
            "needs": [NEEDS.get(n, n) for n in p.needs],
            "override": dict(p.override).get("outcome"), "justification": p.justification,
            "outcome": p.outcome, "resolved_by": p.resolved_by,
            "resolved_at": _t(p.resolved_at), "reason": p.reason,
            "decision": decision_view(p.decision, words) if p.override else None,
        },
        "history": [{"what": HISTORY.get(e.type, e.type), "actor": e.actor, "at": _t(e.at)}
                    for e in trail if e.type in HISTORY],
        "order": _order(gag is not None, trail),
        "informable": matter.state in ("executed", "notified") and matter.decision is not None
        and matter.decision.user_notice.when == "on-authority-request"
        and any(n.sent_at is None for n in matter.notices),
        "decidable": matter.state in DECIDABLE, "waiting": matter.state == "waiting",
        "enforcing_state": _enforcing_state(matter, jurisdictions),
        "targets": sorted({t for t, _, _ in (matter.decision or matter.recommendation)
                           .findings()}),
        "categories": sorted({c for _, c, _ in (matter.decision or matter.recommendation)
                              .findings()}),
    }


def _order(in_request: bool, trail: list[TrailEntry]) -> dict[str, Any] | None:
    """Where the matter's non-disclosure order stands, from its audit trail: None when
    there is none; else lifted (when, by whom) or its last extension."""
    lifted = next((e for e in trail if e.type == "legal:gag:lifted"), None)
    extended = [e for e in trail if e.type == "legal:gag:extended"]
    if not in_request and not extended:
        return None
    last = extended[-1] if extended else None
    return {"lifted_at": _t(lifted.at) if lifted else None,
            "lifted_by": lifted.actor if lifted else None,
            "extended_to": dict(last.details).get("until") if last else None,
            "extended_by": last.actor if last else None}


def install_console_legal(api: FastAPI, app: App, sessions: ConsoleSessions,
                          view: Callable[..., Response]) -> None:
    router = APIRouter(prefix="/console/legal", include_in_schema=False)
    words = explain.PolicyExplainer(app.config.legal.policy_dir or app.config.legal.profile)
    trails = MatterTrails(app.audit)

    def missing(console: ConsoleSession, exc: LetterlockError,
                title: str = "Legal matter not found") -> Response:
        return view("console/legal_missing.html", console, status_for(exc),
                    title=title, area="/console/legal",
                    message=str(exc) or type(exc).__name__)

    async def matter_page(console: ConsoleSession, matter_id: str, status: int = 200,
                          error: str | None = None, **kept: str) -> Response:
        try:
            matter = await app.legal.show(matter_id)
        except LetterlockError as exc:
            return missing(console, exc)
        try:
            trail = await trails.trail(matter.id)
        except LetterlockError:
            trail = []
        packages = [p.name for p in await package_archives(matter)]
        return view("console/legal_matter.html", console, status,
                    title=f"Legal matter {matter.id}", area="/console/legal",
                    m=matter_view(matter, words, trail), packages=packages,
                    outcomes=list(explain.OUTCOMES.items()), error=error, kept=kept,
                    acts=console.role in ACTORS)

    @router.get("")
    async def queue(request: Request) -> Response:
        console = legal_reader(sessions, request)
        state = request.query_params.get("state", "open")
        if state not in ("open", "all", *STATES):
            state = "open"
        try:
            matters = await app.legal.list_matters(open_only=state == "open")
        except LetterlockError as exc:
            return missing(console, exc, "Legal matters cannot be read")
        if state not in ("open", "all"):
            matters = [m for m in matters if m.state == state]
        now = datetime.now(UTC)
        rows = queue_rows(matters, now)
        pending = [{"id": r["id"], "proposed_by": r["proposed_by"],
                    "yours": console.role in ACTORS
                    and console.name not in (r["filed_by"], r["proposed_by"])}
                   for r in rows if r["proposed_by"] is not None]
        return view("console/legal_queue.html", console, title="Legal matters",
                    area="/console/legal", rows=rows, state=state, pending=pending,
                    states=["open", "all", *STATES],
                    overdue=sum(1 for r in rows if r["mark"] == "overdue"))

    @router.get("/{matter_id}")
    async def show(request: Request, matter_id: str) -> Response:
        return await matter_page(legal_reader(sessions, request), matter_id)

    @router.get("/{matter_id}/trail")
    async def trail(request: Request, matter_id: str) -> Response:
        console = legal_reader(sessions, request)
        try:
            matter = await app.legal.show(matter_id)
            entries = await trails.trail(matter.id)
        except LetterlockError as exc:
            return missing(console, exc)
        return view("console/legal_trail.html", console, title=f"Audit trail of {matter.id}",
                    area="/console/legal", matter_id=matter.id, entries=[{
                        "type": e.type, "what": HISTORY.get(e.type, e.type),
                        "actor": e.actor, "at": _t(e.at), "accounts": e.accounts,
                        "details": e.details, "sealed": e.sealed} for e in entries])

    @router.get("/{matter_id}/package/{name}")
    async def package(request: Request, matter_id: str, name: str) -> Response:
        console = legal_reader(sessions, request)
        try:
            matter = await app.legal.show(matter_id)
            path = await package_archive(matter, name)
        except LetterlockError as exc:
            return missing(console, exc)
        event(LogEvent.LEGAL_PACKAGE_DOWNLOADED, actor=console.name, matter=matter.id,
              package=path.name)
        return FileResponse(path, media_type="application/zip", filename=path.name)

    api.include_router(router)
    install_console_legal_actions(api, app, sessions, matter_page)
