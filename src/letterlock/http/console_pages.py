"""The operator console: sign-in, the role-gated layout and the overview.

    GET  /console/login            sign-in form        POST /console/login
    POST /console/logout           ends the session
    GET  /console                  admin: the health of each component;
                                   legal/auditor: what their console will hold

The admin areas (accounts, domains, regions, queue, certificates) are in
``console_admin``. Every page but the sign-in needs a live console session (see
``console_auth``); every POST carries its CSRF token and answers with a redirect and a
flash message, or the page again with the error in it.
"""

# No `from __future__ import annotations`: FastAPI must see the handlers' annotations.

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import RedirectResponse, Response

from letterlock.app import App
from letterlock.errors import AuthenticationFailed, Busy
from letterlock.http.account_pages import (
    FormRefused,
    read_form,
)
from letterlock.http.account_pages import _client as client
from letterlock.http.account_pages import _drop_cookie as drop_cookie
from letterlock.http.account_pages import _set_cookie as set_cookie
from letterlock.http.console_admin import install_console_admin
from letterlock.http.console_auth import (
    COOKIE,
    LOGIN_COOKIE,
    ConsoleSession,
    ConsoleSessions,
    RoleRefused,
    SignInRequired,
    areas_for,
    current,
)
from letterlock.http.console_legal import install_console_legal
from letterlock.http.render import PageRenderer
from letterlock.http.web_sessions import new_token, same_token
from letterlock.services.operations import health

View = Callable[..., Response]


def install_console(api: FastAPI, app: App, pages: PageRenderer,
                    sessions: ConsoleSessions) -> None:
    router = APIRouter(prefix="/console", include_in_schema=False)

    def view(template: str, console: ConsoleSession | None, status: int = 200,
             **context: Any) -> Response:
        return pages.html(template, {
            "section": "console", "web": None, "console": console,
            "areas": areas_for(console.role) if console else [],
            "flash": console.take_flash() if console else [], **context}, status=status)

    @api.exception_handler(SignInRequired)
    async def to_sign_in(request: Request, exc: SignInRequired) -> Response:
        response = RedirectResponse(
            "/console/login" + ("?expired=1" if exc.expired else ""), status_code=303)
        if exc.expired:
            drop_cookie(response, request, COOKIE)
        return response

    @api.exception_handler(RoleRefused)
    async def refused(_request: Request, exc: RoleRefused) -> Response:
        return view("console/refused.html", exc.console, 403, title="Not for your role",
                    needed=exc.needed)

    # -- sign-in and sign-out -------------------------------------------------------------

    def login_form(request: Request, *, status: int = 200, error: str | None = None,
                   name: str = "") -> Response:
        token = new_token()
        notice = None
        if request.query_params.get("expired"):
            notice = "Your console session ended. Please sign in again."
        elif request.query_params.get("bye"):
            notice = "You are signed out."
        response = view("console/login.html", None, status, title="Operator sign-in",
                        csrf=token, error=error, notice=notice, name=name,
                        idle_minutes=int(sessions.idle_s // 60))
        set_cookie(response, request, LOGIN_COOKIE, token)
        return response

    @router.get("/login")
    async def login_page(request: Request) -> Response:
        if sessions.get(request.cookies.get(COOKIE)) is not None:
            return RedirectResponse("/console", status_code=303)
        return login_form(request)

    @router.post("/login")
    async def login(request: Request) -> Response:
        form = await read_form(request)
        if not same_token(form.get("csrf"), request.cookies.get(LOGIN_COOKIE)):
            raise FormRefused("bad console sign-in CSRF token")
        name = form.get("name", "").strip()
        try:
            operator = await app.operators.authenticate(name, form.get("password", ""),
                                                        client=client(request))
        except AuthenticationFailed:
            # The operators service logged the failure (auth:login:failed, counted in
            # the logins metric); the password is in neither.
            return login_form(request, status=401, name=name,
                              error="That name and password do not match an operator.")
        except Busy:
            return login_form(request, status=503, name=name,
                              error="Too many sign-ins are being checked. Try again in "
                                    "a moment.")
        console = sessions.open(operator)
        response = RedirectResponse("/console", status_code=303)
        set_cookie(response, request, COOKIE, console.id)
        drop_cookie(response, request, LOGIN_COOKIE)
        return response

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        console = current(sessions, request)
        form = await read_form(request)
        if not same_token(form.get("csrf"), console.csrf):
            raise FormRefused("bad CSRF token")
        sessions.close(console.id)
        response = RedirectResponse("/console/login?bye=1", status_code=303)
        drop_cookie(response, request, COOKIE)
        return response

    # -- the overview ---------------------------------------------------------------------

    @router.get("")
    async def home(request: Request) -> Response:
        console = current(sessions, request)
        if console.role != "admin":
            return view("console/waiting.html", console, title="Operator console")
        checks = await health.overview(app.config, app.cells)
        return view("console/overview.html", console, title="Overview",
                    checks=checks, failing=sum(1 for c in checks if not c.ok))

    api.include_router(router)
    install_console_admin(api, app, sessions, view)
    install_console_legal(api, app, sessions, view)
