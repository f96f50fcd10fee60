"""The privacy center: web pages where a mail user sees where their mail lives, who
touched their account, the legal requests about them, and takes their mail with them.

    GET  /account/login            login form          POST /account/login
    POST /account/logout           ends the session (the unlocked key is dropped)
    GET  /account                  where your mail lives (region, country, key, sealing)
    GET  /account/access           who touched your account (audit log, with proofs)
    GET  /account/access/{i}/proof.json   inclusion proof of one event
    GET  /account/legal            legal requests about you: holds in force, each
                                   matter's events (as in the access feed), notices
    GET  /account/export           export page     GET /account/export.mbox  the mbox
    GET  /account/password         change password    POST /account/password
    GET  /account/addresses, /account/vacation (POST too), /account/junk
                                   per-user settings (see ``account_settings``)

A login is the mail address and mail password; it unlocks the account key into a
server-side session (see ``web_sessions``). Every POST carries a CSRF token. None of
these pages shows anything about another account: every read is by the session's own
address, and a proof is served only for an event about that address.
"""

# No `from __future__ import annotations`: FastAPI must see the handlers' annotations.

import urllib.parse
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response, StreamingResponse

from letterlock.app import App
from letterlock.crypto import openpgp
from letterlock.errors import AuthenticationFailed, InvalidInput, LetterlockError, NotFound
from letterlock.http import access_labels, log_seen
from letterlock.http.account_filters import filter_disclosure
from letterlock.http.account_legal import legal_tab
from letterlock.http.account_settings import PageTools, install_settings_pages
from letterlock.http.render import PageRenderer
from letterlock.http.web_sessions import (
    COOKIE,
    LOGIN_COOKIE,
    SessionStore,
    WebSession,
    new_token,
    same_token,
)
from letterlock.policy import format_time
from letterlock.services.accounts.accounts import MIN_PASSWORD_LENGTH
from letterlock.services.mail.transfer import stream_mbox
from letterlock.services.operations import logs
from letterlock.services.transparency.access_feed import AccessFeed

MAX_FORM_BYTES = 16 * 1024
MAX_KEY_FORM_BYTES = 256 * 1024
"""The end-to-end form carries an armored OpenPGP certificate (with signatures on it,
tens of KiB at most)."""
FEED_PAGE = 50

EVENT_WORDS = {
    "admin:account:created": "The operator created your account",
    "admin:account:deleted": "The operator deleted your account",
    "admin:account:moved": "The operator moved your account to another region",
    "admin:account:disabled": "The operator disabled your account: its logins are "
                              "refused, its mail still arrives",
    "admin:account:enabled": "The operator enabled your account again",
    "admin:address:added": "The operator gave your account another address (an alias, "
                           "a group membership or a domain's catch-all)",
    "admin:address:removed": "The operator took an address from your account",
    "admin:send-as:granted": "The operator let your account send as another address",
    "admin:send-as:revoked": "The operator stopped your account sending as another "
                             "address",
    "admin:mail:imported": "The operator imported mail into your account",
    "admin:mail:exported": "Your mail was exported from the operator's command line "
                           "(with your password)",
    "account:password:changed": "Your password was changed",
    "account:key:recovered": "Your key was recovered with the recovery code",
    "account:custody:changed": "End-to-end encryption to your own OpenPGP key was "
                               "switched on or off (with your password)",
    "legal:matter:filed": "A legal request naming you was recorded",
    "legal:matter:evaluated": "A legal request naming you was checked against the law",
    "legal:matter:decided": "A decision was made on a legal request naming you",
    "legal:matter:overridden": "A person overrode the policy's recommendation on a "
                               "legal request naming you",
    "legal:matter:closed": "A legal request naming you was closed",
    "legal:decision:proposed": "A decision on a legal request naming you was proposed, "
                               "for a second person to check",
    "legal:decision:approved": "A second person approved a decision on a legal request "
                               "naming you",
    "legal:decision:approval-refused": "A second person sent a proposed decision on a "
                                       "legal request naming you back",
    "legal:hold:placed": "A legal hold was placed: deleted mail is kept",
    "legal:hold:released": "A legal hold was released",
    "legal:production:executed": "Data was handed over in answer to a legal request",
    "legal:notice:sent": "You were sent a notice about a legal request",
    "legal:notice:requested": "The authority behind a legal request asked us to tell "
                              "you about it",
    "legal:gag:lifted": "A non-disclosure order about you ended",
    "legal:gag:extended": "A non-disclosure order about you was extended",
    "legal:case-number:set": "The court's case number was recorded for a legal request "
                             "naming you",
    "legal:note:added": "The legal team added a note to a legal request naming you",
    "legal:attachment:added": "The original of a legal request naming you was filed "
                              "(sealed)",
    "legal:attachment:opened": "The legal team opened the filed original of a legal "
                               "request naming you",
    "legal:matter:exported": "The file of a legal request naming you was exported",
    "legal:letter:issued": "A signed letter was written to the authority behind a legal "
                           "request naming you",
    "log:commitment:revealed": "An event kept secret by a court order was revealed",
}


def _fingerprint(certificate: bytes) -> str:
    if not certificate:
        return ""
    try:
        return openpgp.describe(certificate).fingerprint
    except LetterlockError:
        return "(unreadable certificate)"


class LoginRequired(Exception):
    """The page needs a live session; the handler redirects to the login form."""

    def __init__(self, expired: bool) -> None:
        super().__init__("login required")
        self.expired = expired


class FormRefused(Exception):
    """A POST without a valid CSRF token, or not a form at all."""


def _client(request: Request) -> str:
    """The peer's address: password checks are queued fairly per address."""
    return request.client.host if request.client else ""


def _secure(request: Request) -> bool:
    """Whether the browser reached us over TLS (directly or through a proxy)."""
    return (request.url.scheme == "https"
            or request.headers.get("x-forwarded-proto", "").lower() == "https")


def _set_cookie(response: Response, request: Request, name: str, value: str) -> None:
    response.set_cookie(name, value, httponly=True, samesite="strict", path="/",
                        secure=_secure(request))


def _drop_cookie(response: Response, request: Request, name: str) -> None:
    response.delete_cookie(name, path="/", httponly=True, samesite="strict",
                           secure=_secure(request))


async def read_form(request: Request, limit: int = MAX_FORM_BYTES) -> dict[str, str]:
    """An url-encoded form body (first value of each field). Raises FormRefused."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise FormRefused("not a form")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise FormRefused("form too large")
    try:
        fields = urllib.parse.parse_qs(body.decode("utf-8"), keep_blank_values=True,
                                       strict_parsing=False, max_num_fields=20)
    except (UnicodeDecodeError, ValueError) as exc:
        raise FormRefused("unreadable form") from exc
    return {k: v[0] for k, v in fields.items()}


def describe(event: dict[str, Any]) -> dict[str, Any]:
    """One access-feed entry made readable for the page."""
    ev = event["event"]
    return {
        "index": event["index"],
        "when": ev.get("at", event["logged_at"]),
        "logged_at": event["logged_at"],
        "type": ev["type"],
        "words": EVENT_WORDS.get(ev["type"], ev["type"]),
        "actor": ev.get("actor", ""),
        "matter": ev.get("matter"),
        "details": access_labels.readable(ev.get("details", [])),
        "revealed": event["kind"] == "reveal",
    }


def install_account_pages(api: FastAPI, app: App, sessions: SessionStore,
                          feed: Callable[[], AccessFeed | None],
                          pages: PageRenderer) -> None:
    router = APIRouter(prefix="/account", include_in_schema=False)

    @api.exception_handler(LoginRequired)
    async def to_login(request: Request, exc: LoginRequired) -> Response:
        if not exc.expired:
            return RedirectResponse("/account/login", status_code=303)
        response = RedirectResponse("/account/login?expired=1", status_code=303)
        _drop_cookie(response, request, COOKIE)  # say it once, then forget it
        return response

    @api.exception_handler(FormRefused)
    async def refused(request: Request, exc: FormRefused) -> Response:
        return pages.html("error.html", {
            "title": "This form cannot be accepted", "section": "account", "web": None,
            "message": "The form was not sent from a page of this site, or the page "
                       "was too old. Go back, reload the page and try again.",
        }, status=403)

    def current(request: Request) -> WebSession:
        cookie = request.cookies.get(COOKIE)
        web = sessions.get(cookie)
        if web is None:
            raise LoginRequired(expired=bool(cookie))
        return web

    async def checked_form(request: Request, web: WebSession,
                           limit: int = MAX_FORM_BYTES) -> dict[str, str]:
        form = await read_form(request, limit)
        if not same_token(form.get("csrf"), web.csrf):
            raise FormRefused("bad CSRF token")
        return form

    # Minutes a login's key stays cached (encrypted) for fast reconnects; 0: off.
    cache_minutes = -(-app.config.crypto.key_cache_ttl_s // 60)
    # How the server's log lines name an owner: in full, or by a keyed pseudonym.
    pseudonyms = (logs.Pseudonyms(logs.load_pseudonym_key(app.config.control_dir))
                  if app.config.log.addresses == "hashed" else None)

    def view(template: str, web: WebSession | None, status: int = 200,
             **context: Any) -> Response:
        return pages.html(template, {"section": "account", "web": web,
                                     "key_cache_minutes": cache_minutes, **context},
                          status=status)

    # -- login and logout ------------------------------------------------------------------

    def login_form(request: Request, *, status: int = 200, error: str | None = None,
                   address: str = "") -> Response:
        token = new_token()
        notice = None
        if request.query_params.get("expired"):
            notice = (f"Your session ended after {int(sessions.idle_s // 60)} minutes "
                      "without activity. Please log in again.")
        elif request.query_params.get("bye"):
            notice = ("You are logged out. This session's unlocked key is gone from the "
                      "server's memory.")
        response = view("login.html", None, status, title="Log in to your privacy center",
                        csrf=token, error=error, notice=notice, address=address,
                        idle_minutes=int(sessions.idle_s // 60))
        _set_cookie(response, request, LOGIN_COOKIE, token)
        return response

    @router.get("/login")
    async def login_page(request: Request) -> Response:
        if sessions.get(request.cookies.get(COOKIE)) is not None:
            return RedirectResponse("/account", status_code=303)
        return login_form(request)

    @router.post("/login")
    async def login(request: Request) -> Response:
        form = await read_form(request)
        if not same_token(form.get("csrf"), request.cookies.get(LOGIN_COOKIE)):
            raise FormRefused("bad login CSRF token")
        address = form.get("address", "").strip()
        try:
            account = await app.accounts.authenticate(address, form.get("password", ""),
                                                      client=_client(request))
        except AuthenticationFailed:
            return login_form(request, status=401, address=address,
                              error="That address and password do not match an account.")
        web = sessions.open(account)
        response = RedirectResponse("/account", status_code=303)
        _set_cookie(response, request, COOKIE, web.id)
        _drop_cookie(response, request, LOGIN_COOKIE)
        return response

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        web = current(request)
        await checked_form(request, web)
        sessions.close(web.id)
        response = RedirectResponse("/account/login?bye=1", status_code=303)
        _drop_cookie(response, request, COOKIE)
        return response

    # -- where your mail lives ------------------------------------------------------------

    @router.get("")
    async def overview(request: Request) -> Response:
        web = current(request)
        account = web.account
        regions = {r.id: r.country for r in await app.control.list_regions()}
        boxes = []
        total_count = total_bytes = 0
        for box in await app.mailboxes.list_mailboxes(account):
            msgs = await app.mailboxes.messages(account, box.id)
            size = sum(m.size for m in msgs)
            boxes.append({"name": box.name, "count": len(msgs), "bytes": size})
            total_count += len(msgs)
            total_bytes += size
        # Fresh: custody may have changed since this session logged in.
        record = (await app.accounts.resolve(account.address)).record
        boxes.sort(key=lambda b: (b["name"] != "INBOX", str(b["name"]).lower()))
        limits = await app.quotas.limits(account.address)
        usage = await app.quotas.usage(account.ref, fresh=True)
        return view("account/overview.html", web, title="Where your mail lives",
                    tab="overview", address=account.address, region=account.ref.region,
                    country=regions.get(account.ref.region, ""),
                    key_id=record.key_id.hex(), custody=record.custody,
                    e2e_fingerprint=_fingerprint(record.openpgp_cert),
                    created=format_time(record.created), boxes=boxes,
                    total_count=total_count, total_bytes=total_bytes,
                    quota=limits, usage=usage,
                    other_regions=sorted(r for r in regions if r != account.ref.region),
                    spam_filter=app.config.spam.rspamd.strip().lower() == "on",
                    log_pseudonym=pseudonyms(account.address) if pseudonyms else None)

    # -- who touched your account ---------------------------------------------------------

    @router.get("/access")
    async def access(request: Request) -> Response:
        web = current(request)
        source = feed()
        if source is None:
            return view("account/access.html", web, title="Who touched your account",
                        tab="access", available=False, events=[], head=None,
                        next_after=None, after=-1)
        try:
            after = max(-1, int(request.query_params.get("after", "-1")))
        except ValueError:
            after = -1
        try:
            page = await source.page_async(web.address, after, FEED_PAGE)
        except LetterlockError:
            return view("account/access.html", web, 503, title="Who touched your account",
                        tab="access", available=False, events=[], head=None,
                        next_after=None, after=after)
        seen = await log_seen.check_seen(request, source, page.head)
        response = view("account/access.html", web, title="Who touched your account",
                        tab="access", available=True,
                        events=[describe(e) for e in page.events], head=page.head,
                        next_after=page.next_after, after=after, seen=seen)
        log_seen.remember(response, request, seen, page.head)
        return response

    @router.get("/access/{index}/proof.json")
    async def proof(request: Request, index: int) -> Response:
        web = current(request)
        source = feed()
        if source is None or index < 0:
            return JSONResponse({"detail": "no such event"}, status_code=404)
        try:
            page = await source.page_async(web.address, index - 1, 1)
        except (NotFound, InvalidInput):
            page = None
        if page is None or not page.events or page.events[0]["index"] != index:
            # Either no such event, or it is not about this account: same answer.
            return JSONResponse({"detail": "no such event"}, status_code=404)
        return JSONResponse(page.events[0]["proof"], headers={
            "Content-Disposition": f'attachment; filename="letterlock-event-{index}.json"'})

    # -- legal requests about you ---------------------------------------------------------

    @router.get("/legal")
    async def legal(request: Request) -> Response:
        web = current(request)
        context = await legal_tab(app.legal, feed(), web.address, datetime.now(UTC),
                                  describe)
        return view("account/legal.html", web, title="Legal requests about you",
                    tab="legal", **context)

    # -- filters ----------------------------------------------------------------------------

    @router.get("/filters")
    async def filters_page(request: Request) -> Response:
        web = current(request)
        context = await filter_disclosure(app.filters, web.account)
        return view("account/filters.html", web, title="Your filters and what they reveal",
                    tab="filters", sieve_port=app.config.sieve.port, **context)

    # -- addresses, vacation, junk (account_settings.py) ----------------------------------

    install_settings_pages(router, app, PageTools(current, checked_form, view))

    # -- export ---------------------------------------------------------------------------

    @router.get("/export")
    async def export_page(request: Request) -> Response:
        web = current(request)
        boxes = []
        for box in await app.mailboxes.list_mailboxes(web.account):
            msgs = await app.mailboxes.messages(web.account, box.id)
            boxes.append({"name": box.name, "count": len(msgs),
                          "bytes": sum(m.size for m in msgs)})
        boxes.sort(key=lambda b: (b["name"] != "INBOX", str(b["name"]).lower()))
        return view("account/export.html", web, title="Take your mail with you",
                    tab="export", boxes=boxes)

    @router.get("/export.mbox")
    async def export_mbox(request: Request) -> Response:
        web = current(request)
        day = datetime.now(UTC).strftime("%Y-%m-%d")
        name = web.address.replace("@", "-at-")
        return StreamingResponse(
            stream_mbox(app.mailboxes, web.account), media_type="application/mbox",
            headers={"Content-Disposition": f'attachment; filename="{name}-{day}.mbox"'})

    # -- password -------------------------------------------------------------------------

    def password_form(web: WebSession, status: int = 200, error: str | None = None,
                      done: bool = False, ended: int = 0) -> Response:
        return view("account/password.html", web, status, title="Change your password",
                    tab="password", error=error, done=done, ended=ended,
                    min_length=MIN_PASSWORD_LENGTH)

    @router.get("/password")
    async def password_page(request: Request) -> Response:
        return password_form(current(request))

    @router.post("/password")
    async def change_password(request: Request) -> Response:
        web = current(request)
        form = await checked_form(request, web)
        old, new = form.get("old", ""), form.get("new", "")
        if new != form.get("confirm", ""):
            return password_form(web, 422, "The two new passwords are not the same.")
        try:
            await app.accounts.change_password(web.address, old, new,
                                               client=_client(request))
        except AuthenticationFailed:
            return password_form(web, 403, "Your current password is not right.")
        except InvalidInput as exc:
            return password_form(web, 422, str(exc).capitalize() + ".")
        ended = sessions.close_others(web.address, keep=web.id)
        return password_form(web, done=True, ended=ended)

    # -- end-to-end mode ------------------------------------------------------------------

    async def encryption_form(web: WebSession, status: int = 200, error: str | None = None,
                              done: str | None = None) -> Response:
        record = (await app.accounts.resolve(web.address)).record
        return view("account/encryption.html", web, status,
                    title="End-to-end encryption", tab="encryption", error=error,
                    done=done, custody=record.custody,
                    fingerprint=_fingerprint(record.openpgp_cert))

    @router.get("/encryption")
    async def encryption_page(request: Request) -> Response:
        return await encryption_form(current(request))

    @router.post("/encryption")
    async def set_encryption(request: Request) -> Response:
        web = current(request)
        form = await checked_form(request, web, MAX_KEY_FORM_BYTES)
        switch_on = form.get("action") == "on"
        key = form.get("key", "").strip()
        if switch_on and not key:
            return await encryption_form(web, 422, "Paste your OpenPGP public key first.")
        try:
            await app.accounts.set_end_to_end(
                web.address, form.get("password", ""),
                key.encode("utf-8", "replace") if switch_on else None,
                client=_client(request))
        except AuthenticationFailed:
            return await encryption_form(web, 403, "Your password is not right.")
        except InvalidInput as exc:
            return await encryption_form(web, 422, str(exc)[:1].upper() + str(exc)[1:] + ".")
        return await encryption_form(web, done="on" if switch_on else "off")

    api.include_router(router)
