"""The operations areas of the operator console (role ``admin``): what the command
line's ``backup``, ``restore``, ``log verify`` and ``mail import|export`` do.

    GET  /console/backups          each region's last backup; the backups started
                                   here (progress, then the manifest's counts); the
                                   backups kept under the root
    POST /console/backups          start backing up a region (in the background) into
                                   a new directory of the root
    POST /console/backups/verify   check a backup's manifest and every file
    GET  /console/audit            the audit log's head, size, last verification
    POST /console/audit/verify     recompute the whole log (``letterlock log verify``),
                                   with the head and key the verification before kept
    GET  /console/mail             export and import an account's mail
    POST /console/mail/export      with the owner's password, as ``mail export`` needs
    POST /console/mail/import      from a directory of the root, as ``mail import``

Every file goes to, or comes from, a directory under the backup root
(``operations.backup_dir``; ``HOME-backups`` beside HOME by default) that the server
names; the browser picks names, never paths. A restore is not offered: it needs the
server stopped, so the page gives the exact command. Each action calls the service
the command line calls, with the signed-in operator as the actor of its audit event
and its log line.
"""

# No `from __future__ import annotations`: FastAPI must see the handlers' annotations.

import asyncio
import shlex
from collections.abc import Callable
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from letterlock.app import App
from letterlock.audit.check import verify_log
from letterlock.audit.sink import AuditLog
from letterlock.errors import AuthenticationFailed, InvalidInput
from letterlock.http.account_pages import _client as client
from letterlock.http.console_auth import ConsoleSession
from letterlock.http.console_forms import AdminForms
from letterlock.services.mail import folder_transfer
from letterlock.services.mail.folder_transfer import TreeFormat
from letterlock.services.operations import backup_root
from letterlock.services.operations.backup import BackupService
from letterlock.services.operations.backup_jobs import BackupJob, BackupJobs
from letterlock.services.operations.backup_manifest import BackupDamaged
from letterlock.services.operations.log_events import LogEvent, event

AUDIT_DIR = "audit"
FORMATS: dict[str, TreeFormat] = {"maildir": "maildir", "mbox-folders": "mbox-folders"}


def restore_command(app: App, region: str, name: str) -> str:
    """The command an operator runs, with the server stopped, to restore a backup."""
    return shlex.join(["letterlock", "--home", str(app.config.home.absolute()), "restore",
                       region, str(app.config.backup_root / name)])


def said(job: BackupJob) -> str:
    """What a finished backup job did, as the page says it."""
    if job.error is not None:
        return f"The backup of region {job.region} failed: {job.error}"
    if job.result is None:
        return ""
    manifest, counts = job.result.manifest, job.result.manifest.counts
    return (f"Backed up region {job.region} into {job.name}: backup {manifest.backup_id}, "
            f"{counts.get('accounts', 0)} account(s), {counts.get('mailboxes', 0)} "
            f"mailbox(es), {counts.get('messages', 0)} message(s), {counts.get('blobs', 0)} "
            f"sealed blob(s), {job.result.bytes} bytes in {len(manifest.files)} file(s), "
            f"{job.result.seconds} s.")


def install_console_operations(forms: AdminForms, app: App,
                               view: Callable[..., Response]) -> None:
    root = app.config.backup_root
    jobs = BackupJobs()
    history = backup_root.BackupHistory()

    # -- backups --------------------------------------------------------------------------

    async def backups_page(console: ConsoleSession, status: int = 200,
                           error: str | None = None) -> Response:
        regions = await app.control.list_regions()
        last = await history.latest(app.audit)
        kept = await asyncio.to_thread(backup_root.listing, root)
        backups: list[dict[str, Any]] = []
        for item in kept:
            if not item.is_backup:
                continue
            m = item.manifest
            backups.append({"name": item.name, "manifest": m, "problem": item.problem,
                            "restore": restore_command(app, m.region, item.name)
                            if m else None})
        started = [{"job": j, "progress": await asyncio.to_thread(j.progress)
                    if j.running else None, "said": said(j)} for j in jobs.list()]
        return view("console/backups.html", console, status, title="Backups",
                    area="/console/backups", regions=regions, last=last, jobs=started,
                    backups=backups, root=str(root), error=error)

    forms.page("/backups", backups_page)

    @forms.post("/backups", backups_page, "/console/backups", 422)
    async def back_up(console: ConsoleSession, form: dict[str, str]) -> str:
        region = form.get("region", "")
        app.cells.get(region)  # an unknown region is refused here, not in the background
        target = backup_root.new_entry(root, region)
        service = BackupService(app.cells, app.control, app.legal, app.audit, app.peers,
                                app.config.home)
        job = jobs.start(BackupJob(region, target, console.name),
                         lambda: service.backup(region, target, actor=console.name))
        return (f"Backing up region {region} into {job.name}: this page shows how far it "
                "got; reload it to follow.")

    @forms.post("/backups/verify", backups_page, "/console/backups", 422)
    async def verify_backup(console: ConsoleSession, form: dict[str, str]) -> str:
        name = form.get("name", "")
        try:
            manifest = await asyncio.to_thread(backup_root.verify_backup, root, name)
        except BackupDamaged as exc:
            event(LogEvent.BACKUP_VERIFIED, operator=console.name, backup=name, ok=False,
                  reason=str(exc))
            raise
        event(LogEvent.BACKUP_VERIFIED, operator=console.name, backup=manifest.backup_id,
              ok=True)
        return (f"{name} is whole: its manifest and all {len(manifest.files)} file(s) "
                f"match (region {manifest.region}, {manifest.counts.get('messages', 0)} "
                f"message(s), as of {manifest.snapshot_at}).")

    # -- the audit log ------------------------------------------------------------------

    async def audit_page(console: ConsoleSession, status: int = 200,
                         error: str | None = None) -> Response:
        directory = app.config.control_dir / AUDIT_DIR
        head = await app.audit.head() if isinstance(app.audit, AuditLog) else None
        _files, size = await asyncio.to_thread(backup_root.tree_usage, directory)
        last = await asyncio.to_thread(backup_root.last_verification, app.config.control_dir)
        return view("console/audit.html", console, status, title="Audit log",
                    area="/console/audit", head=head, size=size, last=last,
                    directory=str(directory), error=error)

    forms.page("/audit", audit_page)

    @forms.post("/audit/verify", audit_page, "/console/audit", 500)
    async def verify_audit(console: ConsoleSession, _form: dict[str, str]) -> str:
        directory = app.config.control_dir / AUDIT_DIR
        control = app.config.control_dir
        kept = await asyncio.to_thread(backup_root.kept_head, control)
        report = await asyncio.to_thread(verify_log, directory, [kept] if kept else [],
                                         kept.public_key if kept else None)
        done = await asyncio.to_thread(backup_root.save_verification, control, report,
                                       console.name, kept)
        event(LogEvent.LOG_VERIFIED, operator=console.name, events=report.events,
              intact=report.intact, findings=len(report.findings))
        summary = (f"{report.events} events, {report.heads_checked} signed heads, "
                   f"{report.reveals_checked} reveals checked"
                   + (f", still holding the head of {kept.tree_size} events verified before"
                      if kept else ""))
        if done.intact:
            return f"The audit log is intact: {summary}."
        raise InvalidInput(f"the audit log is NOT intact ({summary}): "
                           + "; ".join(done.findings))

    # -- mail export and import ---------------------------------------------------------

    async def mail_page(console: ConsoleSession, status: int = 200,
                        error: str | None = None) -> Response:
        sources = [i.name for i in await asyncio.to_thread(backup_root.listing, root)
                   if not i.is_backup]
        return view("console/mail.html", console, status, title="Mail export and import",
                    area="/console/mail",
                    accounts=[a.address for a in await app.accounts.list()],
                    sources=sources, root=str(root), error=error)

    forms.page("/mail", mail_page)

    @forms.router.post("/mail/export")
    async def export_mail(request: Request) -> Response:
        # Not forms.post: the owner's password is checked in the fair queue of the
        # operator's address, as a sign-in from there would be.
        async def export(console: ConsoleSession, form: dict[str, str]) -> str:
            address, fmt = form.get("address", "").strip(), form.get("format", "")
            if fmt not in FORMATS:
                raise InvalidInput(f"format {fmt!r}: choose maildir or mbox-folders")
            try:
                session = await app.accounts.authenticate(
                    address, form.get("password", ""), client=client(request))
            except AuthenticationFailed:
                raise AuthenticationFailed(f"that is not the password of {address}: "
                                           "nothing was exported") from None
            target = backup_root.new_entry(root, "export")
            counts = await folder_transfer.export_tree(app.mailboxes, session, target,
                                                       FORMATS[fmt], audit=app.audit,
                                                       actor=console.name)
            return (f"Exported {counts.messages} message(s) in {counts.folders} folder(s) "
                    f"of {address} to {target} ({fmt}). It is PLAINTEXT: copy it to an "
                    "encrypted disk and delete it from there when done.")
        return await forms.act(request, export, mail_page, "/console/mail", 422)

    @forms.post("/mail/import", mail_page, "/console/mail", 422)
    async def import_mail(console: ConsoleSession, form: dict[str, str]) -> str:
        address = form.get("address", "").strip()
        source = backup_root.entry(root, form.get("source", ""))
        mailbox = form.get("mailbox", "").strip() or None
        ref = await app.accounts.resolve(address)
        counts = await folder_transfer.import_tree(app.delivery, app.mailboxes, ref, source,
                                                   mailbox, audit=app.audit,
                                                   actor=console.name)
        return (f"Imported {counts.messages} message(s) in {counts.folders} folder(s) "
                f"from {source.name} into {address}.")
