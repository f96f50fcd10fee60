"""The one shape of every admin action of the operator console: read the POSTed
form, check its CSRF token against the signed-in admin's session, call the service,
and answer with a redirect carrying the outcome as a flash message, or with the
area's page again holding the refusal.

An area registers an action by decorating the function that does the work::

    @forms.post("/accounts/move", accounts_page, "/console/accounts")
    async def move(console: ConsoleSession, form: dict[str, str]) -> str:
        ...  # call the service with actor=console.name
        return "Moved ..."   # the flash message

The function raises a LetterlockError to refuse; its text is shown in the page.
"""

# No `from __future__ import annotations`: FastAPI must see the handlers' annotations.

from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from letterlock.errors import LetterlockError
from letterlock.http.account_pages import FormRefused, read_form
from letterlock.http.console_auth import ConsoleSession, ConsoleSessions, admin_only
from letterlock.http.web_sessions import same_token

Action = Callable[[ConsoleSession, dict[str, str]], Awaitable[str]]
"""Does the work of one form; returns the flash message."""
Page = Callable[[ConsoleSession, int, str], Awaitable[Response]]
"""An area's page, shown again with a status and an error."""
View = Callable[[ConsoleSession], Awaitable[Response]]
"""An area's page as a GET shows it."""


def error_text(exc: Exception) -> str:
    """An exception's text as a sentence for the page."""
    text = str(exc) or type(exc).__name__
    return text[:1].upper() + text[1:]


def back(to: str) -> Response:
    return RedirectResponse(to, status_code=303)


class AdminForms:
    """The admin actions of one router (``/console``)."""

    def __init__(self, router: APIRouter, sessions: ConsoleSessions) -> None:
        self.router = router
        self.sessions = sessions

    async def form_of(self, request: Request) -> tuple[ConsoleSession, dict[str, str]]:
        """The signed-in admin and the form they sent, its CSRF token checked."""
        console = admin_only(self.sessions, request)
        form = await read_form(request)
        if not same_token(form.get("csrf"), console.csrf):
            raise FormRefused("bad CSRF token")
        return console, form

    async def act(self, request: Request, action: Action, failed: Page, to: str,
                  status: int = 409) -> Response:
        """A state change: run ``action``, then redirect to ``to`` with its message;
        a refusal is shown in the page, with ``status``."""
        console, form = await self.form_of(request)
        try:
            said = await action(console, form)
        except LetterlockError as exc:
            return await failed(console, status, error_text(exc))
        console.say(said)
        return back(to)

    def page(self, path: str, show: View) -> None:
        """Register ``GET /console{path}`` showing ``show`` to a signed-in admin."""
        async def handler(request: Request) -> Response:
            return await show(admin_only(self.sessions, request))
        self.router.add_api_route(path, handler, methods=["GET"],
                                  name=path.strip("/").replace("/", "_") or "console")

    def post(self, path: str, failed: Page, to: str,
             status: int = 409) -> Callable[[Action], Action]:
        """Register ``POST /console{path}`` running the decorated action."""
        def register(action: Action) -> Action:
            async def handler(request: Request) -> Response:
                return await self.act(request, action, failed, to, status)
            self.router.add_api_route(path, handler, methods=["POST"],
                                      name=action.__name__)
            return action
        return register
