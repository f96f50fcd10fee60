"""``letterlock backup REGION DIR`` and ``letterlock restore REGION DIR``: a region's
sealed data to a directory and back (services/operations/backup.py). Backup runs
beside a serving server; restore wants it stopped. Both write their log lines
(``backup:*``) to stderr, like the server, for the journal of a timer unit.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from letterlock import app as app_mod
from letterlock.cli.common import CliContext, load_config, pass_ctx, run_with_app
from letterlock.services.operations import logs
from letterlock.services.operations.backup import BackupResult, BackupService, RestoreResult


def _service(app: app_mod.App) -> BackupService:
    return BackupService(app.cells, app.control, app.legal, app.audit, app.peers,
                         app.config.home)


@click.command("backup")
@click.argument("region_id", metavar="REGION")
@click.argument("target", metavar="DIR", type=click.Path(file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
@pass_ctx
def backup_cmd(ctx: CliContext, region_id: str, target: Path, as_json: bool) -> None:
    """Back up region REGION into DIR (new or empty), consistently, while the server
    runs. The backup holds sealed mail and wrapped keys only, with a manifest of
    every file's SHA-256."""
    config = load_config(ctx)
    stop_logging = logs.configure(config)
    try:
        result: BackupResult = run_with_app(
            config, lambda app: _service(app).backup(region_id, target.absolute()))
    finally:
        stop_logging()
    manifest = result.manifest
    if as_json:
        click.echo(json.dumps(manifest.to_json(), indent=1))
        return
    counts = manifest.counts
    click.echo(f"backed up region {region_id} to {target}: backup {manifest.backup_id}")
    click.echo(f"  {counts.get('accounts', 0)} account(s), "
               f"{counts.get('mailboxes', 0)} mailbox(es), {counts.get('messages', 0)} "
               f"message(s), {counts.get('blobs', 0)} sealed blob(s), "
               f"{result.bytes} bytes in {len(manifest.files)} file(s)")
    click.echo(f"  as of {manifest.snapshot_at} (snapshots taken: {manifest.rounds}); "
               f"audit log size then: {manifest.audit_size}")


@click.command("restore")
@click.argument("region_id", metavar="REGION")
@click.argument("source", metavar="DIR", type=click.Path(file_okay=False, path_type=Path))
@click.option("--force", is_flag=True,
              help="Replace what the region holds now (refused otherwise unless empty).")
@pass_ctx
def restore_cmd(ctx: CliContext, region_id: str, source: Path, force: bool) -> None:
    """Restore region REGION from the backup in DIR, with the server stopped. The
    backup is checked first (its region, every file's SHA-256); the restore is
    recorded in the audit log, which is never rewound."""
    config = load_config(ctx)
    stop_logging = logs.configure(config)
    try:
        result: RestoreResult = run_with_app(
            config, lambda app: _service(app).restore(region_id, source.absolute(),
                                                      force=force))
    finally:
        stop_logging()
    manifest = result.manifest
    click.echo(f"restored region {region_id} from backup {manifest.backup_id} "
               f"(as of {manifest.snapshot_at}): {result.accounts} account(s), "
               f"{result.messages} message(s); audit event {result.audit_index}")
    for address in result.assigned:
        click.echo(f"  {address}: missing from the directory; assigned to {region_id} again")
    for address in result.deleted_since:
        click.echo(f"  {address}: deleted after the backup; not brought back")
    for address in result.moved_away:
        click.echo(f"  {address}: lives in another region now; its old copy was removed")
    for address in result.lost:
        click.echo(f"  {address}: created after the backup, not in it; removed from the "
                   "directory (create it again with `user add`)")
    if result.held_missing:
        click.echo(f"  warning: {result.held_missing} blob(s) kept by legal holds are not "
                   "in this backup")
