"""The privacy center's per-user settings tabs (issue 16 point 5):

    GET  /account/addresses     the account's addresses and which may be the sender
    GET  /account/vacation      the vacation auto-reply form    POST /account/vacation
    GET  /account/junk          the spam filter, and where junk goes for you
                                (the Junk folder or INBOX, flagged)   POST /account/junk

Addresses are the operator's to give (the admin console), so that tab only shows
them. The vacation form writes a Sieve rule through the filter service
(services/mail/filters/vacation_form.py says how it lives beside a script edited over
ManageSieve). Every POST carries the session's CSRF token (``checked_form``).
"""

# No `from __future__ import annotations`: FastAPI must see the handlers' annotations.

from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from letterlock.app import App
from letterlock.errors import InvalidInput, LetterlockError, QuotaExceeded
from letterlock.http.web_sessions import WebSession
from letterlock.services.mail.account_addresses import account_addresses
from letterlock.services.mail.filters.junk_filing import (
    JUNK_KEYWORD,
    junk_choice,
    set_junk_choice,
)
from letterlock.services.mail.filters.vacation_form import (
    MAX_ADDRESSES,
    MAX_DAYS,
    MAX_SUBJECT,
    MAX_TEXT,
    MIN_DAYS,
    OWN_SCRIPT,
    VacationForm,
    VacationInvalid,
    VacationSettings,
    check_settings,
    disclosure,
)
from letterlock.services.mail.spam_status import SpamStatusProbe, junk_of


@dataclass(frozen=True)
class PageTools:
    """What the settings pages borrow from account_pages: the session of a request,
    its checked form, and the page renderer with the privacy center's context."""

    current: Callable[[Request], WebSession]
    checked_form: Callable[[Request, WebSession], Awaitable[dict[str, str]]]
    view: Callable[..., Response]


def _reads(settings: VacationSettings) -> dict[str, Any]:
    reads = disclosure(settings)
    return {
        "envelope": reads.envelope,
        "headers": sorted(reads.headers),
        "body": reads.body,
        "size": reads.size,
        "sends_mail": reads.sends_mail,
    }


def _form_values(settings: VacationSettings) -> dict[str, str]:
    return {
        "on": "on" if settings.on else "off",
        "subject": settings.subject,
        "text": settings.text,
        "days": str(settings.days),
        "start": settings.start.isoformat() if settings.start else "",
        "end": settings.end.isoformat() if settings.end else "",
        "addresses": "\n".join(settings.addresses),
    }


def install_settings_pages(router: APIRouter, app: App, tools: PageTools) -> None:
    vacation = VacationForm(app.filters)
    spam = SpamStatusProbe(app.config.spam)

    # -- addresses --------------------------------------------------------------------

    @router.get("/addresses")
    async def addresses_page(request: Request) -> Response:
        web = tools.current(request)
        mine = await account_addresses(app.addresses, web.account.ref)
        return tools.view(
            "account/addresses.html",
            web,
            title="Your addresses",
            tab="addresses",
            addresses=[asdict(a) for a in mine.addresses],
            separator=mine.separator,
            example=mine.example,
        )

    # -- vacation ---------------------------------------------------------------------

    async def vacation_form(
        web: WebSession,
        status: int = 200,
        *,
        values: dict[str, str] | None = None,
        error: str | None = None,
        field: str | None = None,
        done: str | None = None,
    ) -> Response:
        state = await vacation.state(web.account)
        # Offered until something is saved: aliases (not groups: a reply to every
        # message sent to a group would answer for the whole group).
        aliases = [
            a.address
            for a in (await account_addresses(app.addresses, web.account.ref)).addresses
            if a.kind == "alias"
        ]
        shown = values if values is not None else _form_values(state.settings)
        if values is None and not state.settings.text and not state.settings.addresses:
            shown["addresses"] = "\n".join(aliases)
        return tools.view(
            "account/vacation.html",
            web,
            status,
            title="Vacation auto-reply",
            tab="vacation",
            state=state,
            values=shown,
            error=error,
            field=field,
            done=done,
            own_script=OWN_SCRIPT,
            reads=_reads(state.settings),
            min_days=MIN_DAYS,
            max_days=MAX_DAYS,
            max_subject=MAX_SUBJECT,
            max_text=MAX_TEXT,
            max_addresses=MAX_ADDRESSES,
            sieve_port=app.config.sieve.port,
        )

    @router.get("/vacation")
    async def vacation_page(request: Request) -> Response:
        return await vacation_form(tools.current(request))

    @router.post("/vacation")
    async def save_vacation(request: Request) -> Response:
        web = tools.current(request)
        form = await tools.checked_form(request, web)
        values = {
            k: form.get(k, "")
            for k in ("on", "subject", "text", "days", "start", "end", "addresses")
        }
        try:
            settings = check_settings(
                on=values["on"] == "on",
                subject=values["subject"],
                text=values["text"],
                days=values["days"],
                start=values["start"],
                end=values["end"],
                addresses=values["addresses"],
                today=datetime.now(UTC).date(),
            )
        except VacationInvalid as exc:
            return await vacation_form(web, 422, values=values, error=str(exc), field=exc.field)
        try:
            state = await vacation.save(web.account, settings)
        except QuotaExceeded as exc:
            return await vacation_form(
                web,
                422,
                values=values,
                error="There is no room for the rule: " + _sentence(str(exc)),
            )
        except InvalidInput as exc:  # e.g. the running script's layout (insert_section)
            return await vacation_form(web, 422, values=values, error=_sentence(str(exc)))
        except LetterlockError as exc:  # e.g. the running script no longer parses
            return await vacation_form(
                web, 409, values=values, error="The rule could not be saved: " + _sentence(str(exc))
            )
        return await vacation_form(web, done="on" if state.running else "off")

    # -- junk -------------------------------------------------------------------------

    async def junk_form(
        web: WebSession, status: int = 200, *, error: str | None = None, done: bool = False
    ) -> Response:
        boxes = await app.mailboxes.list_mailboxes(web.account)
        return tools.view(
            "account/junk.html",
            web,
            status,
            title="Junk mail",
            tab="junk",
            spam=await spam.status(junk_of(boxes)),
            choice=await junk_choice(app.filters, web.account.ref),
            keyword=JUNK_KEYWORD,
            error=error,
            done=done,
        )

    @router.get("/junk")
    async def junk_page(request: Request) -> Response:
        return await junk_form(tools.current(request))

    @router.post("/junk")
    async def save_junk(request: Request) -> Response:
        web = tools.current(request)
        form = await tools.checked_form(request, web)
        try:
            await set_junk_choice(app.filters, web.account.ref, form.get("junk", ""))
        except InvalidInput:
            return await junk_form(web, 422, error="Choose the Junk folder or the Inbox.")
        return await junk_form(web, done=True)


def _sentence(text: str) -> str:
    text = text.strip().rstrip(".")
    return (text[:1].upper() + text[1:] + ".") if text else "That did not work."
