"""`letterlock report`: the public transparency report and the warrant canary, both
computed from the recorded legal decisions and tied to the audit log's signed head."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import click

from letterlock.cli.common import CliContext, fail, load_config, pass_ctx, run
from letterlock.errors import InvalidInput
from letterlock.services.transparency import canary, rendering
from letterlock.services.transparency import report as transparency

RENDERERS = {
    "json": rendering.render_json,
    "csv": rendering.render_csv,
    "html": rendering.render_html,
}


def _control_dir(ctx: CliContext) -> Path:
    return load_config(ctx).control_dir


def _period(text: str | None) -> transparency.Period:
    if text is None:
        return transparency.Period.containing(datetime.now(UTC).date())
    try:
        return transparency.Period.parse(text)
    except InvalidInput as exc:
        fail(str(exc), 2)


def _emit(text: str, out: Path | None) -> None:
    if out is None:
        click.echo(text, nl=False)
        return
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        fail(f"cannot write {out}: {exc.strerror}", 1)
    click.echo(f"wrote {out}", err=True)


@click.group("report")
def report_group() -> None:
    """Public reports computed from recorded legal decisions."""


@report_group.command("transparency")
@click.option("--period", required=True, help="Half-year, e.g. 2025-H1.")
@click.option("--format", "fmt", type=click.Choice(sorted(RENDERERS)), default="json",
              show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write to FILE instead of standard output.")
@pass_ctx
def transparency_cmd(ctx: CliContext, period: str, fmt: str, out: Path | None) -> None:
    """Requests per issuing country for one half-year, with the signed tree head of
    the audit log it was computed at."""
    control = _control_dir(ctx)
    chosen = _period(period)
    report = run(lambda: transparency.report_for(control, chosen))
    _emit(RENDERERS[fmt](report), out)


@report_group.command("canary")
@click.option("--period", default=None, help="Half-year (default: the current one).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write to FILE instead of standard output.")
@pass_ctx
def canary_cmd(ctx: CliContext, period: str | None, out: Path | None) -> None:
    """A signed, dated statement of the kinds of orders NOT received in the period;
    check it with `python -m letterlock.audit.verify canary FILE`."""
    control = _control_dir(ctx)
    chosen = _period(period)
    doc = run(lambda: canary.signed_canary(control, chosen))
    _emit(json.dumps(doc, indent=2, sort_keys=True) + "\n", out)
