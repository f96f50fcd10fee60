"""HTTP JSON API for legal matters: the same service functions as ``letterlock legal``.

The router is mounted by the HTTP application, which supplies two dependencies:
``service`` (the LegalService) and ``operator`` (authenticates the request and
returns who is calling and with which role). Roles: ``admin`` and ``legal`` may act
on matters; ``auditor`` may only read them. No route reads mail. Domain errors get
the same statuses as on every other route (http/errors.py), also when the router is
mounted on its own.

Requests, facts, decisions and matters are typed in the OpenAPI schema
(``components/schemas``: Request, Facts, Decision, Matter; http/legal_schema.py) and
described field by field in docs/legal-formats.md.
"""


from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Body, Depends, HTTPException, Query

from letterlock.errors import LetterlockError
from letterlock.http.errors import status_for
from letterlock.http.legal_file_api import add_matter_file_routes
from letterlock.http.legal_schema import FILE_BODY, FORMATS_DOC, MatterList, matter_response
from letterlock.policy import parse_time
from letterlock.services.legal.approval import SelfApproval
from letterlock.services.legal.matter import Matter
from letterlock.services.legal.matters import LegalService

T = TypeVar("T")

ROLES = ("admin", "legal", "auditor")
ACTING_ROLES = frozenset({"admin", "legal"})


@dataclass(frozen=True)
class OperatorIdentity:
    name: str
    role: str


async def _call(fn: Callable[[], Awaitable[T]]) -> T:
    try:
        return await fn()
    except LetterlockError as exc:
        raise HTTPException(status_for(exc), str(exc) or type(exc).__name__) from exc


def make_legal_router(service: Callable[[], LegalService],
                      operator: Callable[..., Any]) -> APIRouter:
    """``service`` and ``operator`` are FastAPI dependencies; ``operator`` must return
    an OperatorIdentity or raise HTTPException(401)."""
    router = APIRouter(prefix="/api/legal", tags=["legal"])
    Svc = Annotated[LegalService, Depends(service)]
    Who = Annotated[OperatorIdentity, Depends(operator)]

    def acting(who: OperatorIdentity) -> str:
        if who.role not in ACTING_ROLES:
            raise HTTPException(403, f"role {who.role} may not act on legal matters")
        return who.name

    @router.post("/matters", status_code=201, response_model=None,
                 responses=matter_response(201), openapi_extra=FILE_BODY)
    async def file_matter(svc: Svc, who: Who,
                          request: Annotated[dict[str, Any], Body()],
                          facts: Annotated[dict[str, Any] | None, Body()] = None,
                          ) -> dict[str, Any]:
        """File a request (``{"request": Request, "facts": Facts}``, see
        docs/legal-formats.md); returns the matter with its recommendation."""
        actor = acting(who)
        matter = await _call(lambda: svc.file(request, actor, facts))
        return matter.to_json()

    @router.get("/matters", response_model=None,
                responses={200: {"model": MatterList, "description": FORMATS_DOC}})
    async def list_matters(svc: Svc, who: Who, open: bool = False,
                           due: Annotated[int | None, Query(ge=0)] = None,
                           ) -> list[dict[str, Any]]:
        within = None if due is None else timedelta(days=due)
        matters = await _call(lambda: svc.list_matters(open_only=open, due_within=within))
        return [m.to_json() for m in matters]

    @router.get("/matters/{matter_id}", response_model=None,
                responses=matter_response())
    async def show_matter(svc: Svc, who: Who, matter_id: str) -> dict[str, Any]:
        matter = await _call(lambda: svc.show(matter_id))
        return matter.to_json()

    @router.post("/matters/{matter_id}/decision", response_model=None,
                 responses=matter_response())
    async def decide_matter(svc: Svc, who: Who, matter_id: str,
                            accept: Annotated[bool, Body()] = False,
                            override: Annotated[str | None, Body()] = None,
                            justification: Annotated[str | None, Body()] = None,
                            targets: Annotated[list[str] | None, Body()] = None,
                            categories: Annotated[list[str] | None, Body()] = None,
                            ) -> dict[str, Any]:
        """``{"accept": true}`` or ``{"override": OUTCOME, "justification": TEXT}``,
        optionally narrowed to ``"targets": [...]`` and/or ``"categories": [...]``
        (the other findings keep the recommendation)."""
        actor = acting(who)
        if accept == (override is not None):
            raise HTTPException(422, "give exactly one of accept or override")
        matter = await _call(lambda: svc.decide(matter_id, actor, override=override,
                                                justification=justification,
                                                targets=targets or (),
                                                categories=categories or ()))
        return matter.to_json()

    @router.post("/matters/{matter_id}/approve", response_model=None,
                 responses={**matter_response(), 403: {"description": "An auditor, the "
                            "matter's filer or the decision's proposer."}})
    async def approve_matter(svc: Svc, who: Who, matter_id: str) -> dict[str, Any]:
        """Approve the decision awaiting a second operator (four-eyes): it is executed
        now. The caller must not have filed the matter or proposed the decision."""
        actor = acting(who)
        try:
            matter = await svc.approve(matter_id, actor)
        except SelfApproval as exc:
            raise HTTPException(403, str(exc)) from exc
        except LetterlockError as exc:
            raise HTTPException(status_for(exc), str(exc) or type(exc).__name__) from exc
        return matter.to_json()

    @router.post("/matters/{matter_id}/reject-approval", response_model=None,
                 responses=matter_response())
    async def reject_approval(svc: Svc, who: Who, matter_id: str,
                              reason: Annotated[str, Body(embed=True)]) -> dict[str, Any]:
        """Refuse the decision awaiting approval (``{"reason": TEXT}``): nothing is
        executed and the matter is to be decided again."""
        actor = acting(who)
        matter = await _call(lambda: svc.reject_approval(matter_id, actor, reason))
        return matter.to_json()

    @router.post("/matters/{matter_id}/close", response_model=None,
                 responses=matter_response())
    async def close_matter(svc: Svc, who: Who, matter_id: str) -> dict[str, Any]:
        actor = acting(who)
        matter = await _call(lambda: svc.close(matter_id, actor))
        return matter.to_json()

    @router.post("/matters/{matter_id}/lift-gag", response_model=None,
                 responses=matter_response())
    async def lift_gag(svc: Svc, who: Who, matter_id: str) -> dict[str, Any]:
        actor = acting(who)
        matter = await _call(lambda: svc.lift_gag(matter_id, actor))
        return matter.to_json()

    @router.post("/matters/{matter_id}/extend-gag", response_model=None,
                 responses=matter_response())
    async def extend_gag(svc: Svc, who: Who, matter_id: str,
                         until: Annotated[str | None, Body()] = None,
                         indefinite: Annotated[bool, Body()] = False) -> dict[str, Any]:
        """The non-disclosure order was renewed or extended: ``until`` (ISO time) or
        ``indefinite``."""
        actor = acting(who)
        if (until is None) == (not indefinite):
            raise HTTPException(422, "give either until or indefinite: true")

        async def run() -> Matter:
            end = None if indefinite else parse_time(until, "until")
            return await svc.extend_gag(matter_id, actor, end)
        matter = await _call(run)
        return matter.to_json()

    @router.post("/matters/{matter_id}/inform-requested", response_model=None,
                 responses=matter_response())
    async def inform_requested(svc: Svc, who: Who, matter_id: str) -> dict[str, Any]:
        """An EU order's issuing authority asked the provider to inform the user."""
        actor = acting(who)
        matter = await _call(lambda: svc.inform_requested(matter_id, actor))
        return matter.to_json()

    @router.post("/matters/{matter_id}/enforcing-state", response_model=None,
                 responses=matter_response())
    async def enforcing_state(svc: Svc, who: Who, matter_id: str,
                              answered: Annotated[bool, Body()] = True,
                              refusal_grounds: Annotated[list[str] | None, Body()] = None,
                              ) -> dict[str, Any]:
        """A European Production Order's enforcing state answered (``refusal_grounds``:
        the art. 12(1) grounds it raised, none or empty: it raises none), or with
        ``answered: false`` its window passed; the policy decides the held findings
        again (docs/legal-e-evidence.md)."""
        actor = acting(who)
        matter = await _call(lambda: svc.enforcing_state_answered(
            matter_id, actor, answered=answered, refusal_grounds=refusal_grounds or ()))
        return matter.to_json()

    @router.post("/tick")
    async def tick(svc: Svc, who: Who) -> dict[str, int]:
        acting(who)
        report = await _call(svc.tick)
        return {"notices_sent": report.notices_sent, "holds_released": report.holds_released}

    add_matter_file_routes(router, service, operator, acting)
    return router
