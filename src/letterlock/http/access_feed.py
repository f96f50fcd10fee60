"""HTTP access feed: an account owner lists every event the audit log holds about
their account (except those still under a non-disclosure order), each with an
inclusion proof they can check offline.

    GET /api/access/events?after=N&limit=M     (HTTP Basic: address + mail password)

The router is mounted by the HTTP application, which supplies two dependencies:
``feed`` (an :class:`~letterlock.services.transparency.access_feed.AccessFeed` on
``HOME/control/audit``) and ``accounts`` (the AccountService that checks passwords).
"""

# No `from __future__ import annotations`: FastAPI must see the local Annotated aliases.

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.security import HTTPBasic, HTTPBasicCredentials

from letterlock.errors import AuthenticationFailed, LetterlockError, NotFound
from letterlock.services.accounts.accounts import AccountService
from letterlock.services.transparency.access_feed import AccessFeed

REALM = "letterlock"


def make_access_feed_router(
    feed: Callable[[], AccessFeed], accounts: Callable[[], AccountService]
) -> APIRouter:
    router = APIRouter(prefix="/api/access", tags=["access feed"])
    basic = HTTPBasic(realm=REALM, auto_error=False)
    Feed = Annotated[AccessFeed, Depends(feed)]
    Accounts = Annotated[AccountService, Depends(accounts)]
    Credentials = Annotated[HTTPBasicCredentials | None, Depends(basic)]

    def unauthorised() -> HTTPException:
        return HTTPException(
            401, "authentication failed", headers={"WWW-Authenticate": f'Basic realm="{REALM}"'}
        )

    @router.get("/events")
    async def events(
        request: Request,
        svc: Feed,
        accts: Accounts,
        credentials: Credentials,
        after: Annotated[int, Query(ge=-1, description="Only events after this index.")] = -1,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> dict[str, Any]:
        """Events about the authenticated account, oldest first, with a proof each."""
        if credentials is None:
            raise unauthorised()
        try:
            session = await accts.authenticate(credentials.username, credentials.password,
                                               client=request.client.host if request.client
                                               else "")
        except AuthenticationFailed as exc:
            raise unauthorised() from exc
        try:
            page = await svc.page_async(session.address, after, limit)
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from exc
        except LetterlockError as exc:
            raise HTTPException(503, "the audit log is unavailable") from exc
        return {
            "account": page.account,
            "head": page.head,
            "events": list(page.events),
            "next_after": page.next_after,
        }

    return router
