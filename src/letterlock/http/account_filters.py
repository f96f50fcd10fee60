"""The privacy center's Filters tab: the owner's scripts, which one runs, and exactly
what the running one lets the server see of each incoming message (from the script
itself: Script.reads()), or that nothing is read for filtering when none runs."""

from __future__ import annotations

from typing import Any

from letterlock.errors import LetterlockError
from letterlock.services.accounts.accounts import Session
from letterlock.services.mail.filters.scripts import FilterService


async def filter_disclosure(filters: FilterService, session: Session) -> dict[str, Any]:
    scripts = await filters.list(session.ref)
    try:
        active = await filters.active_script(session)
    except LetterlockError as exc:  # a stored script that no longer parses
        return {"scripts": scripts, "active": None, "reads": None,
                "problem": str(exc)}
    if active is None:
        return {"scripts": scripts, "active": None, "reads": None, "problem": None}
    name, script = active
    reads = script.reads()
    return {"scripts": scripts, "active": name, "problem": None,
            "reads": {"envelope": reads.envelope, "headers": sorted(reads.headers),
                      "body": reads.body, "size": reads.size,
                      "sends_mail": reads.sends_mail}}
