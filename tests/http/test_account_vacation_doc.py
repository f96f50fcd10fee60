"""docs/sieve.md, "Vacation and junk from the privacy center": the script the worked
example shows is exactly what the form writes for the settings it describes, and the
same rule put into Alice's script of the first worked example parses, runs first,
and comes out again leaving her script as it was."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

from letterlock import sieve
from letterlock.services.mail.filters.vacation_form import (
    VacationSettings,
    insert_section,
    own_script,
    read_section,
    remove_section,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "sieve.md"
BOBS = VacationSettings(
    True,
    "Away until 14 June",
    "I am away until 14 June.\nFor the shop, write to sales@example.org.",
    7,
    date(2027, 6, 1),
    date(2027, 6, 14),
    ("bob.smith@example.org",),
)


def blocks(heading: str) -> list[str]:
    section = DOC.read_text("utf-8").split(heading, 1)[1].split("\n### ", 1)[0]
    return re.findall(r"```\n(.*?)```", section, re.S)


def test_the_documented_script_is_what_the_form_writes() -> None:
    shown = blocks("### Vacation and junk from the privacy center")[0]
    assert shown == own_script(BOBS).replace("\r\n", "\n")
    assert read_section(shown) == BOBS


def test_the_rule_goes_into_the_first_examples_script_and_out_again() -> None:
    alices = blocks("### A worked example")[0]
    inserted = insert_section(alices, BOBS)
    script = sieve.parse(inserted)
    # The vacation rule comes first, before the list rule that may stop the script.
    first = next(c for c in script.commands if c.name != "require")
    assert [n.name for n in first.walk()] == [
        "if",
        "allof",
        "currentdate",
        "currentdate",
        "vacation",
    ]
    assert remove_section(inserted) == alices
