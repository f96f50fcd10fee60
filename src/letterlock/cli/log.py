"""`letterlock log`: the signed head, proofs, full verification and reveals of the
audit log under ``HOME/control/audit``.

Reading commands open the log read-only at its latest signed head, so they are safe
while the server runs. ``verify`` exits 0 only if the log is intact. ``recover`` is
the explicit repair of a log the server refuses (see audit/recovery.py).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from letterlock.audit import records
from letterlock.audit.check import verify_log
from letterlock.audit.log import open_reader
from letterlock.audit.recovery import TailChoice, recover_log
from letterlock.audit.store import MerkleLog
from letterlock.audit.verify import SignedHead, VerificationError
from letterlock.cli.common import CliContext, exit_code_for, fail, load_config, pass_ctx
from letterlock.errors import LetterlockError

AUDIT_DIR = "audit"


def audit_dir(ctx: CliContext) -> Path:
    return load_config(ctx).control_dir / AUDIT_DIR


def _reader(ctx: CliContext) -> MerkleLog:
    try:
        return open_reader(audit_dir(ctx))
    except LetterlockError as exc:
        fail(str(exc), exit_code_for(exc))


def _bundle(ctx: CliContext, make: Callable[[MerkleLog], dict[str, Any]]) -> dict[str, Any]:
    """A proof bundle made from the log at its latest signed head; a domain error
    ends the command."""
    with _reader(ctx) as log:
        try:
            return make(log)
        except LetterlockError as exc:
            fail(str(exc), exit_code_for(exc))


def _echo_json(doc: Any) -> None:
    click.echo(json.dumps(doc, indent=2, sort_keys=True))


def _load_head(path: Path) -> SignedHead:
    try:
        return SignedHead.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, VerificationError) as exc:
        fail(f"{path}: not a signed tree head: {exc}", 2)


@click.group("log")
def log_group() -> None:
    """The verifiable audit log."""


@log_group.command("head")
@click.option("--json", "as_json", is_flag=True, help="Print the signed head as JSON.")
@pass_ctx
def head_cmd(ctx: CliContext, as_json: bool) -> None:
    """Show the latest signed tree head (save it: later heads must extend it)."""
    with _reader(ctx) as log:
        head = log.head()
    if as_json:
        _echo_json(head.to_json())
        return
    click.echo(f"tree size   {head.tree_size}")
    click.echo(f"root hash   {head.root_hash.hex()}")
    click.echo(f"signed at   {head.timestamp}")
    click.echo(f"log id      {head.log_id}")
    click.echo(f"public key  {head.public_key.hex()}")


@log_group.command("proof")
@click.argument("event_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print the proof bundle as JSON.")
@pass_ctx
def proof_cmd(ctx: CliContext, event_id: int, as_json: bool) -> None:
    """Inclusion proof of event EVENT_ID in the latest signed head; check it offline
    with `python -m letterlock.audit.verify inclusion FILE`."""
    bundle = _bundle(ctx, lambda log: log.inclusion_bundle(event_id))
    if as_json:
        _echo_json(bundle)
        return
    rec = records.decode(bundle["leaf"].encode("utf-8"))
    head = bundle["head"]
    click.echo(f"event       {event_id} ({rec.kind}, logged {records.format_time(rec.logged_at)})")
    if rec.event is not None:
        ev = rec.event
        click.echo(f"type        {ev.type}")
        click.echo(f"actor       {ev.actor}")
        if ev.account:
            click.echo(f"account     {ev.account}")
        if ev.matter:
            click.echo(f"matter      {ev.matter}")
    click.echo(f"tree size   {head['tree_size']}  root {head['root_hash']}")
    click.echo(f"path        {len(bundle['path'])} hashes")
    for h in bundle["path"]:
        click.echo(f"  {h}")
    if "commitment" in bundle:
        click.echo(f"reveals     event {bundle['commitment']['leaf_index']} (proof included)")


@log_group.command("consistency")
@click.argument("saved_head", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the proof bundle as JSON.")
@pass_ctx
def consistency_cmd(ctx: CliContext, saved_head: Path, as_json: bool) -> None:
    """Consistency proof from a head saved earlier (SAVED_HEAD, JSON) to the latest."""
    first = _load_head(saved_head)
    bundle = _bundle(ctx, lambda log: log.consistency_bundle(first))
    if as_json:
        _echo_json(bundle)
        return
    click.echo(
        f"from size {first.tree_size} to {bundle['second']['tree_size']}: "
        f"{len(bundle['path'])} hashes"
    )
    for h in bundle["path"]:
        click.echo(f"  {h}")


@log_group.command("verify")
@click.option(
    "--head",
    "heads",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A signed head saved earlier (repeatable): the log must still contain it.",
)
@click.option("--public-key", default=None, help="The log key you trust (64 hex digits).")
@pass_ctx
def verify_cmd(ctx: CliContext, heads: tuple[Path, ...], public_key: str | None) -> None:
    """Recompute the whole log; exit 0 only if it is intact."""
    saved = [_load_head(p) for p in heads]
    pinned = None
    if public_key is not None:
        try:
            pinned = bytes.fromhex(public_key)
        except ValueError:
            fail("--public-key must be hex", 2)
    try:
        report = verify_log(audit_dir(ctx), saved, pinned)
    except LetterlockError as exc:
        fail(str(exc), exit_code_for(exc))
    for finding in report.findings:
        click.echo(f"{'FAIL' if finding.fatal else 'warn'} {finding}")
    summary = (
        f"{report.events} events, {report.heads_checked} signed heads, "
        f"{report.reveals_checked} reveals checked"
    )
    if report.intact:
        click.echo(f"OK {summary}")
        return
    click.echo(f"NOT INTACT: {summary}")
    sys.exit(1)


@log_group.command("reveal")
@click.argument("event_id", type=int, required=False)
@click.option("--due", is_flag=True, help="Reveal every commitment whose order has expired.")
@click.option("--actor", default="operator", show_default=True)
@pass_ctx
def reveal_cmd(ctx: CliContext, event_id: int | None, due: bool, actor: str) -> None:
    """Publish the content of a commitment (EVENT_ID, when its order is lifted), or of
    all commitments whose order expired (--due)."""
    if (event_id is None) == (not due):
        fail("give EVENT_ID or --due (not both)", 2)
    try:
        with MerkleLog(audit_dir(ctx)) as log:
            revealed = log.reveal_due(actor) if due else [log.reveal(event_id or 0, actor)]
    except LetterlockError as exc:
        fail(str(exc), exit_code_for(exc))
    for index in revealed:
        click.echo(f"revealed as event {index}")
    if not revealed:
        click.echo("nothing to reveal")


@log_group.command("recover")
@click.option("--reason", required=True,
              help="Why (e.g. the incident or ticket): recorded in the log.")
@click.option("--keep-tail", "tail", flag_value=TailChoice.KEEP.value, default=None,
              help="Sign the events found after the last signed head as they are.")
@click.option("--set-aside-tail", "tail", flag_value=TailChoice.SET_ASIDE.value,
              help="Move what follows the last signed head to set-aside/ instead.")
@click.option("--actor", default="operator", show_default=True)
@pass_ctx
def recover_cmd(ctx: CliContext, reason: str, tail: str | None, actor: str) -> None:
    """Repair an audit log the server refuses to open (its signed head missing, or
    unsigned bytes after it), and record what was done as a log:tree:recovered event.
    Events a signed head covers are never re-signed if they were changed: restore
    them from a backup. Stop the server first."""
    try:
        done = recover_log(audit_dir(ctx), reason=reason, actor=actor,
                           tail_choice=TailChoice(tail) if tail else None)
    except LetterlockError as exc:
        fail(str(exc), exit_code_for(exc))
    if done is None:
        click.echo("the audit log opens as it is: nothing to recover")
        return
    click.echo(f"found       {done.found}")
    click.echo(f"base        signed head of size {done.base_size} ({done.base_source})")
    click.echo(f"kept        {done.kept} unsigned events, now signed")
    if done.set_aside is not None:
        click.echo(f"set aside   {done.set_aside_bytes} bytes to {done.set_aside}")
    click.echo(f"recorded    as event {done.event_index} (log:tree:recovered)")


@log_group.command("witness")
@pass_ctx
def witness_cmd(ctx: CliContext) -> None:
    """Submit the current checkpoint to the witnesses listed in HOME/control/witnesses
    (one 'URL KEY' a line; the server does this every minute) and print each outcome.
    Exits 1 if any witness refused."""
    from letterlock.audit.tiles import origin_for
    from letterlock.services.transparency import witnessing

    config = load_config(ctx)
    try:
        witnesses = witnessing.read_witnesses(config.control_dir / witnessing.WITNESSES_FILE)
        outcomes = witnessing.submit_round(audit_dir(ctx), origin_for(config.server.hostname),
                                           witnesses, only_new=False)
    except LetterlockError as exc:
        fail(str(exc), exit_code_for(exc))
    if not witnesses:
        click.echo(f"no witnesses configured in {config.control_dir / 'witnesses'}")
    for o in outcomes:
        click.echo(f"{o.witness}: " + (f"cosigned size {o.size}" if o.cosigned
                                         else f"refused: {o.reason}"))
    if any(not o.cosigned for o in outcomes):
        sys.exit(1)
