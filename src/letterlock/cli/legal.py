"""``letterlock legal``: what-if evaluation and policy validation (pure, no HOME
needed beyond its configuration), and the legal-matter workflow of the running
system."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from letterlock.cli.common import CliContext, exit_code_for, fail
from letterlock.config import Config, LegalConfig
from letterlock.errors import ConfigError, InvalidInput, LetterlockError
from letterlock.policy import (
    SHIPPED_PROFILES,
    Decision,
    PolicyEngine,
    default_at,
    format_time,
    load_jurisdictions,
    load_profile,
    operator_for,
    parse_facts,
    parse_request,
    parse_time,
    validate,
)
from letterlock.policy.rules import PROFILES_DIR


def _read_json(path: Path, what: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"{what} file {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{what} file {path}: not UTF-8 text") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{what} file {path}: invalid JSON at line {exc.lineno}: "
                           f"{exc.msg}") from exc


def _legal_config(ctx: click.Context) -> LegalConfig:
    """The HOME's legal settings when a configuration can be read, else the defaults."""
    obj = ctx.find_object(CliContext)
    if obj is None:
        return LegalConfig()
    try:
        config: Config = obj.config()
    except ConfigError as exc:
        fail(str(exc), 2)
    return config.legal


def _guard(fn: Any) -> Any:
    """Run ``fn``; a domain error becomes one line on stderr and a non-zero exit."""
    try:
        return fn()
    except LetterlockError as exc:
        fail(str(exc) or type(exc).__name__, exit_code_for(exc))


def render_decision(decision: Decision, console: Console) -> None:
    """The decision as a table a legal team can read."""
    table = Table(title=f"Decision ({decision.profile}, evaluated "
                        f"{format_time(decision.evaluated_at)})")
    for column in ("target", "category", "outcome", "reasons", "flags", "policies"):
        table.add_column(column, overflow="fold")
    for target, category, finding in decision.findings():
        table.add_row(target, category, finding.outcome, " ".join(finding.reasons),
                      " ".join(finding.flags), "\n".join(finding.policies))
    console.print(table)
    for deadline in decision.deadlines:
        console.print(f"deadline: {deadline.kind} due {format_time(deadline.due)}")
    notice = decision.user_notice
    after = f" (not before {format_time(notice.not_before)})" if notice.not_before else ""
    console.print(f"user notice: {notice.when}{after}")
    console.print(f"transparency: {decision.transparency}")


@click.group("legal")
def legal() -> None:
    """Legal requests: evaluate, validate policies, and handle matters."""


@legal.command("evaluate")
@click.option("--request", "request_file", required=True,
              type=click.Path(dir_okay=False, path_type=Path), help="Request JSON (LEGAL.md).")
@click.option("--facts", "facts_file", default=None,
              type=click.Path(dir_okay=False, path_type=Path),
              help="Facts JSON, one entry per target.")
@click.option("--profile", default=None,
              help=f"Shipped profile ({', '.join(SHIPPED_PROFILES)}) or a policy directory.")
@click.option("--operator-country", default=None, help="Operator's seat (ISO country code).")
@click.option("--at", "at_text", default=None,
              help="Evaluate the law as of this date (default: when the request was served).")
@click.option("--json", "as_json", is_flag=True, help="Print LEGAL.md's decision JSON.")
@click.pass_context
def evaluate_cmd(ctx: click.Context, request_file: Path, facts_file: Path | None,
                 profile: str | None, operator_country: str | None, at_text: str | None,
                 as_json: bool) -> None:
    """What-if evaluation of a request file, without recording anything."""
    settings = _legal_config(ctx)

    def work() -> Decision:
        request = parse_request(_read_json(request_file, "request"))
        facts = parse_facts(_read_json(facts_file, "facts")) if facts_file else {}
        at: datetime = parse_time(at_text, "--at") if at_text else default_at(request)
        country = operator_country or settings.operator_country
        if len(country) != 2 or not country.isalpha():
            raise InvalidInput("--operator-country: expected a two-letter country code")
        jurisdictions = load_jurisdictions()
        engine = PolicyEngine(load_profile(profile or settings.policy_dir or settings.profile),
                              jurisdictions)
        # Every country an account lives in is one of the operator's regions.
        regions = frozenset(f.location for f in facts.values() if f.location)
        operator = operator_for(jurisdictions, country.upper(), regions)
        return engine.evaluate(request, facts, operator, at)

    decision: Decision = _guard(work)
    if as_json:
        click.echo(json.dumps(decision.to_json(), indent=2))
    else:
        render_decision(decision, Console())


@legal.command("validate")
@click.argument("directory", required=False, type=click.Path(path_type=Path))
@click.pass_context
def validate_cmd(ctx: click.Context, directory: Path | None) -> None:
    """Check policy files against their Cedar schema (default: the shipped profiles
    and the configured policy directory). Problems are printed as FILE:LINE: MESSAGE."""
    if directory is not None:
        targets = [directory]
    else:
        targets = [PROFILES_DIR / name for name in SHIPPED_PROFILES]
        policy_dir = _legal_config(ctx).policy_dir
        if policy_dir:
            targets.append(Path(policy_dir))
    failed = False
    for target in targets:
        problems = validate(target)
        for problem in problems:
            click.echo(str(problem), err=True)
        if problems:
            failed = True
        else:
            count = len(_guard(lambda t=target: load_profile(t)).rules)
            click.echo(f"ok: {target} ({count} policies)")
    if failed:
        raise SystemExit(1)
