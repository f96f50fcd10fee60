"""``letterlock tls-reports``: SMTP TLS reports (RFC 8460). ``list`` and ``show`` the
reports other servers sent about ours (to ``smtp.tls_report_inbox`` or by HTTPS
POST); ``sent`` the daily reports this server sent to recipient domains. Works with
the server running or not; shows servers, counts and results, never mail.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click
from rich.table import Table

from letterlock.app import is_initialised
from letterlock.cli.common import CliContext, console, fail, load_config, pass_ctx, run
from letterlock.errors import NotFound
from letterlock.policy import format_time
from letterlock.storage.tls_reports_sqlite import ReceivedRow, TlsReportStore

T = TypeVar("T")


def _with_store(ctx: CliContext, fn: Callable[[TlsReportStore], Awaitable[T]]) -> T:
    config = load_config(ctx)
    if not is_initialised(config):
        fail(f"{config.home} is not initialised: run `letterlock init`", 3)

    async def go() -> T:
        store = TlsReportStore(config.control_dir, fsync=config.storage.fsync)
        try:
            return await fn(store)
        finally:
            await store.close()

    return run(go)


def _summary(row: ReceivedRow) -> dict[str, Any]:
    return {
        "report": row.id,
        "received": format_time(row.received),
        "via": row.via,
        "organization": row.organization,
        "contact": row.contact,
        "report_id": row.report_id,
        "start": format_time(row.start),
        "end": format_time(row.end),
        "domains": list(row.domains),
        "successful_sessions": row.successes,
        "failed_sessions": row.failures,
    }


@click.group("tls-reports")
def tls_reports_group() -> None:
    """SMTP TLS reports (RFC 8460): received about our servers, and sent."""


@tls_reports_group.command("list")
@click.option(
    "--limit",
    default=50,
    show_default=True,
    type=click.IntRange(1, 10_000),
    help="How many of the latest reports.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per report.")
@pass_ctx
def tls_reports_list(ctx: CliContext, limit: int, as_json: bool) -> None:
    """Reports other servers sent about ours, newest first: who sent them, the
    period, the domains, sessions that negotiated TLS and sessions that failed."""
    rows = _with_store(ctx, lambda store: store.received(limit))
    if as_json:
        click.echo(json.dumps([_summary(r) for r in rows], indent=2))
        return
    if not rows:
        click.echo("no TLS reports received (see smtp.tls_report_inbox)")
        return
    table = Table(title=f"TLS reports received: {len(rows)}")
    for column in ("#", "received", "from", "period (UTC)", "domains", "ok", "failed", "via"):
        table.add_column(column)
    for r in rows:
        period = r.start.strftime("%Y-%m-%d")
        if r.end.date() != r.start.date():
            period += " .. " + r.end.strftime("%Y-%m-%d")
        table.add_row(
            str(r.id),
            format_time(r.received),
            r.organization,
            period,
            ", ".join(r.domains),
            str(r.successes),
            str(r.failures),
            r.via,
        )
    console().print(table)


@tls_reports_group.command("show")
@click.argument("number", type=int)
@click.option("--json", "as_json", is_flag=True, help="The report's JSON as received.")
@pass_ctx
def tls_reports_show(ctx: CliContext, number: int, as_json: bool) -> None:
    """One received report (NUMBER from `tls-reports list`): each policy with its
    counts and the failures by result type and server."""

    async def get(store: TlsReportStore) -> ReceivedRow:
        row = await store.get_received(number)
        if row is None:
            raise NotFound(f"no TLS report {number} (`letterlock tls-reports list`)")
        return row

    row = _with_store(ctx, get)
    if as_json:
        click.echo(row.document)
        return
    for key, value in _summary(row).items():
        shown = ", ".join(value) if isinstance(value, list) else value
        click.echo(f"{key:<20} {shown}")
    for entry in json.loads(row.document)["policies"]:
        policy, summary = entry["policy"], entry["summary"]
        click.echo(
            f"policy {policy['policy-type']} {policy['policy-domain']}: "
            f"{summary['total-successful-session-count']} ok, "
            f"{summary['total-failure-session-count']} failed"
        )
        for line in policy.get("policy-string", []):
            click.echo(f"    {line}")
        for detail in entry.get("failure-details", []):
            where = " ".join(
                str(detail[k])
                for k in ("receiving-mx-hostname", "receiving-ip", "sending-mta-ip")
                if k in detail
            )
            click.echo(
                f"  {detail['failed-session-count']:>6} {detail['result-type']}"
                + (f"  ({where})" if where else "")
                + (f"  {detail['failure-reason-code']}" if "failure-reason-code" in detail else "")
            )


@tls_reports_group.command("sent")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per report.")
@pass_ctx
def tls_reports_sent(ctx: CliContext, as_json: bool) -> None:
    """The daily reports this server made for recipient domains that ask for them
    (latest 100, 90 days): sent, or failed (given up after three days)."""
    rows = _with_store(ctx, lambda store: store.sent())
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        "day": r.day.isoformat(),
                        "domain": r.domain,
                        "outcome": r.outcome,
                        "report_id": r.report_id,
                        "destinations": r.destinations.split(",") if r.destinations else [],
                        "successful_sessions": r.successes,
                        "failed_sessions": r.failures,
                        "done": format_time(r.done),
                    }
                    for r in rows
                ],
                indent=2,
            )
        )
        return
    if not rows:
        click.echo("no TLS reports sent yet (see smtp.tls_report_from)")
        return
    table = Table(title="TLS reports sent")
    for column in ("day", "domain", "outcome", "ok", "failed", "to"):
        table.add_column(column)
    for r in rows:
        table.add_row(
            r.day.isoformat(),
            r.domain,
            r.outcome,
            str(r.successes),
            str(r.failures),
            r.destinations.replace(",", ", "),
        )
    console().print(table)
