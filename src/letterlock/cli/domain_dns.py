"""`letterlock domain show D`: the DNS records to publish for a hosted domain (MX,
SPF, DKIM, DMARC), making the domain's DKIM key first if it has none yet."""

from __future__ import annotations

import json

import click

from letterlock.cli.common import CliContext, exit_code_for, fail, pass_ctx, run_with_app
from letterlock.errors import ConfigError, InvalidInput, UnknownDomain
from letterlock.services.accounts.addresses import normalise_domain
from letterlock.services.mail import dkim_keys


@click.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the records as JSON.")
@pass_ctx
def show(ctx: CliContext, name: str, as_json: bool) -> None:
    """Print the DNS records to publish for domain NAME."""
    try:
        name = normalise_domain(name)
        config = ctx.config()
    except (InvalidInput, ConfigError) as exc:
        fail(str(exc), 2)

    domains = run_with_app(config, lambda app: app.control.list_domains())
    if name not in {d.name for d in domains}:
        fail(f"domain {name} is not hosted here", exit_code_for(UnknownDomain()))
    try:
        key = dkim_keys.ensure_key(config.control_dir, name)
    except OSError as exc:
        fail(f"cannot read or make the DKIM key of {name}: {exc}")
    records = dkim_keys.dns_records(name, config.server.hostname, key)
    if as_json:
        click.echo(json.dumps([{"name": r.name, "type": r.type, "value": r.value,
                                "purpose": r.purpose} for r in records], indent=2))
        return
    for record in records:
        click.echo(f"; {record.purpose}")
        click.echo(record.zone_line())

