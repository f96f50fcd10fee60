"""``letterlock legal approve`` and ``legal reject-approval``: the second operator of
four-eyes approval (services/legal/approval.py). ``--actor`` names an operator
(``letterlock operator list``) with role ``legal`` or ``admin``; an auditor, an unknown
name, the matter's filer or the decision's proposer is refused with status 2."""

from __future__ import annotations

import json

import click

from letterlock.app import App
from letterlock.cli.common import CliContext, fail, load_config, run_with_app
from letterlock.errors import NotFound
from letterlock.services.legal.approval import SelfApproval
from letterlock.services.legal.matter import Matter

ACTING_ROLES = frozenset({"legal", "admin"})


async def _acting(app: App, actor: str) -> str:
    """``actor`` if it names an operator who may act on legal matters; else exit 2."""
    try:
        operator = await app.operators.get(actor)
    except NotFound:
        fail(f"--actor: no operator {actor} (letterlock operator add)", 2)
    if operator.role not in ACTING_ROLES:
        fail(f"--actor: {actor} has role {operator.role}; only legal or admin operators "
             "may approve or refuse a decision", 2)
    return operator.name


def _report(matter: Matter, as_json: bool, what: str) -> None:
    if as_json:
        click.echo(json.dumps(matter.to_json(), indent=2))
        return
    click.echo(f"{matter.id}: {what}, {matter.state}")
    if matter.package:
        click.echo(f"package: {matter.package}")


@click.command("approve")
@click.argument("matter_id")
@click.option("--actor", required=True,
              help="The approving operator (role legal or admin; not the filer or the "
                   "proposer).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def approve_cmd(ctx: click.Context, matter_id: str, actor: str, as_json: bool) -> None:
    """Approve the decision awaiting a second operator (four-eyes): it is executed now
    (holds, production package, user notice), exactly as decided."""
    config = load_config(ctx.find_object(CliContext) or fail("no HOME", 2))

    async def work(app: App) -> Matter:
        name = await _acting(app, actor)
        try:
            return await app.legal.approve(matter_id, name)
        except SelfApproval as exc:
            fail(str(exc), 2)
    matter = run_with_app(config, work)
    _report(matter, as_json, f"approved by {actor}")


@click.command("reject-approval")
@click.argument("matter_id")
@click.option("--actor", required=True, help="The refusing operator (role legal or admin).")
@click.option("--reason", required=True, help="Why the proposed decision is refused.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def reject_approval_cmd(ctx: click.Context, matter_id: str, actor: str, reason: str,
                        as_json: bool) -> None:
    """Refuse the decision awaiting approval: nothing is executed, and the matter is
    to be decided again."""
    config = load_config(ctx.find_object(CliContext) or fail("no HOME", 2))

    async def work(app: App) -> Matter:
        return await app.legal.reject_approval(matter_id, await _acting(app, actor), reason)
    matter = run_with_app(config, work)
    _report(matter, as_json, f"proposed decision refused by {actor}")
