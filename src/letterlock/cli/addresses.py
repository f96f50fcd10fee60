"""``letterlock alias``, ``group``, ``domain alias``, ``domain catch-all`` and ``user
grant-send-as``: addresses beyond an account's own (docs/addresses.md).

Each link between an address and an account is stored in the account's region; the
commands take and print addresses only.
"""

from __future__ import annotations

import json

import click

from letterlock.app import App
from letterlock.cli.common import CliContext, fail, load_config, pass_ctx, run_with_app
from letterlock.services.mail.addresses import AddressInfo, AddressKind


def _print(entries: list[AddressInfo], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps([{"address": e.address, "kind": str(e.kind),
                                "targets": list(e.targets)} for e in entries]))
        return
    for e in entries:
        click.echo(f"{e.address}\t{e.kind}\t{', '.join(e.targets) or '(none)'}")


# ----------------------------------------------------------------------------- alias


@click.group("alias")
def alias_group() -> None:
    """Aliases: more addresses of one account (each receives its mail and may be its
    sender)."""


@alias_group.command("add")
@click.argument("alias")
@click.argument("account")
@pass_ctx
def alias_add(ctx: CliContext, alias: str, account: str) -> None:
    """Make ALIAS another address of ACCOUNT."""
    config = load_config(ctx)
    normal = run_with_app(config, lambda app: app.addresses.add_alias(alias, account))
    click.echo(f"added alias {normal} -> {account.strip().lower()}")


@alias_group.command("remove")
@click.argument("alias")
@pass_ctx
def alias_remove(ctx: CliContext, alias: str) -> None:
    """Remove ALIAS (mail to it is refused from now on)."""
    config = load_config(ctx)
    kind = run_with_app(config, lambda app: app.addresses.remove(alias))
    click.echo(f"removed {kind} {alias.strip().lower()}")


@alias_group.command("list")
@click.option("--account", default=None, help="Only the addresses leading to ACCOUNT.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_ctx
def alias_list(ctx: CliContext, account: str | None, as_json: bool) -> None:
    """List aliases, groups and catch-alls: address, kind, accounts it leads to."""
    config = load_config(ctx)
    _print(run_with_app(config, lambda app: app.addresses.entries(account)), as_json)


# ----------------------------------------------------------------------------- group


@click.group("group")
def group_group() -> None:
    """Group addresses: one address, a sealed copy for each member in the member's
    own region."""


@group_group.command("add")
@click.argument("group")
@click.argument("members", nargs=-1)
@pass_ctx
def group_add(ctx: CliContext, group: str, members: tuple[str, ...]) -> None:
    """Create GROUP with MEMBERS (accounts), or add MEMBERS to an existing GROUP."""
    config = load_config(ctx)

    async def go(app: App) -> str:
        normal = group.strip().lower()
        if await app.addresses.kind_of(normal) is AddressKind.GROUP:
            for member in members:
                await app.addresses.add_member(normal, member)
            return f"added {len(members)} member(s) to group {normal}"
        made = await app.addresses.add_group(group, list(members))
        return f"added group {made} with {len(members)} member(s)"

    click.echo(run_with_app(config, go))


@group_group.command("remove")
@click.argument("group")
@click.argument("members", nargs=-1)
@click.option("--yes", is_flag=True, help="Do not ask before removing the whole group.")
@pass_ctx
def group_remove(ctx: CliContext, group: str, members: tuple[str, ...], yes: bool) -> None:
    """Remove MEMBERS from GROUP, or without MEMBERS the whole group."""
    config = load_config(ctx)
    if members:
        async def go(app: App) -> None:
            for member in members:
                await app.addresses.remove_member(group, member)

        run_with_app(config, go)
        click.echo(f"removed {len(members)} member(s) from group {group.strip().lower()}")
        return
    if not yes and not click.confirm(f"Remove group {group} (mail to it is refused)?"):
        fail("not removed", 1)
    run_with_app(config, lambda app: app.addresses.remove(group))
    click.echo(f"removed group {group.strip().lower()}")


@group_group.command("members")
@click.argument("group")
@pass_ctx
def group_members(ctx: CliContext, group: str) -> None:
    """List the members of GROUP, one account a line."""
    config = load_config(ctx)
    for member in run_with_app(config, lambda app: app.addresses.members(group)):
        click.echo(member)


# ----------------------------------------------------------------------------- domains


@click.group("alias")
def domain_alias_group() -> None:
    """Domain aliases: mail to user@ALIAS is handled as mail to user@TARGET."""


@domain_alias_group.command("add")
@click.argument("alias")
@click.argument("target")
@pass_ctx
def domain_alias_add(ctx: CliContext, alias: str, target: str) -> None:
    """Make domain ALIAS stand for hosted domain TARGET."""
    config = load_config(ctx)
    run_with_app(config, lambda app: app.addresses.add_domain_alias(alias, target))
    click.echo(f"added domain alias {alias.strip().lower()} -> {target.strip().lower()}")


@domain_alias_group.command("remove")
@click.argument("alias")
@pass_ctx
def domain_alias_remove(ctx: CliContext, alias: str) -> None:
    """Stop accepting mail for domain ALIAS."""
    config = load_config(ctx)
    run_with_app(config, lambda app: app.addresses.remove_domain_alias(alias))
    click.echo(f"removed domain alias {alias.strip().lower()}")


@domain_alias_group.command("list")
@pass_ctx
def domain_alias_list(ctx: CliContext) -> None:
    """List domain aliases: alias, target."""
    config = load_config(ctx)
    for alias, target in run_with_app(config, lambda app: app.addresses.list_domain_aliases()):
        click.echo(f"{alias}\t{target}")


@click.group("catch-all")
def catch_all_group() -> None:
    """A domain's catch-all: the account that gets mail for any address of the domain
    that nothing else takes."""


@catch_all_group.command("set")
@click.argument("domain")
@click.argument("account")
@pass_ctx
def catch_all_set(ctx: CliContext, domain: str, account: str) -> None:
    """Send mail for unknown addresses of DOMAIN to ACCOUNT."""
    config = load_config(ctx)
    run_with_app(config, lambda app: app.addresses.set_catch_all(domain, account))
    click.echo(f"catch-all of {domain.strip().lower()} -> {account.strip().lower()}")


@catch_all_group.command("remove")
@click.argument("domain")
@pass_ctx
def catch_all_remove(ctx: CliContext, domain: str) -> None:
    """Refuse mail for unknown addresses of DOMAIN again (550 5.1.1)."""
    config = load_config(ctx)
    run_with_app(config, lambda app: app.addresses.remove("@" + domain.strip().lstrip("@")))
    click.echo(f"removed the catch-all of {domain.strip().lower()}")


# ----------------------------------------------------------------------------- send-as


@click.command("grant-send-as")
@click.argument("account")
@click.argument("address")
@pass_ctx
def grant_send_as(ctx: CliContext, account: str, address: str) -> None:
    """Let ACCOUNT send (MAIL FROM, From:, Sender:) as ADDRESS, or as every address of
    a domain with @DOMAIN."""
    config = load_config(ctx)
    changed = run_with_app(config, lambda app: app.addresses.grant_send_as(account, address))
    click.echo(f"{account} may send as {address}" + ("" if changed else " (already)"))


@click.command("revoke-send-as")
@click.argument("account")
@click.argument("address")
@pass_ctx
def revoke_send_as(ctx: CliContext, account: str, address: str) -> None:
    """Take back a grant-send-as."""
    config = load_config(ctx)
    changed = run_with_app(config, lambda app: app.addresses.grant_send_as(
        account, address, on=False))
    if not changed:
        fail(f"{account} had no grant to send as {address}", 1)
    click.echo(f"{account} may no longer send as {address}")


@click.command("send-as")
@click.argument("account")
@pass_ctx
def send_as_list(ctx: CliContext, account: str) -> None:
    """List what ACCOUNT was granted to send as (its own addresses and aliases are
    always allowed)."""
    config = load_config(ctx)
    for what in run_with_app(config, lambda app: app.addresses.grants(account)):
        click.echo(what)
