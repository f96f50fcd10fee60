"""The HTTP front-end: a FastAPI application on the composition root's ``App``, served
by uvicorn inside the running event loop (``letterlock serve``).

Routes (the OpenAPI schema at ``/openapi.json`` is the reference):

    GET  /                         operator index page (no data, links and how to log in)
    GET  /healthz                  liveness
    POST /api/operator/tokens      operator password (HTTP Basic) -> bearer token
    DELETE /api/operator/tokens/current   revoke the bearer token in use
    GET  /api/operator/me          who the token belongs to
    GET  /api/operators            list operators (admin)
    POST /api/operators            add an operator (admin)
    GET  /api/accounts             accounts and their regions (admin)
    POST /api/accounts/{a}/move    move an account to another region (admin)
    DELETE /api/accounts/{a}       delete an account and its mail (admin)
    *    /api/legal/...            legal matters (legal_api.py; admin/legal act, auditor reads)
    GET  /api/me                   the account owner's region, country, key custody
    GET  /api/me/notices           the account owner's legal notices (mail password)
    GET  /api/access/events        the owner's access feed (access_feed.py, when present)
    POST /tlsrpt                   SMTP TLS reports about our servers (tls_reports_api.py,
                                   with smtp.tls_report_inbox)

Pages (server-rendered, no script; not in the OpenAPI schema):

    GET  /                         start page: what letterlock is, where to go, the API
    *    /account/...              the mail user's privacy center (account_pages.py)
    *    /console/...              the operator console (console_pages.py, console_admin.py)
    GET  /transparency/..., /log   public reports, canary and signed log head
                                   (public_pages.py)
    GET  /static/{name}            the site's stylesheet and icon

Authentication:

- **Operators** send ``Authorization: Bearer <token>``; a token comes from
  ``POST /api/operator/tokens`` with HTTP Basic ``name:password`` and lives 12 hours
  (stored only as a digest; ``DELETE /api/operator/tokens/current`` ends it early).
  HTTP Basic with the operator's name and password is accepted on every operator
  route too, for scripts (each such request costs one Argon2id derivation).
- **Account owners** use HTTP Basic with their address and mail password; that
  unlocks nothing beyond the request: these routes never return message content.

- **Mail users in a browser** log in to the privacy center with their address and
  password; the unlocked key stays in a server-side session (web_sessions.py).

No API route, for any role, returns mail: operators hold no mailbox key, and the
owner's API routes return notices and log events, not messages. The one page that
does is the privacy center's export, which unseals the logged-in owner's own mail
with the key their password unlocked.
"""

# No `from __future__ import annotations`: FastAPI must see the local Annotated aliases.

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable, Iterator
from typing import Annotated, Any

import uvicorn
from fastapi import Body, Depends, FastAPI, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.security import (
    HTTPAuthorizationCredentials,
    HTTPBasic,
    HTTPBasicCredentials,
    HTTPBearer,
)
from starlette.exceptions import HTTPException as StarletteHTTPException

from letterlock.app import App
from letterlock.errors import (
    AuthenticationFailed,
    ConfigError,
    LetterlockError,
)
from letterlock.http.account_pages import install_account_pages
from letterlock.http.console_auth import ConsoleSessions
from letterlock.http.console_pages import install_console
from letterlock.http.errors import status_for
from letterlock.http.json_body import StrictJsonBodies
from letterlock.http.legal_api import OperatorIdentity, make_legal_router
from letterlock.http.public_pages import install_public_pages
from letterlock.http.render import PageRenderer
from letterlock.http.tls_reports_api import make_tls_report_router
from letterlock.http.web_sessions import SessionStore
from letterlock.policy import format_time
from letterlock.services.accounts.accounts import Session
from letterlock.services.accounts.operators import ROLES, Operator
from letterlock.services.operations.log_events import bind

log = logging.getLogger("letterlock.http")

OPERATOR_REALM = "letterlock operators"
ACCOUNT_REALM = "letterlock"
Stopper = Callable[[], Awaitable[None]]


def _client(request: Request) -> str:
    """The peer's address: password checks are queued fairly per address."""
    return request.client.host if request.client else ""


def _unauthorised(realm: str) -> HTTPException:
    return HTTPException(401, "authentication failed",
                         headers={"WWW-Authenticate": f'Basic realm="{realm}"'})


def _operator_json(op: Operator) -> dict[str, str]:
    return {"name": op.name, "role": op.role, "created": format_time(op.created)}


def make_api(app: App, *, access_feed: Any = None,
             sessions: SessionStore | None = None) -> FastAPI:
    """The application. ``access_feed`` is an ``AccessFeed`` to mount the owner's
    access feed router with, or None to leave it out. ``sessions`` holds the privacy
    center's logged-in browsers (a fresh store when None)."""
    api = FastAPI(title="letterlock", version="1",
                  description="Operator and account-owner API. No route returns mail.",
                  docs_url=None, redoc_url=None)
    bearer = HTTPBearer(auto_error=False, description="Operator token")
    operator_basic = HTTPBasic(realm=OPERATOR_REALM, auto_error=False,
                               description="Operator name and password")
    account_basic = HTTPBasic(realm=ACCOUNT_REALM, auto_error=False,
                              scheme_name="AccountBasic",
                              description="Mail address and mail password")

    api.add_middleware(StrictJsonBodies)

    @api.exception_handler(LetterlockError)
    async def domain_error(_request: Request, exc: LetterlockError) -> JSONResponse:
        return JSONResponse({"detail": str(exc) or type(exc).__name__},
                            status_code=status_for(exc))

    @api.middleware("http")
    async def no_store(request: Request, call_next: Any) -> Any:
        # Login log lines of this request say how the password came.
        bind(proto="http", mech="basic" if request.headers.get("authorization", "")
             .lower().startswith("basic ") else "form")
        response = await call_next(request)
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response

    # -- who is calling ------------------------------------------------------------------

    async def current_operator(
        request: Request,
        token: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
        basic: Annotated[HTTPBasicCredentials | None, Depends(operator_basic)],
    ) -> Operator:
        try:
            if token is not None:
                return await app.operators.check_token(token.credentials)
            if basic is not None:
                return await app.operators.authenticate(basic.username, basic.password,
                                                        client=_client(request))
        except AuthenticationFailed:
            pass
        raise _unauthorised(OPERATOR_REALM)

    Who = Annotated[Operator, Depends(current_operator)]

    async def operator_identity(who: Who) -> OperatorIdentity:
        return OperatorIdentity(who.name, who.role)

    def admin(who: Operator, what: str = "manage operators") -> None:
        if who.role != "admin":
            raise HTTPException(403, f"role {who.role} may not {what}")

    async def account_owner(
        request: Request,
        basic: Annotated[HTTPBasicCredentials | None, Depends(account_basic)],
    ) -> Session:
        if basic is None:
            raise _unauthorised(ACCOUNT_REALM)
        try:
            return await app.accounts.authenticate(basic.username, basic.password,
                                                   client=_client(request))
        except AuthenticationFailed:
            raise _unauthorised(ACCOUNT_REALM) from None

    Owner = Annotated[Session, Depends(account_owner)]

    # -- pages -----------------------------------------------------------------------------

    pages = PageRenderer()

    @api.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index(request: Request) -> Response:
        return pages.html("index.html", {
            "title": "Your email belongs to you", "section": "home", "web": None,
            "base": str(request.base_url).rstrip("/")})

    @api.get("/docs", response_class=HTMLResponse, include_in_schema=False)
    async def docs(request: Request) -> Response:
        return pages.html("docs.html", {
            "title": "The HTTP API", "section": "docs", "web": None,
            "base": str(request.base_url).rstrip("/"), "routes": _api_routes(api)})

    @api.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        # A browser asking for a page gets a page; API clients get JSON as before.
        wants_page = "text/html" in request.headers.get("accept", "") and not \
            request.url.path.startswith("/api/")
        if wants_page and exc.status_code in (404, 405):
            return pages.html("error.html", {
                "title": "Not found", "section": "", "web": None,
                "message": "There is no page at this address."}, status=404)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @api.get("/static/{name}", include_in_schema=False)
    async def static(name: str) -> Response:
        found = pages.static(name)
        if found is None:
            raise HTTPException(404, "no such file")
        return found

    @api.get("/healthz", tags=["service"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    # -- operators -------------------------------------------------------------------------

    @api.post("/api/operator/tokens", status_code=201, tags=["operators"])
    async def issue_token(
        request: Request,
        basic: Annotated[HTTPBasicCredentials | None, Depends(operator_basic)],
    ) -> dict[str, str]:
        """Exchange an operator's name and password (HTTP Basic) for a bearer token."""
        if basic is None:
            raise _unauthorised(OPERATOR_REALM)
        try:
            issued = await app.operators.issue_token(basic.username, basic.password,
                                                     client=_client(request))
        except AuthenticationFailed:
            raise _unauthorised(OPERATOR_REALM) from None
        return {"token": issued.token, "token_type": "bearer",
                "operator": issued.operator.name, "role": issued.operator.role,
                "expires_at": format_time(issued.expires)}

    @api.delete("/api/operator/tokens/current", status_code=204, tags=["operators"])
    async def revoke_token(
        token: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Response:
        """End the bearer token sent with this request."""
        if token is None:
            raise _unauthorised(OPERATOR_REALM)
        try:
            await app.operators.revoke_token(token.credentials)
        except AuthenticationFailed:
            raise _unauthorised(OPERATOR_REALM) from None
        return Response(status_code=204)

    @api.get("/api/operator/me", tags=["operators"])
    async def me(who: Who) -> dict[str, str]:
        return _operator_json(who)

    @api.get("/api/operators", tags=["operators"])
    async def list_operators(who: Who) -> list[dict[str, str]]:
        """Every operator with their role (admin only)."""
        admin(who)
        return [_operator_json(op) for op in await app.operators.list()]

    @api.post("/api/operators", status_code=201, tags=["operators"])
    async def add_operator(who: Who, name: Annotated[str, Body()],
                           role: Annotated[str, Body(description=" | ".join(ROLES))],
                           password: Annotated[str, Body()]) -> dict[str, str]:
        """Add an operator (admin only)."""
        admin(who)
        added = await app.operators.add(name, role, password, actor=who.name)
        return _operator_json(added)

    # -- accounts (admin): where they live, moving and deleting; never their mail ----------

    @api.get("/api/accounts", tags=["accounts"])
    async def list_accounts(who: Who) -> list[dict[str, str]]:
        """Every account with its home region (admin only)."""
        admin(who, "manage accounts")
        return [{"address": a.address, "region": a.region, "created": format_time(a.created)}
                for a in await app.accounts.list()]

    @api.post("/api/accounts/{address}/move", tags=["accounts"])
    async def move_account(who: Who, address: str,
                           region: Annotated[str, Body(embed=True)]) -> dict[str, str]:
        """Move an account and its mail to another region (admin only; refused with
        409 while a legal matter names the account)."""
        admin(who, "manage accounts")
        ref = await app.accounts.move(address, region, actor=who.name)
        return {"address": ref.address, "region": ref.region}

    @api.delete("/api/accounts/{address}", status_code=204, tags=["accounts"])
    async def delete_account(who: Who, address: str) -> Response:
        """Delete an account and all its mail (admin only; refused with 409 while a
        legal matter names the account)."""
        admin(who, "manage accounts")
        await app.accounts.delete(address, actor=who.name)
        return Response(status_code=204)

    api.include_router(make_legal_router(lambda: app.legal, operator_identity))

    # -- account owners ----------------------------------------------------------------------

    @api.get("/api/me", tags=["account"])
    async def about_me(owner: Owner) -> dict[str, str]:
        """Where the authenticated account's data lives and how it is sealed."""
        regions = {r.id: r.country for r in await app.control.list_regions()}
        record = owner.ref.record
        return {"address": owner.address, "region": owner.ref.region,
                "country": regions.get(owner.ref.region, ""),
                "created": format_time(record.created), "key_custody": record.custody,
                "key_id": record.key_id.hex()}

    @api.get("/api/me/notices", tags=["account"])
    async def my_notices(owner: Owner) -> dict[str, Any]:
        """Legal notices sent to the authenticated account (the same text that was
        delivered to its INBOX), oldest first."""
        notices = await app.legal.notices_for(owner.address)
        return {"account": owner.address,
                "notices": [{"matter": n.matter_id,
                             "sent_at": None if n.sent_at is None else format_time(n.sent_at),
                             "text": n.text} for n in notices]}

    if app.config.smtp.tls_report_inbox:  # reports about our servers (RFC 8460)
        api.include_router(make_tls_report_router(
            app.config.control_dir, app.config.smtp.tls_report_inbox,
            app.delivery.hosted_domains, fsync=app.config.storage.fsync))

    if access_feed is not None:
        from letterlock.http.access_feed import make_access_feed_router
        api.include_router(make_access_feed_router(lambda: access_feed,
                                                   lambda: app.accounts))

    install_account_pages(api, app, sessions if sessions is not None else SessionStore(),
                          lambda: access_feed, pages)
    install_public_pages(api, app, pages)
    install_console(api, app, pages, ConsoleSessions())
    return api


def _api_routes(api: FastAPI) -> list[dict[str, str]]:
    """Every route in the OpenAPI schema, for the start page's table."""
    rows = []
    for path, methods in sorted(api.openapi().get("paths", {}).items()):
        for method, op in sorted(methods.items()):
            rows.append({"method": method.upper(), "path": path,
                         "summary": op.get("summary", "")})
    return rows


class _Server(uvicorn.Server):
    """uvicorn inside our event loop: ``letterlock serve`` owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _listen(host: str, port: int) -> socket.socket:
    # The protocol is named (IPPROTO_TCP, not 0) because asyncio turns Nagle's
    # algorithm off only on sockets that say they are TCP; without that every response
    # written in two parts waits ~40 ms for a delayed ACK.
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP,
            flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise ConfigError(f"HTTP cannot listen on {host}:{port}: "
                          f"{exc.strerror or exc}") from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"HTTP cannot listen on {host}:{port}: "
                          f"{exc.strerror or exc}") from exc
    sock.setblocking(False)
    return sock


def _open_access_feed(app: App) -> Any:
    """The access feed of issue 6 when this build has it, else None."""
    try:
        from letterlock.http import access_feed  # noqa: F401
        from letterlock.services.transparency.access_feed import AccessFeed
    except ImportError:
        return None
    return AccessFeed(app.config.control_dir / "audit")


class HttpServer:
    """The API served on one listening socket."""

    def __init__(self, app: App) -> None:
        self._app = app
        self._feed = _open_access_feed(app)
        self.sessions = SessionStore()
        self.api = make_api(app, access_feed=self._feed, sessions=self.sessions)
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None
        self.port = 0

    async def start(self, host: str, port: int) -> int:
        """Listen on ``host:port`` (0 picks a free port); returns the port."""
        sock = _listen(host, port)
        self.port = int(sock.getsockname()[1])
        config = uvicorn.Config(self.api, log_config=None, log_level="warning",
                                access_log=False, lifespan="off", server_header=False)
        server = self._server = _Server(config)
        self._task = asyncio.create_task(server.serve(sockets=[sock]), name="http")
        while not server.started:
            if self._task.done():
                sock.close()
                await self._task  # raises what stopped it
                raise ConfigError(f"HTTP server on {host}:{port} did not start")
            await asyncio.sleep(0.01)
        return self.port

    async def close(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
        # Logged-in browsers end with the server: their unlocked keys go with them.
        self.sessions.clear()
        if self._feed is not None:
            await asyncio.to_thread(self._feed.close)
            self._feed = None
        tlog = getattr(self.api.state, "tlog", None)
        if tlog is not None:  # the tiles API's view of the audit log
            await asyncio.to_thread(tlog.close)


async def start_http(app: App) -> Stopper:
    """Composition-root entry point: serve the API on ``server.bind``:``http.port``;
    returns the coroutine function that stops it."""
    server = HttpServer(app)
    port = await server.start(app.config.server.bind, app.config.http.port)
    log.info("HTTP listening on %s:%d", app.config.server.bind, port)
    return server.close
