"""``letterlock legal``: the matter file (services/legal/matter_file.py): the
matter-file key, originals, case numbers, notes, the export of a whole matter and
search over matters. Registered on the ``legal`` group by cli/main.py."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click
from rich.table import Table

from letterlock.cli.common import (
    CliContext,
    ask_password,
    console,
    fail,
    load_config,
    read_stdin_lines,
    run,
)
from letterlock.cli.legal import ACTOR_OPTION, _with_service
from letterlock.cli.legal_impact import FORMATS_DOC
from letterlock.config import Config
from letterlock.crypto.keys import KdfParams
from letterlock.errors import InvalidInput
from letterlock.services.legal.file_key import change_passphrase, create_file_key
from letterlock.services.legal.letter_text import LETTER_KINDS
from letterlock.services.legal.letters import verify_letter
from letterlock.services.legal.matter import Matter
from letterlock.services.legal.matter_file import LetterInfo, MatterQuery
from letterlock.services.legal.matters import LegalService

PASSPHRASE_PROMPT = "Matter-file passphrase"


def _config(ctx: click.Context) -> Config:
    obj = ctx.find_object(CliContext)
    if obj is None:
        fail("no HOME", 2)
    return load_config(obj)


def _work_dir(config: Config) -> Path:
    return config.control_dir / "legal"


def _write_private(path: Path, data: bytes) -> None:
    """An opened original or an export: readable by its owner only."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError as exc:
        fail(f"{path}: {exc.strerror or exc}", 2)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


@click.group("file-key")
def file_key_cmd() -> None:
    """The matter-file key that originals are sealed to; the legal team keeps its
    passphrase (the operator's disk alone cannot open an original)."""


@file_key_cmd.command("create")
@click.option("--passphrase-stdin", is_flag=True, help="Read the passphrase from stdin.")
@click.pass_context
def file_key_create_cmd(ctx: click.Context, passphrase_stdin: bool) -> None:
    """Make the matter-file key; prints its recovery code ONCE."""
    config = _config(ctx)
    passphrase = ask_password(passphrase_stdin, PASSPHRASE_PROMPT)
    params = KdfParams(
        config.crypto.argon2_memory_kib, config.crypto.argon2_iterations, config.crypto.argon2_lanes
    )

    async def work() -> str:
        return create_file_key(_work_dir(config), passphrase, params)

    code = run(work)
    click.echo(
        "matter-file key made; its recovery code (shown once, keep it apart from the passphrase):"
    )
    click.echo(code)


@file_key_cmd.command("passwd")
@click.option(
    "--recovery",
    is_flag=True,
    help="Open the key with the recovery code instead of the old passphrase.",
)
@click.pass_context
def file_key_passwd_cmd(ctx: click.Context, recovery: bool) -> None:
    """Change the passphrase: reads the old passphrase (or the recovery code) and the
    new one, one line each, from stdin."""
    config = _config(ctx)
    old, new = read_stdin_lines(2, "the old passphrase (or recovery code) and the new one")
    params = KdfParams(
        config.crypto.argon2_memory_kib, config.crypto.argon2_iterations, config.crypto.argon2_lanes
    )

    async def work() -> None:
        change_passphrase(_work_dir(config), old, new, recovery=recovery, params=params)

    run(work)
    click.echo("passphrase changed")


@click.command("attach")
@click.argument("matter_id")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", default=None, help="The file name to record (default: PATH's).")
@click.option("--media-type", default=None, help="e.g. application/pdf (default: sniffed).")
@click.option("--json", "as_json", is_flag=True)
@ACTOR_OPTION
@click.pass_context
def attach_cmd(
    ctx: click.Context,
    matter_id: str,
    path: Path,
    name: str | None,
    media_type: str | None,
    as_json: bool,
    actor: str,
) -> None:
    """File the original order document (any bytes: PDF, image, text) with a matter:
    sealed to the matter-file key, its SHA-256 recorded and logged."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        fail(f"{path}: {exc.strerror or exc}", 2)
    attachment = _with_service(
        ctx, lambda s: s.attach(matter_id, actor, data, name or path.name, media_type)
    )
    if as_json:
        click.echo(json.dumps(attachment.to_json(), indent=2))
    else:
        click.echo(
            f"{attachment.id} {attachment.sha256} {attachment.size} "
            f"{attachment.media_type} {attachment.name}"
        )


@click.command("attachment")
@click.argument("matter_id")
@click.argument("attachment_id")
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the original (mode 0600).",
)
@click.option("--passphrase-stdin", is_flag=True, help="Read the passphrase from stdin.")
@ACTOR_OPTION
@click.pass_context
def attachment_cmd(
    ctx: click.Context,
    matter_id: str,
    attachment_id: str,
    out: Path,
    passphrase_stdin: bool,
    actor: str,
) -> None:
    """Open a filed original with the matter-file passphrase: its seal and SHA-256
    are checked (a changed or swapped file is refused), and the opening is logged."""
    passphrase = ask_password(passphrase_stdin, PASSPHRASE_PROMPT)
    attachment, data = _with_service(
        ctx, lambda s: s.open_attachment(matter_id, attachment_id, actor, passphrase)
    )
    _write_private(out, data)
    click.echo(
        f"{out}: {attachment.name}, {attachment.size} bytes, sha256 {attachment.sha256} (checked)"
    )


@click.command("case-number")
@click.argument("matter_id")
@click.argument("number")
@ACTOR_OPTION
@click.pass_context
def case_number_cmd(ctx: click.Context, matter_id: str, number: str, actor: str) -> None:
    """Record (or correct) the case number the order carries."""
    record = _with_service(ctx, lambda s: s.set_case_number(matter_id, actor, number))
    click.echo(f"{record.matter_id}: case number {record.case_number}")


@click.command("note")
@click.argument("matter_id")
@click.argument("text", required=False)
@ACTOR_OPTION
@click.pass_context
def note_cmd(ctx: click.Context, matter_id: str, text: str | None, actor: str) -> None:
    """Add a note to the matter (TEXT, or standard input when absent). Notes are
    append-only: each keeps its author and time."""
    body = text if text is not None else sys.stdin.read()
    note = _with_service(ctx, lambda s: s.add_note(matter_id, actor, body))
    click.echo(f"{matter_id}: note {note.number} by {note.added_by}")


@click.command("matter-file")
@click.argument("matter_id")
@click.option(
    "--json", "as_json", is_flag=True, help=f"Print the matter file's JSON ({FORMATS_DOC})."
)
@click.pass_context
def matter_file_cmd(ctx: click.Context, matter_id: str, as_json: bool) -> None:
    """Show the matter file: case number, notes, originals, letters."""
    record = _with_service(ctx, lambda s: s.matter_file(matter_id))
    if as_json:
        click.echo(json.dumps(record.to_json(), indent=2))
        return
    out = console()
    out.print(f"matter {record.matter_id}: case number {record.case_number or '-'}")
    for a in record.attachments:
        out.print(
            f"original {a.id}: {a.name} ({a.media_type}, {a.size} bytes) sha256 "
            f"{a.sha256}, filed {a.added_at:%Y-%m-%d %H:%M} by {a.added_by}"
        )
    for letter in record.letters:
        out.print(
            f"letter {letter.id}: {letter.kind} for decision {letter.stage}, "
            f"{letter.issued_at:%Y-%m-%d %H:%M} by {letter.issued_by}"
        )
    for n in record.notes:
        out.print(
            f"note {n.number} ({n.added_at:%Y-%m-%d %H:%M}, {n.added_by}): {n.text}", markup=False
        )


@click.command("export")
@click.argument("matter_id")
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(path_type=Path),
    help="The zip to write (mode 0600), or a directory to write it in.",
)
@click.option(
    "--with-originals",
    is_flag=True,
    help="Put the originals in opened (asks for the matter-file passphrase); "
    "without it they are in it as sealed.",
)
@click.option("--passphrase-stdin", is_flag=True, help="Read the passphrase from stdin.")
@ACTOR_OPTION
@click.pass_context
def export_cmd(
    ctx: click.Context,
    matter_id: str,
    out: Path,
    with_originals: bool,
    passphrase_stdin: bool,
    actor: str,
) -> None:
    """Export the whole matter (request, facts, decisions, stages, notes, originals,
    letters, its audit events, package manifests) as one signed zip; check it with
    `legal verify-package`."""
    passphrase = ask_password(passphrase_stdin, PASSPHRASE_PROMPT) if with_originals else None
    export = _with_service(ctx, lambda s: s.export(matter_id, actor, passphrase))
    target = out / export.name if out.is_dir() else out
    _write_private(target, export.data)
    click.echo(f"{target}: {export.items} files, sha256 {export.sha256}")


def _search_table(matters: list[Matter], numbers: dict[str, str | None]) -> Table:
    table = Table(title="Legal matters found")
    for column in ("id", "state", "case number", "issuer", "instrument", "targets"):
        table.add_column(column)
    for m in matters:
        issuer = m.request.issuer
        table.add_row(
            m.id,
            m.state,
            numbers.get(m.id) or "",
            f"{issuer.authority} {issuer.name} ({issuer.country})".strip(),
            m.request.instrument,
            ", ".join(m.request.targets),
        )
    return table


@click.command("search")
@click.option("--case-number", default=None, help="A part of the case number.")
@click.option("--target", default=None, help="A part of a target's address.")
@click.option(
    "--authority", default=None, help="The issuer's kind (court, police...) or a part of its name."
)
@click.option("--instrument", default=None, help="e.g. us-warrant.")
@click.option("--state", default=None, help="e.g. evaluated, closed.")
@click.option("--text", default=None, help="A part of a note's text.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def search_cmd(
    ctx: click.Context,
    case_number: str | None,
    target: str | None,
    authority: str | None,
    instrument: str | None,
    state: str | None,
    text: str | None,
    as_json: bool,
) -> None:
    """Find matters: every term given must match (text terms ignore case)."""
    query = MatterQuery(case_number, target, authority, instrument, state, text)
    if query.empty():
        fail(
            str(
                InvalidInput(
                    "give at least one of --case-number, --target, --authority, "
                    "--instrument, --state, --text"
                )
            ),
            2,
        )

    async def work(service: LegalService) -> tuple[list[Matter], dict[str, str | None]]:
        found = await service.search(query)
        numbers = {m.id: (await service.matter_file(m.id)).case_number for m in found}
        return found, numbers

    found, numbers = _with_service(ctx, work)
    if as_json:
        click.echo(json.dumps([m.to_json() for m in found], indent=2))
        return
    console().print(_search_table(found, numbers))


@click.command("letters")
@click.argument("matter_id")
@click.option(
    "--kind",
    "kinds",
    multiple=True,
    type=click.Choice(LETTER_KINDS),
    help="Only this kind (repeatable; default: both).",
)
@click.option("--json", "as_json", is_flag=True)
@ACTOR_OPTION
@click.pass_context
def letters_cmd(
    ctx: click.Context, matter_id: str, kinds: tuple[str, ...], as_json: bool, actor: str
) -> None:
    """Write the signed letters for the matter's current decision: the response to the
    issuing authority (the legal basis of each outcome) and, for a production, its
    certificate; HTML and PDF, kept with the matter. Prints where they are."""

    async def work(service: LegalService) -> list[tuple[LetterInfo, Path]]:
        issued = await service.issue_letters(matter_id, actor, kinds or LETTER_KINDS)
        return [(x, service.letter_path(x)) for x in issued]

    issued = _with_service(ctx, work)
    if as_json:
        click.echo(json.dumps([{**x.to_json(), "path": str(p)} for x, p in issued], indent=2))
        return
    for letter, folder in issued:
        click.echo(f"{letter.id} {letter.kind} (decision {letter.stage}): {folder}/letter.pdf")


@click.command("verify-letter")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--signature",
    "sig_path",
    default=None,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The detached signature (default: PATH.sig).",
)
@click.option("--public-key", default=None, help="Pin the operator's key (hex).")
def verify_letter_cmd(path: Path, sig_path: Path | None, public_key: str | None) -> None:
    """Check a letter's detached Ed25519 signature (letter.pdf with letter.pdf.sig)."""
    signature = sig_path or path.with_name(path.name + ".sig")
    try:
        data, sig = path.read_bytes(), signature.read_bytes()
    except OSError as exc:
        fail(f"{signature}: {exc.strerror or exc}", 2)
    try:
        check = verify_letter(data, sig, public_key)
    except InvalidInput as exc:
        fail(f"{signature}: {exc}", 2)
    for problem in check.problems:
        click.echo(f"{path}: {problem}", err=True)
    if not check.ok:
        raise SystemExit(1)
    click.echo(f"ok: letter {check.letter} of matter {check.matter}, key {check.public_key}")


FILE_COMMANDS = (
    file_key_cmd,
    attach_cmd,
    attachment_cmd,
    case_number_cmd,
    note_cmd,
    matter_file_cmd,
    export_cmd,
    search_cmd,
    letters_cmd,
    verify_letter_cmd,
)
"""The matter-file commands, added to ``letterlock legal`` by cli/main.py."""
