"""The matter file survives a crash at any point between its writes: a child files a
request, files an original, writes a note and the case number, decides, issues the
letters and exports the matter, stopping after each durable write (legal database
transaction, audit log append, an original's sealed file, a letter's folder); the
test SIGKILLs it there, once per write, then opens the HOME again and checks that
every original, note, case number and letter recorded is whole and logged exactly
once, and that the steps left can still be taken."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from letterlock.app import open_app
from letterlock.services.legal.letters import LETTER_FILES, verify_letter
from support.env import make_config
from support.legal_file_steps import ORIGINAL, PASSPHRASE

from .test_matter_crash import REQUEST, _events_of, kill_at_each_write


async def _check_whole(home: Path) -> None:
    async with open_app(make_config(home)) as app:
        for matter in await app.legal.list_matters():
            record = await app.legal.matter_file(matter.id)
            opened = await app.legal.read_attachments(matter.id, PASSPHRASE)
            assert [data for _, data in opened] == [ORIGINAL] * len(record.attachments)
            for letter in record.letters:
                folder = app.legal.letter_path(letter)
                assert sorted(p.name for p in folder.iterdir()) == sorted(LETTER_FILES)
                for name in ("letter.pdf", "letter.html"):
                    check = verify_letter(
                        (folder / name).read_bytes(), (folder / f"{name}.sig").read_bytes()
                    )
                    assert check.ok, check.problems
            kinds = _events_of(home, matter.id, False)
            expected = Counter(
                {
                    "legal:attachment:added": len(record.attachments),
                    "legal:note:added": len(record.notes),
                    "legal:case-number:set": 1 if record.case_number else 0,
                    "legal:letter:issued": len(record.letters),
                }
            )
            assert {k: kinds[k] for k in expected} == dict(expected), kinds
            # ...and what is left can be done.
            if not record.attachments:
                await app.legal.attach(matter.id, "counsel", ORIGINAL, "order.pdf")
            if matter.state == "evaluated":
                await app.legal.decide(matter.id, "counsel")
            if len(record.letters) < 2:
                await app.legal.issue_letters(matter.id, "counsel")
            await app.legal.export(matter.id, "counsel", PASSPHRASE)


async def test_sigkill_between_the_writes_of_the_matter_file(tmp_path: Path) -> None:
    request = {**REQUEST, "categories": ["subscriber"]}
    kills, lines = await kill_at_each_write(tmp_path, request, _check_whole, "matter-file")
    assert "STEP exported" in lines
    assert kills >= 12, f"only {kills} writes: the steps did not run as expected"
