"""`letterlock` command line: administration of a data directory (HOME) and `serve`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from letterlock import app as app_mod
from letterlock import config as config_mod
from letterlock.cli import addresses as _addresses
from letterlock.cli.backup import backup_cmd as _backup_cmd
from letterlock.cli.backup import restore_cmd as _restore_cmd
from letterlock.cli.common import (
    CliContext,
    ask_password,
    console,
    default_home,
    fail,
    listener_options,
    load_config,
    pass_ctx,
    read_stdin_lines,
    run,
    run_with_app,
    warn_unknown_env,
)
from letterlock.cli.domain_dns import show as _domain_show
from letterlock.cli.legal import legal as _legal
from letterlock.cli.legal_file import FILE_COMMANDS
from letterlock.cli.log import log_group as _log_group
from letterlock.cli.mail import mail as _mail_group
from letterlock.cli.operators import operator_group as _operator_group
from letterlock.cli.queue import queue_group as _queue_group
from letterlock.cli.quota import quota_group as _quota_group
from letterlock.cli.report import report_group as _report_group
from letterlock.cli.tls_reports import tls_reports_group as _tls_reports_group
from letterlock.crypto import openpgp
from letterlock.errors import InvalidInput
from letterlock.services.accounts import setup
from letterlock.services.accounts.addresses import normalise_address, normalise_domain
from letterlock.services.operations import logs
from letterlock.storage.models import Region

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"]}


@click.group(context_settings=CONTEXT_SETTINGS)
@click.option("--home", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Data directory (default: $LETTERLOCK_HOME or ./var).")
@click.version_option(package_name="letterlock")
@click.pass_context
def cli(ctx: click.Context, home: Path | None) -> None:
    """letterlock: a mail server where your email belongs to you."""
    warn_unknown_env()
    ctx.obj = CliContext(home or default_home(), {})


# ----------------------------------------------------------------------------- init


@cli.command()
@click.option("--domain", "domains", multiple=True, help="Mail domain to host (repeatable).")
@click.option("--region", "regions", multiple=True,
              help="Region as ID:CC, e.g. eu-dublin:IE (repeatable).")
@click.option("--operator-country", default=None, help="ISO country of the operator's seat.")
@click.option("--profile", default=None, type=click.Choice(setup.PROFILES),
              help="Legal policy profile that recommends decisions.")
@listener_options
@pass_ctx
def init(ctx: CliContext, domains: tuple[str, ...], regions: tuple[str, ...],
         operator_country: str | None, profile: str | None,
         listeners: tuple[setup.Setting, ...]) -> None:
    """Initialise HOME (defaults: domain example.test, regions us-east:US and
    eu-dublin:IE, operator country US, profile location-2016). Listener options are
    written to HOME/letterlock.toml, so `serve` uses them; run `init` again to
    change one."""
    try:
        options = setup.build_options([normalise_domain(d) for d in domains], regions,
                                      operator_country, profile, listeners)
    except InvalidInput as exc:
        fail(str(exc), 2)
    config = load_config(ctx)
    created = run(lambda: app_mod.initialise(config, options))
    for line in created:
        click.echo(f"created {line}")
    click.echo(f"initialised {config.home}")


# ----------------------------------------------------------------------------- config


@cli.command("config")
@pass_ctx
def config_cmd(ctx: CliContext) -> None:
    """Show every configuration option with its value and meaning."""
    config = load_config(ctx)
    table = Table(title=f"configuration ({config.home / config_mod.CONFIG_FILE})")
    table.add_column("option")
    table.add_column("value")
    table.add_column("unit")
    table.add_column("meaning")
    for option in config_mod.describe():
        section, name = option.name.split(".")
        value = getattr(getattr(config, section), name)
        table.add_row(option.name, repr(value), option.unit, option.doc)
    console().print(table)


@cli.command("hash-address")
@click.argument("addresses", nargs=-1, required=True)
@pass_ctx
def hash_address(ctx: CliContext, addresses: tuple[str, ...]) -> None:
    """Print the pseudonym the server's log lines carry for each ADDRESS with
    log.addresses = hashed (to find an account's lines: grep for it)."""
    config = load_config(ctx)
    for address in addresses:
        click.echo(f"{address}\t{logs.pseudonym(config, address)}")


# ----------------------------------------------------------------------------- regions


@cli.group()
def region() -> None:
    """Regions (one jurisdiction each; every mailbox lives in exactly one)."""


@region.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_ctx
def region_list(ctx: CliContext, as_json: bool) -> None:
    """List regions with their country."""
    config = load_config(ctx)
    regions = run_with_app(config, lambda app: app.control.list_regions())
    if as_json:
        click.echo(json.dumps([{"id": r.id, "country": r.country} for r in regions]))
        return
    for r in regions:
        click.echo(f"{r.id}\t{r.country}")


@region.command("add")
@click.argument("spec")
@pass_ctx
def region_add(ctx: CliContext, spec: str) -> None:
    """Add a region given as ID:CC."""
    try:
        region_id, country = setup.parse_region(spec)
    except InvalidInput as exc:
        fail(str(exc), 2)
    config = load_config(ctx)
    run_with_app(config, lambda app: app.add_region(Region(region_id, country)))
    click.echo(f"added region {region_id} ({country})")


# ----------------------------------------------------------------------------- domains


@cli.group()
def domain() -> None:
    """Hosted mail domains."""


@domain.command("add")
@click.argument("name")
@pass_ctx
def domain_add(ctx: CliContext, name: str) -> None:
    """Host mail for domain NAME."""
    try:
        name = normalise_domain(name)
    except InvalidInput as exc:
        fail(str(exc), 2)
    config = load_config(ctx)
    run_with_app(config, lambda app: app.add_domain(name))
    click.echo(f"added domain {name}")


@domain.command("list")
@pass_ctx
def domain_list(ctx: CliContext) -> None:
    """List hosted domains."""
    config = load_config(ctx)
    for d in run_with_app(config, lambda app: app.control.list_domains()):
        click.echo(d.name)


# ----------------------------------------------------------------------------- users


@cli.group()
def user() -> None:
    """Mail accounts."""


@user.command("add")
@click.argument("address")
@click.option("--region", "region_id", required=True, help="Home region id of the account.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@pass_ctx
def user_add(ctx: CliContext, address: str, region_id: str, password_stdin: bool) -> None:
    """Create an account in a region; prints its recovery code once."""
    config = load_config(ctx)
    password = ask_password(password_stdin)

    _ref, code = run_with_app(config,
                              lambda app: app.accounts.create(address, region_id, password))
    click.echo(f"created {normalise_address(address)} in region {region_id}")
    click.echo(f"recovery code (shown once, keep it safe): {code}")


@user.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_ctx
def user_list(ctx: CliContext, as_json: bool) -> None:
    """List accounts: address, region, creation time (and, with --json, the key
    custody: sealed or e2e)."""
    config = load_config(ctx)
    infos = run_with_app(config, lambda app: app.accounts.list())
    if as_json:
        click.echo(json.dumps([{"address": i.address, "region": i.region,
                                "created": i.created.isoformat(), "custody": i.custody}
                               for i in infos]))
        return
    for i in infos:
        click.echo(f"{i.address}\t{i.region}\t{i.created.isoformat(timespec='seconds')}")


@user.command("passwd")
@click.argument("address")
@pass_ctx
def user_passwd(ctx: CliContext, address: str) -> None:
    """Change a password: old and new password on standard input, one per line."""
    config = load_config(ctx)
    old, new = read_stdin_lines(2, "the old and the new password")

    run_with_app(config, lambda app: app.accounts.change_password(address, old, new))
    click.echo(f"password changed for {address}")


@user.command("recover")
@click.argument("address")
@pass_ctx
def user_recover(ctx: CliContext, address: str) -> None:
    """Set a new password with the recovery code: code and new password on standard
    input, one per line."""
    config = load_config(ctx)
    code, new = read_stdin_lines(2, "the recovery code and the new password")

    run_with_app(config, lambda app: app.accounts.recover(address, code, new))
    click.echo(f"password reset for {address}; the recovery code stays valid")


@user.command("e2e")
@click.argument("address")
@click.option("--key", "key", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The owner's OpenPGP certificate (public key), armored or binary.")
@click.option("--off", is_flag=True, help="Switch end-to-end mode off again.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@pass_ctx
def user_e2e(ctx: CliContext, address: str, key: Path | None, off: bool,
             password_stdin: bool) -> None:
    """End-to-end mode: mail delivered from now on is encrypted (PGP/MIME) to the
    owner's own OpenPGP key, which the server never holds. Needs the owner's
    password. Mail already stored is left as it is."""
    if (key is None) == (not off):
        fail("give either --key FILE or --off", 2)
    config = load_config(ctx)
    certificate = None if key is None else key.read_bytes()
    password = ask_password(password_stdin)
    ref = run_with_app(config,
                       lambda app: app.accounts.set_end_to_end(address, password, certificate))
    if ref.record.custody == "e2e":
        info = openpgp.describe(ref.record.openpgp_cert)
        click.echo(f"{address}: end-to-end, mail is encrypted to {info.fingerprint} "
                   f"({', '.join(info.user_ids) or 'no user id'})")
    else:
        click.echo(f"{address}: sealed (end-to-end mode off)")


@user.command("delete")
@click.argument("address")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_ctx
def user_delete(ctx: CliContext, address: str, yes: bool) -> None:
    """Delete an account and all its mail (refused while a legal matter is open)."""
    config = load_config(ctx)
    if not yes and not click.confirm(f"Delete {address} and all its mail for good?"):
        fail("not deleted", 1)
    run_with_app(config, lambda app: app.accounts.delete(address))
    click.echo(f"deleted {address}")


@user.command("disable")
@click.argument("address")
@pass_ctx
def user_disable(ctx: CliContext, address: str) -> None:
    """Refuse the account's logins (IMAP, sending, the privacy center); its mail still
    arrives."""
    config = load_config(ctx)
    run_with_app(config, lambda app: app.accounts.set_disabled(address, True))
    click.echo(f"disabled {address}: its logins are refused, its mail still arrives")


@user.command("enable")
@click.argument("address")
@pass_ctx
def user_enable(ctx: CliContext, address: str) -> None:
    """Let a disabled account log in again."""
    config = load_config(ctx)
    run_with_app(config, lambda app: app.accounts.set_disabled(address, False))
    click.echo(f"enabled {address}")


@user.command("move")
@click.argument("address")
@click.option("--region", "region_id", required=True, help="Region to move the account to.")
@pass_ctx
def user_move(ctx: CliContext, address: str, region_id: str) -> None:
    """Move an account and all its mail to another region (refused while a legal
    matter is open); nothing of it is left in the old region."""
    config = load_config(ctx)
    run_with_app(config, lambda app: app.accounts.move(address, region_id))
    click.echo(f"moved {address} to region {region_id}")


# ----------------------------------------------------------------------------- serve


@cli.command()
@listener_options
@click.option("--demo", is_flag=True, help="Create demo accounts and mail.")
@click.pass_context
def serve(click_ctx: click.Context, listeners: tuple[setup.Setting, ...],
          demo: bool) -> None:
    """Run every listener (initialises an empty HOME with the defaults). Listener
    options apply to this run only; `init` with them keeps them."""
    from letterlock.server import serve as serve_main

    ctx: CliContext = click_ctx.obj
    overrides: dict[str, dict[str, Any]] = {}
    for section, name, value in listeners:
        overrides.setdefault(section, {})[name] = value
    config = CliContext(ctx.home, overrides).config()
    run(lambda: serve_main(config, demo=demo))


# ----------------------------------------------------------------------------- groups
# Command groups of other front-end modules are registered here, one line each.
domain.add_command(_domain_show)
domain.add_command(_addresses.domain_alias_group)
domain.add_command(_addresses.catch_all_group)
user.add_command(_addresses.grant_send_as)
user.add_command(_addresses.revoke_send_as)
user.add_command(_addresses.send_as_list)
cli.add_command(_addresses.alias_group)
cli.add_command(_quota_group)
cli.add_command(_addresses.group_group)
cli.add_command(_legal)
for _command in FILE_COMMANDS:
    _legal.add_command(_command)
cli.add_command(_log_group)
cli.add_command(_mail_group)
cli.add_command(_report_group)
cli.add_command(_operator_group)
cli.add_command(_queue_group)
cli.add_command(_tls_reports_group)
cli.add_command(_backup_cmd)
cli.add_command(_restore_cmd)


def main() -> None:
    cli(prog_name="letterlock")


if __name__ == "__main__":
    main()
