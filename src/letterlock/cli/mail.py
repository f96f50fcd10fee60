"""`letterlock mail import|export|migrate`: mail in and out of an account, and from
one IMAP server to another. Each run logs one structured line with its counts (to
stderr, as the server logs), never a subject or a body."""

from __future__ import annotations

import ssl
import sys
from pathlib import Path
from typing import get_args

import click

from letterlock import app as app_mod
from letterlock.cli.common import (
    CliContext,
    ask_password,
    fail,
    load_config,
    pass_ctx,
    read_stdin_lines,
    run,
    run_with_app,
)
from letterlock.mime import utf7
from letterlock.services.mail import folder_transfer, imap_migration, transfer
from letterlock.services.mail.folder_transfer import Counts, TreeFormat
from letterlock.services.operations import logs

PLAINTEXT_WARNING = (
    "The export holds the mail in PLAINTEXT (it is unsealed with the password): files "
    "are made 0600 and directories 0700; keep them on an encrypted disk and delete "
    "them when done.")


@click.group()
def mail() -> None:
    """Import, export and migrate mail (docs/migration.md)."""


@mail.command("import")
@click.argument("address")
@click.argument("source", type=click.Path(path_type=Path))
@click.option("--mailbox", default=None,
              help="Where a lone file goes (default INBOX); for a Maildir or mbox tree, "
                   "the folder that takes its INBOX, other folders below it (default: "
                   "every folder under its own name).")
@pass_ctx
def mail_import(ctx: CliContext, address: str, source: Path, mailbox: str | None) -> None:
    """Import SOURCE into ADDRESS's account: a Maildir++ tree (every folder, flags,
    keywords from dovecot-keywords, dates, subscriptions), a directory of mbox files
    (one per folder, flags from Status:/X-Status:/X-Keywords:), one mbox file or one
    .eml file. Everything is checked first: input that is not mail is refused and
    nothing is stored. No password is needed: mail is sealed to the account's
    public key."""
    config = load_config(ctx)

    async def go(app: app_mod.App) -> Counts:
        ref = await app.accounts.resolve(address)
        return await folder_transfer.import_tree(app.delivery, app.mailboxes, ref, source,
                                                 mailbox, audit=app.audit)

    stop_logging = logs.configure(config)
    try:
        counts = run_with_app(config, go)
    finally:
        stop_logging()
    where = f" {mailbox}" if mailbox else ""
    click.echo(f"imported {counts.messages} message(s) in {counts.folders} folder(s) "
               f"into {address}{where}")


@mail.command("export", epilog=PLAINTEXT_WARNING)
@click.argument("address")
@click.option("--out", "out", required=True, type=click.Path(path_type=Path),
              help="mbox file (--format mbox) or new directory to write.")
@click.option("--format", "fmt", default="mbox", show_default=True,
              type=click.Choice(["mbox", *get_args(TreeFormat)]),
              help="mbox: one file, every folder's messages in it, no flags; maildir: "
                   "a Maildir++ tree as Dovecot keeps it; mbox-folders: one mbox per "
                   "folder with flags in Status:/X-Status:/X-Keywords:.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@pass_ctx
def mail_export(ctx: CliContext, address: str, out: Path, fmt: str,
                password_stdin: bool) -> None:
    """Export ADDRESS's mail (needs the owner's password: the mail is sealed). The
    maildir and mbox-folders formats keep every folder, flags, keywords, internal
    dates and subscriptions, for `mail import` or another server (Dovecot reads the
    Maildir as it is)."""
    config = load_config(ctx)
    password = ask_password(password_stdin)

    async def go(app: app_mod.App) -> Counts:
        session = await app.accounts.authenticate(address, password)
        if fmt == "mbox":
            count = await transfer.export_mbox(app.mailboxes, session, out, audit=app.audit)
            return Counts(len(await app.mailboxes.list_mailboxes(session)), count)
        tree: TreeFormat = "maildir" if fmt == "maildir" else "mbox-folders"
        return await folder_transfer.export_tree(app.mailboxes, session, out, tree,
                                                 audit=app.audit)

    stop_logging = logs.configure(config)
    try:
        counts = run_with_app(config, go)
    finally:
        stop_logging()
    click.echo(f"exported {counts.messages} message(s) in {counts.folders} folder(s) to "
               f"{out} ({fmt}, plaintext)")


def _readable(name: str) -> str:
    """A folder name as the source server sent it (modified UTF-7), for people."""
    try:
        return utf7.decode(name)
    except ValueError:
        return name


@mail.command("migrate")
@click.argument("source_url", metavar="SOURCE")
@click.argument("target_url", metavar="TARGET")
@click.option("--state", "state_path", required=True, type=click.Path(dir_okay=False,
              path_type=Path),
              help="State file: what was copied (made if missing; the next run with it "
                   "copies only what is new).")
@click.option("--cafile", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="CA certificate(s) to trust besides the system's (a "
                                 "self-signed server certificate).")
@click.option("--insecure", is_flag=True,
              help="Do not check TLS certificates (a test server; never over a network "
                   "you do not trust).")
@click.option("--passwords-stdin", is_flag=True,
              help="Read the source's password, then the target's, one line each.")
@pass_ctx
def mail_migrate(ctx: CliContext, source_url: str, target_url: str, state_path: Path,
                 cafile: Path | None, insecure: bool, passwords_stdin: bool) -> None:
    """Copy an account from one IMAP server to another, e.g. from Dovecot to
    letterlock or back: every folder, messages byte for byte with their flags,
    keywords and internal dates, and the subscriptions. SOURCE and TARGET are
    imaps://USER@HOST[:PORT] (TLS), imap+starttls://... or imap://... (plaintext);
    write an @ in USER as %40. Run it again with the same --state to copy only mail
    that arrived since (or to go on after an interruption)."""
    config = load_config(ctx)
    if passwords_stdin or not sys.stdin.isatty():
        source_pw, target_pw = read_stdin_lines(2, "the source's and the target's password")
    else:
        source_pw = str(click.prompt("Source password", hide_input=True))
        target_pw = str(click.prompt("Target password", hide_input=True))
    context = ssl.create_default_context(cafile=str(cafile) if cafile else None)
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE

    async def go() -> imap_migration.Result:
        source = imap_migration.Endpoint.parse(source_url, source_pw)
        target = imap_migration.Endpoint.parse(target_url, target_pw)
        return imap_migration.migrate(source, target, state_path, context)

    stop_logging = logs.configure(config)
    try:
        result = run(go)
    finally:
        stop_logging()
    for name, (copied, skipped) in sorted(result.per_folder.items()):
        click.echo(f"  {_readable(name)}: {copied} copied, {skipped} already there")
    click.echo(f"migrated {result.folders} folder(s): {result.copied} message(s) copied, "
               f"{result.skipped} copied before")
    if result.folders == 0:
        fail("the source listed no folder", 1)
