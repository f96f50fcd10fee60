"""Child steps for the matter-file crash test (``legal_steps.py HOME REQUEST
matter-file``): files a request, files an original, writes a note and the case
number, decides, issues the letters and exports the matter, stopping after every
durable write (legal database transaction, audit log append, an original's sealed
file, a letter's folder) like legal_steps.py."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from letterlock.app import open_app
from letterlock.crypto.keys import KdfParams
from letterlock.services.legal import letters, matter_file
from letterlock.services.legal.file_key import create_file_key
from support.env import make_config
from support.legal_steps import _pause, _watch_audit_appends, _watch_legal_writes

PASSPHRASE = "the legal team's long passphrase"
ORIGINAL = b"%PDF-1.4\n% the order as served\n%%EOF\n"


def _watch_files() -> None:
    sealed, folder = matter_file._write_sealed, letters._write_letter

    def write_sealed(path: Path, data: bytes) -> None:
        sealed(path, data)
        _pause("sealed original")

    def write_letter(path: Path, files: Any) -> None:
        folder(path, files)
        _pause("letter files")

    matter_file._write_sealed = write_sealed
    letters._write_letter = write_letter  # type: ignore[assignment]


def _step(name: str) -> None:
    sys.stdout.write(f"STEP {name}\n")
    sys.stdout.flush()


async def main(home: Path, request: dict[str, Any]) -> None:
    config = make_config(home)
    create_file_key(config.control_dir / "legal", PASSPHRASE, KdfParams(1024, 1, 1))
    _watch_audit_appends()
    _watch_files()
    async with open_app(config) as app:
        _watch_legal_writes(app.legal._store._db)
        matter = await app.legal.file(request, "counsel")
        _step(f"filed {matter.id}")
        await app.legal.attach(matter.id, "counsel", ORIGINAL, "order.pdf")
        await app.legal.add_note(matter.id, "counsel", "Served in person.")
        await app.legal.set_case_number(matter.id, "counsel", "25-mj-1")
        await app.legal.decide(matter.id, "counsel")
        await app.legal.issue_letters(matter.id, "counsel")
        await app.legal.export(matter.id, "counsel", PASSPHRASE)
        _step("exported")
