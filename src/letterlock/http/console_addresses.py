"""The Addresses area of the operator console (role ``admin``): aliases, groups,
catch-alls and who may send as what, through the address service the command line's
``alias``, ``group``, ``catch-all`` and ``grant-send-as`` commands call.

    GET  /console/addresses              every alias, group and catch-all
    POST /console/addresses/alias        make an address another one of an account
    POST /console/addresses/group        make a group with its members
    POST /console/addresses/member       add (or remove) a group's member
    POST /console/addresses/catch-all    a domain's catch-all account
    POST /console/addresses/remove       remove an alias, group or catch-all
    POST /console/addresses/send-as      let an account send as an address (or stop)
    POST /console/addresses/domain-alias a domain whose mail is a hosted domain's (or not)
"""

# No `from __future__ import annotations`: FastAPI must see the handlers' annotations.

from collections.abc import Callable

from fastapi.responses import Response

from letterlock.app import App
from letterlock.errors import Refused
from letterlock.http.console_auth import ConsoleSession
from letterlock.http.console_forms import Action, AdminForms


def install_console_addresses(forms: AdminForms, app: App,
                              view: Callable[..., Response]) -> None:
    async def addresses_page(console: ConsoleSession, status: int = 200,
                             error: str | None = None) -> Response:
        return view("console/addresses.html", console, status, title="Addresses",
                    area="/console/addresses", entries=await app.addresses.entries(),
                    accounts=[a.address for a in await app.accounts.list()],
                    domains=[d.name for d in await app.control.list_domains()],
                    domain_aliases=await app.addresses.list_domain_aliases(), error=error)

    def post(path: str) -> Callable[[Action], Action]:
        return forms.post(path, addresses_page, "/console/addresses", 422)

    forms.page("/addresses", addresses_page)

    @post("/addresses/alias")
    async def add_alias(console: ConsoleSession, form: dict[str, str]) -> str:
        account = form.get("account", "")
        made = await app.addresses.add_alias(form.get("alias", ""), account,
                                             actor=console.name)
        return f"{made} now leads to {account}."

    @post("/addresses/group")
    async def add_group(console: ConsoleSession, form: dict[str, str]) -> str:
        members = form.get("members", "").replace(",", " ").split()
        made = await app.addresses.add_group(form.get("group", ""), members,
                                             actor=console.name)
        return f"Group {made} made with {len(members)} member(s)."

    @post("/addresses/member")
    async def member(console: ConsoleSession, form: dict[str, str]) -> str:
        group, account = form.get("group", ""), form.get("account", "")
        if form.get("action") == "remove":
            await app.addresses.remove_member(group, account, actor=console.name)
            return f"{account} is no longer a member of {group}."
        await app.addresses.add_member(group, account, actor=console.name)
        return f"{account} is now a member of {group}."

    @post("/addresses/catch-all")
    async def catch_all(console: ConsoleSession, form: dict[str, str]) -> str:
        domain, account = form.get("domain", ""), form.get("account", "")
        await app.addresses.set_catch_all(domain, account, actor=console.name)
        return f"Mail to any other address of {domain} goes to {account}."

    @post("/addresses/remove")
    async def remove(console: ConsoleSession, form: dict[str, str]) -> str:
        address = form.get("address", "")
        kind = await app.addresses.remove(address, actor=console.name)
        return f"Removed {kind} {address}; mail to it is refused from now on."

    @post("/addresses/send-as")
    async def send_as(console: ConsoleSession, form: dict[str, str]) -> str:
        account, address = form.get("account", ""), form.get("address", "")
        on = form.get("action") != "revoke"
        if not await app.addresses.grant_send_as(account, address, on=on,
                                                 actor=console.name):
            raise Refused(f"nothing changed: {account} {'already' if on else 'never'} "
                          f"could send as {address}")
        return (f"{account} may now send as {address}." if on
                else f"{account} may no longer send as {address}.")

    @post("/addresses/domain-alias")
    async def domain_alias(console: ConsoleSession, form: dict[str, str]) -> str:
        alias = form.get("alias", "").strip().lower()
        if form.get("action") == "remove":
            await app.addresses.remove_domain_alias(alias, actor=console.name)
            return f"Mail to {alias} is no longer taken."
        target = form.get("domain", "")
        await app.addresses.add_domain_alias(alias, target, actor=console.name)
        return f"Mail to any address of {alias} goes to the same name at {target}."
