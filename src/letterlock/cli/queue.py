"""``letterlock queue``: the outbound queue (mail for other domains waiting to be
sent): list, show, retry, hold, delete. Works with the server running or not (see
services/operations/queue_admin.py); shows envelopes and states, never content.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import click
from rich.table import Table

from letterlock.app import is_initialised
from letterlock.cli.common import CliContext, console, exit_code_for, fail, load_config, pass_ctx
from letterlock.errors import LetterlockError, NotInitialised
from letterlock.policy import format_time
from letterlock.services.mail.outbound import FAILED, PENDING, QueueEntry
from letterlock.services.operations.queue_admin import QueueAdmin


def _admin(ctx: CliContext) -> QueueAdmin:
    config = load_config(ctx)
    if not is_initialised(config):
        fail(str(NotInitialised(f"{config.home} is not initialised: run `letterlock init`")),
             exit_code_for(NotInitialised("")))
    return QueueAdmin(config.home, config.run_dir)


def _age(entry: QueueEntry, now: datetime) -> str:
    seconds = int((now - entry.created).total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    return f"{days}d{hours:02d}h" if days else f"{hours}h{rest // 60:02d}m"


def _next(entry: QueueEntry) -> str:
    if entry.held:
        return "on hold"
    if not entry.pending:
        return "bounce to send"
    return format_time(entry.next_attempt)


def _reason(entry: QueueEntry) -> str:
    """The last answer for a recipient still waiting (or failed)."""
    for r in entry.recipients:
        if r.state in (PENDING, FAILED) and (r.status or r.diagnostic):
            return f"{r.status} {r.diagnostic}".strip()
    return "not tried yet" if entry.attempts == 0 else ""


def _json(admin: QueueAdmin, entry: QueueEntry, now: datetime) -> dict[str, Any]:
    return {"id": entry.id, "queue_id": entry.queue_id, "region": entry.region,
            "account": entry.account, "mail_from": entry.mail_from,
            "created": format_time(entry.created),
            "age_s": int((now - entry.created).total_seconds()),
            "attempts": entry.attempts, "next_attempt": format_time(entry.next_attempt),
            "held": entry.held, "delay_notice_sent": entry.delay_notified,
            "sealed_bytes": admin.message_bytes(entry),
            "recipients": [{"address": r.address, "state": r.state, "status": r.status,
                            "diagnostic": r.diagnostic, "remote": r.remote,
                            "bounce_sent": r.notified} for r in entry.recipients]}


@click.group("queue")
def queue_group() -> None:
    """The outbound queue: mail for other domains waiting to be sent."""


@queue_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per message.")
@pass_ctx
def queue_list(ctx: CliContext, as_json: bool) -> None:
    """Every queued message: id, age, attempts, next attempt, why it waits."""
    admin = _admin(ctx)
    now = datetime.now(UTC)
    entries = admin.entries()
    if as_json:
        click.echo(json.dumps([_json(admin, e, now) for e in entries], indent=2))
        return
    if not entries:
        click.echo("the outbound queue is empty")
        return
    table = Table(title=f"outbound queue: {len(entries)} message(s)")
    for column in ("id", "age", "from", "to (waiting/all)", "attempts", "next attempt",
                   "last answer"):
        table.add_column(column)
    for e in entries:
        table.add_row(e.id, _age(e, now), e.mail_from or "<>",
                      f"{len(e.pending)}/{len(e.recipients)}", str(e.attempts), _next(e),
                      _reason(e))
    console().print(table)


@queue_group.command("show")
@click.argument("queue_id")
@click.option("--json", "as_json", is_flag=True, help="As a JSON object.")
@pass_ctx
def queue_show(ctx: CliContext, queue_id: str, as_json: bool) -> None:
    """One queued message: envelope, each recipient's state and last answer (never
    the message itself). QUEUE_ID: its id or at least 6 first digits."""
    admin = _admin(ctx)
    now = datetime.now(UTC)
    entry = _one(admin, queue_id)
    doc = _json(admin, entry, now)
    if as_json:
        click.echo(json.dumps(doc, indent=2))
        return
    for key in ("id", "queue_id", "region", "account", "mail_from", "created", "attempts",
                "sealed_bytes"):
        click.echo(f"{key:<13} {doc[key] if doc[key] != '' else '-'}")
    click.echo(f"{'age':<13} {_age(entry, now)}")
    click.echo(f"{'next attempt':<13} {_next(entry)}")
    if entry.delay_notified:
        click.echo(f"{'delay notice':<13} sent (or not needed)")
    for r in entry.recipients:
        answer = f"{r.status} {r.diagnostic}".strip() or "-"
        click.echo(f"  {r.address}  {r.state}  {answer}"
                   + (f"  (from {r.remote})" if r.remote else "")
                   + ("  bounce sent" if r.notified else ""))


def _one(admin: QueueAdmin, queue_id: str) -> QueueEntry:
    try:
        return admin.find(queue_id)
    except LetterlockError as exc:
        fail(str(exc), exit_code_for(exc))


def _change(ctx: CliContext, ids: tuple[str, ...],
            action: Callable[[QueueAdmin, QueueEntry], object], done: str) -> None:
    admin = _admin(ctx)
    entries = [_one(admin, queue_id) for queue_id in ids]
    for entry in entries:
        action(admin, entry)
        click.echo(f"{done} {entry.id}")
    admin.tell_server(entries)


@queue_group.command("retry")
@click.argument("queue_ids", nargs=-1, required=True)
@pass_ctx
def queue_retry(ctx: CliContext, queue_ids: tuple[str, ...]) -> None:
    """Try these messages now (held ones are released)."""
    _change(ctx, queue_ids, lambda a, e: a.retry(e), "retrying")


@queue_group.command("hold")
@click.argument("queue_ids", nargs=-1, required=True)
@pass_ctx
def queue_hold(ctx: CliContext, queue_ids: tuple[str, ...]) -> None:
    """Stop trying these messages until `letterlock queue retry`."""
    _change(ctx, queue_ids, lambda a, e: a.hold(e), "held")


@queue_group.command("delete")
@click.argument("queue_ids", nargs=-1, required=True)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_ctx
def queue_delete(ctx: CliContext, queue_ids: tuple[str, ...], yes: bool) -> None:
    """Remove these messages from the queue for good, without a bounce."""
    if not yes:
        click.confirm(f"delete {len(queue_ids)} queued message(s) without telling the "
                      "sender?", abort=True)
    _change(ctx, queue_ids, lambda a, e: a.delete(e), "deleted")
