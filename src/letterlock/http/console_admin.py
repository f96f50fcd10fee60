"""The admin areas of the operator console (role ``admin`` only; other roles get 403).

    GET  /console/accounts         accounts with region, custody and quota use
    POST /console/accounts         create one (region, initial password)
    POST /console/accounts/move    move one to another region
    POST /console/accounts/reset   new password with the owner's recovery code
    POST /console/accounts/disable disable or enable one (logins refused, mail kept)
    POST /console/accounts/delete  delete one and all its mail
    POST /console/accounts/quota   limits of an account, @domain or the default
    GET  /console/domains          hosted domains and the DNS records to publish
    POST /console/domains          host another domain
    GET  /console/domains/{d}/check   the records looked up in the DNS, compared
    GET  /console/regions          regions and their storage
    GET  /console/queue            the outbound queue
    POST /console/regions          add a region
    POST /console/queue/{action}   retry, hold or delete one message
    GET  /console/certificates     the certificate the TLS listeners serve
    GET  /console/operators        operators and their roles
    POST /console/operators        add one; POST /console/operators/{remove,password}

The backups, audit log and mail export/import areas are in ``console_operations``.
Each POST is registered with ``console_forms.AdminForms.post`` (the form and its CSRF
token, the service, the flash message, the redirect).

Every action calls the service the command line calls, with the signed-in operator's
name as the actor of its audit record; queue changes (which the audit log does not
hold) are a ``queue:message:*`` log line naming the operator.
"""

# No `from __future__ import annotations`: FastAPI must see the handlers' annotations.

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response

from letterlock.app import App
from letterlock.errors import AuthenticationFailed, InvalidInput, LetterlockError, Refused
from letterlock.http.console_addresses import install_console_addresses
from letterlock.http.console_auth import ConsoleSession, ConsoleSessions, admin_only
from letterlock.http.console_forms import AdminForms, back, error_text
from letterlock.http.console_operations import install_console_operations
from letterlock.policy import format_time
from letterlock.services.accounts import setup
from letterlock.services.accounts.accounts import MIN_PASSWORD_LENGTH
from letterlock.services.accounts.addresses import normalise_domain
from letterlock.services.accounts.operators import ROLES
from letterlock.services.accounts.quotas import Quota, parse_size
from letterlock.services.mail import dkim_keys
from letterlock.services.mail.queue_entry import FAILED, PENDING, QueueEntry
from letterlock.services.operations import dns_check, health, tls_reports
from letterlock.services.operations.log_events import LogEvent, event
from letterlock.services.operations.queue_admin import QueueAdmin
from letterlock.storage.models import Region
from letterlock.units import human_size

DNS_NAMESERVERS: list[str] | None = None
"""Nameservers of the live DNS check (``host`` or ``host:port``); None: the system's.
Tests point it at a closed port."""


def install_console_admin(api: FastAPI, app: App, sessions: ConsoleSessions,
                          view: Callable[..., Response]) -> None:
    router = APIRouter(prefix="/console", include_in_schema=False)
    forms = AdminForms(router, sessions)
    form_of = forms.form_of

    # -- accounts -------------------------------------------------------------------------

    async def accounts_page(console: ConsoleSession, status: int = 200,
                            error: str | None = None, **kept: str) -> Response:
        regions = await app.control.list_regions()
        rows: list[dict[str, Any]] = []
        for info in await app.accounts.list():
            try:
                ref = await app.accounts.resolve(info.address)
                usage = await app.quotas.usage(ref, fresh=True)
                limits = await app.quotas.limits(info.address)
                used: tuple[int, int, int | None] | None = (usage.messages, usage.storage,
                                                            limits.storage)
            except LetterlockError:
                used = None
            rows.append({"address": info.address, "region": info.region,
                         "created": format_time(info.created), "custody": info.custody,
                         "used": used})
        off = await asyncio.to_thread(
            lambda: {str(r["address"]) for r in rows
                     if app.accounts.is_disabled(str(r["address"]))})
        for row in rows:
            row["disabled"] = row["address"] in off
        domains = [d.name for d in await app.control.list_domains()]
        return view("console/accounts.html", console, status, title="Accounts",
                    area="/console/accounts", accounts=rows, regions=regions,
                    domains=domains, error=error, kept=kept,
                    min_length=MIN_PASSWORD_LENGTH)

    forms.page("/accounts", accounts_page)

    @router.post("/accounts")
    async def create_account(request: Request) -> Response:
        console, form = await form_of(request)
        address, region = form.get("address", "").strip(), form.get("region", "")
        password = form.get("password", "")
        if password != form.get("confirm", ""):
            return await accounts_page(console, 422, "The two passwords are not the same.",
                                       address=address, region=region)
        try:
            ref, code = await app.accounts.create(address, region, password,
                                                  actor=console.name)
        except LetterlockError as exc:
            return await accounts_page(console, 422, error_text(exc), address=address,
                                       region=region)
        console.say(f"Created {ref.address} in region {ref.region}. Its recovery code, "
                    f"shown this once, for the owner to keep: {code}")
        return back("/console/accounts")

    @forms.post("/accounts/move", accounts_page, "/console/accounts")
    async def move_account(console: ConsoleSession, form: dict[str, str]) -> str:
        ref = await app.accounts.move(form.get("address", ""), form.get("region", ""),
                                      actor=console.name)
        return f"Moved {ref.address} and its mail to region {ref.region}."

    @forms.post("/accounts/reset", accounts_page, "/console/accounts", 422)
    async def reset_password(console: ConsoleSession, form: dict[str, str]) -> str:
        address = form.get("address", "")
        try:
            await app.accounts.recover(address, form.get("code", ""),
                                       form.get("password", ""), actor=console.name)
        except AuthenticationFailed:
            raise AuthenticationFailed(f"that recovery code does not open {address}: "
                                       "the password is unchanged") from None
        return f"New password set for {address}; its recovery code stays valid."

    @forms.post("/accounts/disable", accounts_page, "/console/accounts")
    async def disable_account(console: ConsoleSession, form: dict[str, str]) -> str:
        address, off = form.get("address", ""), form.get("action") != "enable"
        await app.accounts.set_disabled(address, off, actor=console.name)
        return (f"Disabled {address}: its logins are refused, its mail still arrives."
                if off else f"Enabled {address} again.")

    @forms.post("/accounts/delete", accounts_page, "/console/accounts")
    async def delete_account(console: ConsoleSession, form: dict[str, str]) -> str:
        address = form.get("address", "")
        if form.get("confirm", "") != address:
            raise InvalidInput("type the address again to delete it: nothing was "
                               "deleted")
        await app.accounts.delete(address, actor=console.name)
        return f"Deleted {address} and all its mail."

    @forms.post("/accounts/quota", accounts_page, "/console/accounts", 422)
    async def set_quota(_console: ConsoleSession, form: dict[str, str]) -> str:
        scope = form.get("scope", "").strip().lower()
        storage, count = form.get("storage", "").strip(), form.get("messages", "").strip()
        if count and not count.isdigit():
            raise InvalidInput(f"messages: {count!r} is not a whole number")
        quota = Quota(parse_size(storage) if storage else None,
                      int(count) if count else None)
        await app.quotas.set_limits(scope, quota)
        if quota.unlimited:
            return f"{scope}: no limits of its own."
        size = "unlimited" if quota.storage is None else human_size(quota.storage)
        count = "unlimited" if quota.messages is None else str(quota.messages)
        return f"{scope}: storage {size}, messages {count}."

    # -- domains --------------------------------------------------------------------------

    def records_of(domain: str) -> list[dkim_keys.DnsRecord]:
        key = dkim_keys.ensure_key(app.config.control_dir, domain)
        return dkim_keys.dns_records(domain, app.config.server.hostname, key)

    async def domains_page(console: ConsoleSession, status: int = 200,
                           error: str | None = None,
                           checked: dict[str, list[dns_check.RecordCheck]] | None = None,
                           ) -> Response:
        rows = []
        for domain in await app.control.list_domains():
            try:
                records = await asyncio.to_thread(records_of, domain.name)
                problem = ""
            except OSError as exc:
                records, problem = [], f"cannot read or make its DKIM key: {exc}"
            rows.append({"name": domain.name, "created": format_time(domain.created),
                         "records": records, "problem": problem,
                         "checked": (checked or {}).get(domain.name)})
        return view("console/domains.html", console, status, title="Domains",
                    area="/console/domains", domains=rows, error=error)

    forms.page("/domains", domains_page)

    @forms.post("/domains", domains_page, "/console/domains", 422)
    async def add_domain(console: ConsoleSession, form: dict[str, str]) -> str:
        name = normalise_domain(form.get("name", ""))
        await app.add_domain(name, actor=console.name)
        return f"Now hosting mail for {name}. Publish its DNS records below."

    @router.get("/domains/{name}/check")
    async def check_domain(request: Request, name: str) -> Response:
        console = admin_only(sessions, request)
        hosted = {d.name for d in await app.control.list_domains()}
        if name not in hosted:
            return await domains_page(console, 404, f"{name} is not hosted here.")
        try:
            records = await asyncio.to_thread(records_of, name)
        except OSError as exc:
            return await domains_page(console, 500, f"Cannot read or make the DKIM key of "
                                      f"{name}: {exc}")
        found = await dns_check.check(records, dns_check.resolver(DNS_NAMESERVERS))
        return await domains_page(console, checked={name: found})

    # -- regions --------------------------------------------------------------------------

    async def regions_page(console: ConsoleSession, status: int = 200,
                           error: str | None = None) -> Response:
        counts: dict[str, int] = {}
        for info in await app.accounts.list():
            counts[info.region] = counts.get(info.region, 0) + 1
        storage = await health.region_storage(app.config, app.cells)
        return view("console/regions.html", console, status, title="Regions and storage",
                    area="/console/regions", regions=storage, counts=counts, error=error)

    forms.page("/regions", regions_page)

    @forms.post("/regions", regions_page, "/console/regions", 422)
    async def add_region(console: ConsoleSession, form: dict[str, str]) -> str:
        region_id, country = setup.parse_region(
            f"{form.get('id', '').strip()}:{form.get('country', '').strip()}")
        await app.add_region(Region(region_id, country), actor=console.name)
        return f"Added region {region_id} ({country})."

    # -- queue ----------------------------------------------------------------------------

    def queue_admin() -> QueueAdmin:
        return QueueAdmin(app.config.home, app.config.run_dir)

    @router.get("/queue")
    async def queue(request: Request) -> Response:
        console = admin_only(sessions, request)
        entries = await asyncio.to_thread(lambda: queue_admin().entries())
        now = datetime.now(UTC)
        received, sent = await tls_reports.recent_reports(app.config.control_dir,
                                                          fsync=app.config.storage.fsync)
        return view("console/queue.html", console, title="Outbound queue",
                    area="/console/queue", entries=[_entry(e, now) for e in entries],
                    tls_received=received, tls_sent=sent)

    @router.post("/queue/{action}")
    async def change_queue(request: Request, action: str) -> Response:
        console, form = await form_of(request)
        if action not in ("retry", "hold", "delete"):
            return back("/console/queue")

        def run() -> str:
            admin = queue_admin()
            entry = admin.find(form.get("id", ""))
            if action == "retry":
                admin.retry(entry)
            elif action == "hold":
                admin.hold(entry)
            else:
                admin.delete(entry)
            admin.tell_server([entry])
            return entry.id

        try:
            entry_id = await asyncio.to_thread(run)
        except LetterlockError as exc:
            console.say(error_text(exc), "error")
            return back("/console/queue")
        event(LogEvent.OUTBOUND_DELETED if action == "delete" else LogEvent.OUTBOUND_CHANGED,
              outbound=entry_id, action=action, operator=console.name)
        words = {"retry": "will be tried now", "hold": "is on hold",
                 "delete": "is deleted (no bounce is sent)"}
        console.say(f"Message {entry_id} {words[action]}.")
        return back("/console/queue")

    # -- certificates ---------------------------------------------------------------------

    @router.get("/certificates")
    async def certificates(request: Request) -> Response:
        console = admin_only(sessions, request)
        cert = await asyncio.to_thread(health.certificate, app.config)
        return view("console/certificates.html", console, title="Certificates",
                    area="/console/certificates", cert=cert,
                    hostname=app.config.server.hostname)

    # -- operators ----------------------------------------------------------------------

    async def operators_page(console: ConsoleSession, status: int = 200,
                             error: str | None = None) -> Response:
        return view("console/operators.html", console, status, title="Operators",
                    area="/console/operators", operators=await app.operators.list(),
                    roles=ROLES, error=error, min_length=MIN_PASSWORD_LENGTH)

    forms.page("/operators", operators_page)

    @forms.post("/operators", operators_page, "/console/operators", 422)
    async def add_operator(console: ConsoleSession, form: dict[str, str]) -> str:
        added = await app.operators.add(form.get("name", ""), form.get("role", ""),
                                        form.get("password", ""), actor=console.name)
        return f"Added operator {added.name} with the role {added.role}."

    @forms.post("/operators/remove", operators_page, "/console/operators")
    async def remove_operator(console: ConsoleSession, form: dict[str, str]) -> str:
        name = form.get("name", "")
        if name == console.name:
            raise Refused("you cannot remove yourself: ask another admin")
        await app.operators.remove(name, actor=console.name)
        return f"Removed operator {name}; their API tokens stopped working."

    @forms.post("/operators/password", operators_page, "/console/operators", 422)
    async def operator_password(console: ConsoleSession, form: dict[str, str]) -> str:
        name = form.get("name", "")
        await app.operators.set_password(name, form.get("password", ""),
                                         actor=console.name)
        return f"New password set for operator {name}; their API tokens stopped working."

    install_console_addresses(forms, app, view)
    install_console_operations(forms, app, view)
    api.include_router(router)


def _entry(entry: QueueEntry, now: datetime) -> dict[str, Any]:
    waiting = [r for r in entry.recipients if r.state in (PENDING, FAILED)]
    reason = next((f"{r.status} {r.diagnostic}".strip() for r in waiting
                   if r.status or r.diagnostic), "")
    age = int((now - entry.created).total_seconds())
    return {"id": entry.id, "mail_from": entry.mail_from or "<>", "account": entry.account,
            "region": entry.region, "recipients": [r.address for r in entry.recipients],
            "attempts": entry.attempts, "held": entry.held,
            "age": f"{age // 86400} d {age % 86400 // 3600} h" if age >= 86400
            else f"{age // 3600} h {age % 3600 // 60} min",
            "reason": reason or ("not tried yet" if entry.attempts == 0 else ""),
            "next": "on hold" if entry.held else format_time(entry.next_attempt)}
