"""``letterlock legal impact``: every stored matter decided again under another
profile or edited policies, and what would change (services/legal/impact.py).
Read-only: no matter, hold, notice, package or audit event is written; the run
itself is one ``legal:impact:run`` log line."""

from __future__ import annotations

import json
from pathlib import Path

import click

from letterlock.app import App
from letterlock.cli.common import CliContext, fail, load_config, run_with_app
from letterlock.errors import ConfigError
from letterlock.policy import (
    SHIPPED_PROFILES,
    PolicyEngine,
    Profile,
    load_jurisdictions,
    load_profile,
    validate,
)
from letterlock.services.legal.impact import ImpactReport, describe
from letterlock.services.operations import logs

ACTOR = "operator"
FORMATS_DOC = "docs/legal-formats.md"


def _profile(profile: str | None, policy_dir: Path | None) -> Profile:
    """The policies to decide under; a policy directory is validated first. Bad
    policies end the command with status 2, each problem on its own line."""
    if (profile is None) == (policy_dir is None):
        fail("give exactly one of --profile NAME or --policy-dir DIR", 2)
    if policy_dir is not None:
        problems = validate(policy_dir)
        for problem in problems:
            click.echo(str(problem), err=True)
        if problems:
            fail(f"{policy_dir}: {len(problems)} problem(s) in the policies; nothing "
                 "was decided", 2)
    try:
        return load_profile(policy_dir if policy_dir is not None else str(profile))
    except ConfigError as exc:
        fail(str(exc), 2)


@click.command("impact")
@click.option("--profile", default=None,
              help=f"Decide under this shipped profile ({', '.join(SHIPPED_PROFILES)}).")
@click.option("--policy-dir", default=None, type=click.Path(path_type=Path),
              help="Decide under the policies of this directory (validated first).")
@click.option("--json", "as_json", is_flag=True,
              help="Print the report as JSON (docs/legal-requests.md).")
@click.pass_context
def impact_cmd(ctx: click.Context, profile: str | None, policy_dir: Path | None,
               as_json: bool) -> None:
    """What-if over history: decide every stored matter again (its recorded request
    and facts, at the time it was first evaluated) under --profile or --policy-dir,
    and print per matter the outcomes and cited policies then -> now, the
    categories that would be handed over or withheld, and totals. Changes nothing."""
    chosen = _profile(profile, policy_dir)
    obj = ctx.find_object(CliContext)
    if obj is None:
        fail("no HOME", 2)
    config = load_config(obj)
    engine = PolicyEngine(chosen, load_jurisdictions())
    label = str(policy_dir) if policy_dir is not None else chosen.name

    async def go(app: App) -> ImpactReport:
        return await app.legal_impact.run(engine, ACTOR, label)

    stop_logging = logs.configure(config)
    try:
        report = run_with_app(config, go)
    finally:
        stop_logging()
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        for line in describe(report):
            click.echo(line)
