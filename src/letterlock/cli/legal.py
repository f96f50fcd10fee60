"""``letterlock legal``: what-if evaluation and policy validation (pure, no HOME
needed beyond its configuration), and the legal-matter workflow of the running
system."""

from __future__ import annotations

import getpass
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

from letterlock.app import open_app
from letterlock.cli.common import CliContext, console, exit_code_for, fail, load_config, run
from letterlock.cli.legal_approval import approve_cmd, reject_approval_cmd
from letterlock.cli.legal_impact import FORMATS_DOC, impact_cmd
from letterlock.config import Config, LegalConfig
from letterlock.errors import InvalidInput, LetterlockError
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
from letterlock.services.legal.matter import Matter
from letterlock.services.legal.matters import LegalService
from letterlock.services.legal.production import verify_package

T = TypeVar("T")


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
    return load_config(obj).legal


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


@click.group("legal", epilog=f"Request, facts and decision fields: {FORMATS_DOC}.")
def legal() -> None:
    """Legal requests: evaluate, validate policies, handle matters, and see what other
    policies would have decided (impact)."""


legal.add_command(impact_cmd)
legal.add_command(approve_cmd)
legal.add_command(reject_approval_cmd)


@legal.command("evaluate")
@click.option("--request", "request_file", required=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help=f"Request JSON ({FORMATS_DOC}).")
@click.option("--facts", "facts_file", default=None,
              type=click.Path(dir_okay=False, path_type=Path),
              help=f"Facts JSON, one entry per target ({FORMATS_DOC}).")
@click.option("--profile", default=None,
              help=f"Shipped profile ({', '.join(SHIPPED_PROFILES)}) or a policy directory.")
@click.option("--operator-country", default=None, help="Operator's seat (ISO country code).")
@click.option("--at", "at_text", default=None,
              help="Evaluate the law as of this date (default: when the request was served).")
@click.option("--json", "as_json", is_flag=True,
              help=f"Print the decision JSON ({FORMATS_DOC}).")
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
        render_decision(decision, console())


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


# ----------------------------------------------------------------------------- matters


@asynccontextmanager
async def open_legal(config: Config) -> AsyncIterator[LegalService]:
    """The application's legal service (built by the composition root, with holds
    registered as a retention hook)."""
    async with open_app(config) as app:
        yield app.legal


def _config_of(ctx: click.Context) -> Config:
    obj = ctx.find_object(CliContext)
    if obj is None:
        fail("no HOME", 2)
    return load_config(obj)


def _with_service(ctx: click.Context, fn: Callable[[LegalService], Awaitable[T]]) -> T:
    config = _config_of(ctx)

    async def main() -> T:
        async with open_legal(config) as service:
            return await fn(service)
    return run(main)


def _print_matter(matter: Matter, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(matter.to_json(), indent=2))
        return
    out = console()
    request = matter.request
    out.print(f"matter {matter.id}: {matter.state}")
    out.print(f"filed {format_time(matter.filed_at)} by {matter.filed_by}; "
                  f"{request.issuer.authority} ({request.issuer.country}), "
                  f"{request.instrument}, {request.action} "
                  f"{', '.join(request.categories)} of {', '.join(request.targets) or '-'}")
    if request.date_range is not None:
        span = request.date_range.to_json()
        out.print(f"mail received from {span['from'] or 'the start'} to {span['to'] or 'now'}")
    render_decision(matter.decision or matter.recommendation, out)
    for d in matter.deadlines:
        status = "met" if d.done else "OVERDUE" if d.overdue else "to be met"
        out.print(f"deadline {d.kind} ({format_time(d.due)}): {status}")
    if matter.overridden:
        out.print(f"overridden by {matter.decided_by}: {matter.justification}")
    _print_proposal(matter, out)
    if matter.package:
        out.print(f"package: {matter.package}")
    for hold in matter.holds:
        state = "released" if hold.released_at else f"until {format_time(hold.expires_at)}"
        out.print(f"hold: {hold.address} ({hold.region}) {state}")
    for notice in matter.notices:
        when = (f"sent {format_time(notice.sent_at)}" if notice.sent_at else
                f"due {format_time(notice.due_at)}" if notice.due_at else "waits for the gag")
        out.print(f"notice: {notice.address} {when}")


def _print_proposal(matter: Matter, out: Console) -> None:
    """The decision awaiting a second operator (four-eyes), or how the last one ended."""
    p = matter.proposal
    if p is None:
        return
    what = (f"override to {dict(p.override)['outcome']}: {p.justification}" if p.override
            else "the recommendation accepted")
    out.print(f"proposed by {p.proposed_by} at {format_time(p.proposed_at)}: {what} "
              f"(needs approval: {', '.join(p.needs)})")
    if p.outcome is None:
        out.print(f"awaiting approval by another operator: legal approve {matter.id} "
                  "--actor NAME, or legal reject-approval")
        if p.override:  # an accepted recommendation is the table shown above
            render_decision(p.decision, out)
    elif p.resolved_at is not None:
        out.print(f"{p.outcome} by {p.resolved_by} at {format_time(p.resolved_at)}"
                  + (f": {p.reason}" if p.reason else ""))


ACTOR = "operator"


def _login_name() -> str:
    """Who runs the command, when --actor and LETTERLOCK_OPERATOR do not say."""
    try:
        return getpass.getuser() or ACTOR
    except (OSError, KeyError):
        return ACTOR


ACTOR_OPTION = click.option(
    "--actor", envvar="LETTERLOCK_OPERATOR", default=_login_name,
    show_default="$LETTERLOCK_OPERATOR, else your login name",
    help="The operator taking this step (named in the audit log).")


@legal.command("file")
@click.argument("request_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--facts", "facts_file", default=None,
              type=click.Path(dir_okay=False, path_type=Path),
              help=f"Facts JSON ({FORMATS_DOC}), one entry per target: what the legal team "
                   "asserts (us_person, residence, conflict_with); facts the store knows "
                   "(exists, location, hosted_tenant, key_custody) may be given and must "
                   "agree with it.")
@click.option("--json", "as_json", is_flag=True)
@ACTOR_OPTION
@click.pass_context
def file_cmd(ctx: click.Context, request_file: Path, facts_file: Path | None,
             as_json: bool, actor: str) -> None:
    """Record a request and print its matter id (then its recommended decision)."""
    request = _guard(lambda: _read_json(request_file, "request"))
    facts = _guard(lambda: _read_json(facts_file, "facts")) if facts_file else None
    matter = _with_service(ctx, lambda s: s.file(request, actor, facts))
    if as_json:
        _print_matter(matter, True)
    else:
        click.echo(matter.id)


@legal.command("list")
@click.option("--open", "open_only", is_flag=True, help="Only matters not closed.")
@click.option("--due", "due_days", type=int, default=None,
              help="Only matters with a deadline still to be met within DAYS (overdue "
                   "ones included, and marked).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def list_cmd(ctx: click.Context, open_only: bool, due_days: int | None, as_json: bool) -> None:
    """List matters."""
    due = None if due_days is None else timedelta(days=due_days)
    matters = _with_service(ctx, lambda s: s.list_matters(open_only=open_only, due_within=due))
    if as_json:
        click.echo(json.dumps([m.to_json() for m in matters], indent=2))
        return
    table = Table(title="Legal matters")
    for column in ("id", "state", "filed", "issuer", "instrument", "targets", "next due"):
        table.add_column(column)
    for m in matters:
        next_due = format_time(m.next_due) if m.next_due else ""
        state = m.state if m.state != "awaiting-approval" or m.proposal is None \
            else f"{m.state} ({m.proposal.proposed_by})"
        table.add_row(m.id, state, format_time(m.filed_at), m.request.issuer.country,
                      m.request.instrument, ", ".join(m.request.targets),
                      f"{next_due} OVERDUE" if m.overdue else next_due)
    console().print(table)


@legal.command("show")
@click.argument("matter_id")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def show_cmd(ctx: click.Context, matter_id: str, as_json: bool) -> None:
    """Show a matter: request, recommendation or decision, holds, notices."""
    _print_matter(_with_service(ctx, lambda s: s.show(matter_id)), as_json)


@legal.command("decide")
@click.argument("matter_id")
@click.option("--accept", is_flag=True, help="Accept the policy's recommendation.")
@click.option("--override", "override", default=None, help="Decide this outcome instead.")
@click.option("--justification", default=None, help="Why the recommendation is overridden.")
@click.option("--target", "targets", multiple=True,
              help="Override only this target's findings (repeatable).")
@click.option("--category", "categories", multiple=True,
              help="Override only this category's findings (repeatable).")
@click.option("--json", "as_json", is_flag=True)
@ACTOR_OPTION
@click.pass_context
def decide_cmd(ctx: click.Context, matter_id: str, accept: bool, override: str | None,
               justification: str | None, targets: tuple[str, ...],
               categories: tuple[str, ...], as_json: bool, actor: str) -> None:
    """Decide a matter (--accept, or --override OUTCOME --justification TEXT, for every
    finding or only those of --target/--category); the decision is executed at once
    (holds, production package, user notice), or, under four-eyes (legal.four_eyes),
    awaits another operator's approval (legal approve)."""
    if accept == (override is not None):
        fail("give exactly one of --accept or --override OUTCOME", 2)
    if override is not None and not (justification or "").strip():
        fail("--justification: an override needs a justification", 2)
    matter = _with_service(ctx, lambda s: s.decide(matter_id, actor, override=override,
                                                   justification=justification,
                                                   targets=targets, categories=categories))
    _print_matter(matter, as_json)


@legal.command("close")
@click.argument("matter_id")
@ACTOR_OPTION
@click.pass_context
def close_cmd(ctx: click.Context, matter_id: str, actor: str) -> None:
    """Close a matter and release its holds."""
    matter = _with_service(ctx, lambda s: s.close(matter_id, actor))
    click.echo(f"{matter.id}: {matter.state}")


@legal.command("lift-gag")
@click.argument("matter_id")
@ACTOR_OPTION
@click.pass_context
def lift_gag_cmd(ctx: click.Context, matter_id: str, actor: str) -> None:
    """Record that the matter's non-disclosure order was lifted: the user is told now
    and the matter's sealed audit events are revealed."""
    matter = _with_service(ctx, lambda s: s.lift_gag(matter_id, actor))
    click.echo(f"{matter.id}: order lifted, {matter.state}")


@legal.command("extend-gag")
@click.argument("matter_id")
@click.option("--until", "until", default=None, metavar="DATE",
              help="The order's new end (ISO date or time, UTC).")
@click.option("--indefinite", is_flag=True, help="The order now has no end date.")
@ACTOR_OPTION
@click.pass_context
def extend_gag_cmd(ctx: click.Context, matter_id: str, until: str | None,
                   indefinite: bool, actor: str) -> None:
    """Record that the matter's non-disclosure order was renewed or extended: notices
    and sealed audit events wait for the new end."""
    if (until is None) == (not indefinite):
        raise click.UsageError("give either --until DATE or --indefinite")
    end = None if indefinite else parse_time(until, "--until")
    matter = _with_service(ctx, lambda s: s.extend_gag(matter_id, actor, end))
    click.echo(f"{matter.id}: order extended to {until or 'no end date'}")


@legal.command("inform-requested")
@click.argument("matter_id")
@ACTOR_OPTION
@click.pass_context
def inform_requested_cmd(ctx: click.Context, matter_id: str, actor: str) -> None:
    """Record that an EU order's issuing authority asked us to inform the user
    (Regulation 2023/1543 art. 13): the notice held until then is sent now."""
    matter = _with_service(ctx, lambda s: s.inform_requested(matter_id, actor))
    click.echo(f"{matter.id}: user informed, {matter.state}")


@legal.command("enforcing-state")
@click.argument("matter_id")
@click.option("--no-grounds", is_flag=True, help="It confirmed it raises no ground.")
@click.option("--refused", "grounds", multiple=True, metavar="GROUND",
              help="A ground it raised (art. 12(1)): immunity-or-privilege, "
                   "fundamental-rights, ne-bis-in-idem, double-criminality; repeatable.")
@click.option("--window-passed", is_flag=True, help="Its window ended with no answer.")
@ACTOR_OPTION
@click.pass_context
def enforcing_state_cmd(ctx: click.Context, matter_id: str, no_grounds: bool,
                        grounds: tuple[str, ...], window_passed: bool, actor: str) -> None:
    """Record what the enforcing state of a European Production Order answered, or
    that its window passed; the policy then decides the findings held for it
    (docs/legal-e-evidence.md)."""
    if no_grounds + bool(grounds) + window_passed != 1:
        raise click.UsageError("give one of --no-grounds, --refused GROUND, --window-passed")
    matter = _with_service(ctx, lambda s: s.enforcing_state_answered(
        matter_id, actor, answered=not window_passed, refusal_grounds=grounds))
    click.echo(f"{matter.id}: decided again, {matter.state}")


@legal.command("tick")
@click.pass_context
def tick_cmd(ctx: click.Context) -> None:
    """Run due work once: notices whose gag expired, holds that ran out."""
    report = _with_service(ctx, lambda s: s.tick())
    click.echo(f"notices sent: {report.notices_sent}; holds released: {report.holds_released}")


@legal.command("verify-package")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--public-key", default=None, help="Pin the operator's key (hex).")
def verify_package_cmd(path: Path, public_key: str | None) -> None:
    """Check a production package's signature and every item's SHA-256."""
    check = _guard(lambda: verify_package(path, public_key))
    for problem in check.problems:
        click.echo(f"{path}: {problem}", err=True)
    if not check.ok:
        raise SystemExit(1)
    click.echo(f"ok: matter {check.matter}, {check.items} items, key {check.public_key}")
