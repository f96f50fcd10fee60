"""``letterlock operator``: operator accounts (admin, legal, auditor) for the HTTP API.

Operators are people who run the service; they are not mail accounts and no role
can read mail.
"""

from __future__ import annotations

import json

import click

from letterlock.cli.common import (
    CliContext,
    ask_password,
    fail,
    load_config,
    pass_ctx,
    run_with_app,
)
from letterlock.policy import format_time
from letterlock.services.accounts.operators import ROLES


@click.group("operator")
def operator_group() -> None:
    """Operator accounts for the HTTP API (roles: admin, legal, auditor)."""


@operator_group.command("add")
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(ROLES),
              help="admin: everything but mail; legal: handles matters; auditor: reads.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@pass_ctx
def operator_add(ctx: CliContext, name: str, role: str, password_stdin: bool) -> None:
    """Add an operator NAME with a role and a password."""
    config = load_config(ctx)
    password = ask_password(password_stdin)

    added = run_with_app(config, lambda app: app.operators.add(name, role, password))
    click.echo(f"added operator {added.name} ({added.role})")


@operator_group.command("remove")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_ctx
def operator_remove(ctx: CliContext, name: str, yes: bool) -> None:
    """Remove operator NAME; its API tokens stop working at once."""
    config = load_config(ctx)
    if not yes and not click.confirm(f"Remove operator {name}?"):
        fail("not removed", 1)
    run_with_app(config, lambda app: app.operators.remove(name))
    click.echo(f"removed operator {name.strip().lower()}")


@operator_group.command("passwd")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@pass_ctx
def operator_passwd(ctx: CliContext, name: str, password_stdin: bool) -> None:
    """Set a new password for operator NAME; its API tokens stop working at once."""
    config = load_config(ctx)
    password = ask_password(password_stdin, "New password")
    run_with_app(config, lambda app: app.operators.set_password(name, password))
    click.echo(f"password set for operator {name.strip().lower()}; its tokens are revoked")


@operator_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_ctx
def operator_list(ctx: CliContext, as_json: bool) -> None:
    """List operators: name, role, creation time."""
    config = load_config(ctx)
    operators = run_with_app(config, lambda app: app.operators.list())
    if as_json:
        click.echo(json.dumps([{"name": o.name, "role": o.role,
                                "created": format_time(o.created)} for o in operators]))
        return
    for o in operators:
        click.echo(f"{o.name}\t{o.role}\t{format_time(o.created)}")
