"""The actions of the legal console (roles ``legal`` and ``admin``; an auditor's POST
is answered 403 and changes nothing).

    POST /console/legal/{id}/decide           accept the recommendation, or override
                                              (outcome, justification, optionally only
                                              some targets/categories)
    POST /console/legal/{id}/approve          approve the decision awaiting a second
                                              operator (four-eyes)
    POST /console/legal/{id}/reject-approval  refuse it, with a reason
    POST /console/legal/{id}/lift-gag         the non-disclosure order was lifted
    POST /console/legal/{id}/extend-gag       it was renewed or extended (new end date,
                                              or none)
    POST /console/legal/{id}/enforcing-state  what a notified enforcing state did
                                              (an EU production order, art. 10 and 12)
    POST /console/legal/{id}/inform-requested an EU order's issuing authority asked for
                                              the user to be told
    POST /console/legal/{id}/close            close the matter, releasing its holds

Each form carries the session's CSRF token; each action is the legal service's call
(the one ``letterlock legal`` and /api/legal make) with the signed-in operator's name
as the actor its audit events record. The outcome is a flash message on the matter's
page; a refusal is the page again with the error, with the status the API gives it
(403 for approving one's own matter, 409 for a step the state does not allow, 422 for
bad input).
"""

# No `from __future__ import annotations`: FastAPI must see the handlers' annotations.

from collections.abc import Awaitable, Callable
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from letterlock.app import App
from letterlock.errors import InvalidInput, LetterlockError
from letterlock.http.account_pages import FormRefused, read_form
from letterlock.http.console_auth import ConsoleSession, ConsoleSessions, RoleRefused, current
from letterlock.http.errors import status_for
from letterlock.http.web_sessions import same_token
from letterlock.policy import format_time, parse_time
from letterlock.services.legal.approval import AWAITING, SelfApproval
from letterlock.services.legal.matter import Matter

ACTORS = frozenset({"legal", "admin"})

MatterPage = Callable[..., Awaitable[Response]]
"""``(console, matter_id, status, error, **kept)``: the matter's page."""


def legal_actor(sessions: ConsoleSessions, request: Request) -> ConsoleSession:
    """The signed-in legal or admin operator (an auditor reads and never acts)."""
    console = current(sessions, request)
    if console.role not in ACTORS:
        raise RoleRefused(console, "legal or admin")
    return console


def _error(exc: LetterlockError) -> str:
    # Not capitalised: a message may start with an operator's name.
    return str(exc) or type(exc).__name__


def _outcome_of(matter: Matter, actor: str) -> str:
    if matter.state == AWAITING and matter.proposal is not None:
        needs = ", ".join(matter.proposal.needs)
        return (f"{actor} proposed the decision on {matter.id}; it needs a second "
                f"operator's approval ({needs}) and nothing was executed yet.")
    return f"{actor} decided {matter.id}: it is {matter.state} now."


def install_console_legal_actions(api: FastAPI, app: App, sessions: ConsoleSessions,
                                  matter_page: MatterPage) -> None:
    router = APIRouter(prefix="/console/legal", include_in_schema=False)

    async def form_of(request: Request) -> tuple[ConsoleSession, dict[str, str]]:
        console = legal_actor(sessions, request)
        form = await read_form(request)
        if not same_token(form.get("csrf"), console.csrf):
            raise FormRefused("bad CSRF token")
        return console, form

    Step = Callable[[str, ConsoleSession, dict[str, str]], Awaitable[str]]

    async def decide(matter_id: str, console: ConsoleSession, form: dict[str, str]) -> str:
        if form.get("choice") == "override":
            if not form.get("outcome"):
                raise InvalidInput("Choose the outcome that replaces the recommendation")
            if not form.get("justification", "").strip():
                raise InvalidInput("An override needs a written justification")
            matter = await app.legal.decide(
                matter_id, console.name, override=form.get("outcome") or "",
                justification=form.get("justification", ""),
                targets=[k.removeprefix("target:") for k in form if k.startswith("target:")],
                categories=[k.removeprefix("category:") for k in form
                            if k.startswith("category:")])
        else:
            matter = await app.legal.decide(matter_id, console.name)
        return _outcome_of(matter, console.name)

    async def approve(matter_id: str, console: ConsoleSession, _: dict[str, str]) -> str:
        matter = await app.legal.approve(matter_id, console.name)
        return (f"{console.name} approved the decision on {matter.id}; it was executed and "
                f"the matter is {matter.state} now.")

    async def reject(matter_id: str, console: ConsoleSession, form: dict[str, str]) -> str:
        matter = await app.legal.reject_approval(matter_id, console.name,
                                                 form.get("reason", ""))
        return (f"{console.name} refused the proposed decision on {matter.id}; it is "
                f"{matter.state} again, to be decided.")

    async def lift_gag(matter_id: str, console: ConsoleSession, _: dict[str, str]) -> str:
        matter = await app.legal.lift_gag(matter_id, console.name)
        return (f"{console.name} recorded that the order on {matter.id} was lifted: its "
                "notices went out and its sealed audit events are revealed.")

    async def extend_gag(matter_id: str, console: ConsoleSession,
                         form: dict[str, str]) -> str:
        until_text = form.get("until", "").strip()
        indefinite = form.get("indefinite") == "on"
        if bool(until_text) == indefinite:
            raise InvalidInput("Give the order's new end date, or tick that it has none "
                               "(not both)")
        until = None if indefinite else parse_time(until_text, "new end")
        matter = await app.legal.extend_gag(matter_id, console.name, until)
        return (f"{console.name} recorded that the order on {matter.id} was extended "
                f"{'without end date' if until is None else 'to ' + format_time(until)}.")

    async def inform(matter_id: str, console: ConsoleSession, _: dict[str, str]) -> str:
        matter = await app.legal.inform_requested(matter_id, console.name)
        return (f"{console.name} recorded the issuing authority's request: the notices of "
                f"{matter.id} went out.")

    async def enforcing_state(matter_id: str, console: ConsoleSession,
                              form: dict[str, str]) -> str:
        answer = form.get("answer", "")
        grounds = [k.removeprefix("ground:") for k in form if k.startswith("ground:")]
        if answer == "refused" and not grounds:
            raise InvalidInput("Tick the grounds for refusal the enforcing state raised")
        if answer != "refused" and grounds:
            raise InvalidInput("Grounds for refusal go with the answer that it refused")
        if answer not in ("no-grounds", "refused", "window-passed"):
            raise InvalidInput("Choose what the enforcing state did")
        matter = await app.legal.enforcing_state_answered(
            matter_id, console.name, answered=answer != "window-passed",
            refusal_grounds=grounds)
        what = {"no-grounds": "raises no ground for refusal",
                "refused": "raised " + ", ".join(grounds),
                "window-passed": "let its window pass without an answer"}[answer]
        return (f"{console.name} recorded that the enforcing state {what}; {matter.id} is "
                f"{matter.state} now.")

    async def close(matter_id: str, console: ConsoleSession, _: dict[str, str]) -> str:
        matter = await app.legal.close(matter_id, console.name)
        return f"{console.name} closed {matter.id}; its holds are released."

    steps: dict[str, Step] = {
        "decide": decide, "approve": approve, "reject-approval": reject,
        "lift-gag": lift_gag, "extend-gag": extend_gag, "inform-requested": inform,
        "enforcing-state": enforcing_state, "close": close,
    }

    @router.post("/{matter_id}/{step}")
    async def take(request: Request, matter_id: str, step: str) -> Response:
        """Run one step; a refusal is the matter's page with the reason."""
        chosen = steps.get(step)
        if chosen is None:
            raise HTTPException(404, "no such action")
        console, form = await form_of(request)
        try:
            said = await chosen(matter_id, console, form)
        except LetterlockError as exc:
            kept = {k: v for k, v in form.items()
                    if k in ("choice", "outcome", "justification", "reason", "until",
                             "answer")}
            status = 403 if isinstance(exc, SelfApproval) else status_for(exc)
            return await matter_page(console, matter_id, status, _error(exc), **kept)
        console.say(said)
        return RedirectResponse(f"/console/legal/{quote(matter_id, safe='')}",
                                status_code=303)

    api.include_router(router)
