"""The privacy center's legal tab: what a user may know of the legal requests about
them, built from the same source as the access feed so the two never disagree.

- the matters are those the audit log names in the clear for this account (events
  still under a non-disclosure order are commitments there, and appear nowhere);
- each matter lists its events with the access feed's words (``describe``), and the
  notices sent to the user about it;
- active preservation holds are the legal store's live holds on the account whose
  placing is readable in the log (a hold under a gag stays hidden, as its event is).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from letterlock.errors import LetterlockError
from letterlock.policy import format_time
from letterlock.services.legal.matters import LegalService
from letterlock.services.transparency.access_feed import AccessFeed

PAGE = 500
HOLD_PLACED = "legal:hold:placed"


async def feed_events(feed: AccessFeed, address: str) -> list[dict[str, Any]]:
    """Every event of ``address``'s access feed, oldest first."""
    out: list[dict[str, Any]] = []
    after = -1
    while True:
        page = await feed.page_async(address, after, PAGE)
        out += page.events
        if page.next_after is None:
            return out
        after = page.next_after


async def legal_tab(legal: LegalService, feed: AccessFeed | None, address: str,
                    now: datetime,
                    describe: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
    """The template context of the legal tab: ``available`` (the log could be read),
    ``matters`` (each with its events and notices, newest first), ``holds``."""
    events: list[dict[str, Any]] = []
    available = feed is not None
    if feed is not None:
        try:
            events = [describe(e) for e in await feed_events(feed, address)]
        except LetterlockError:
            available = False
    legal_events = [e for e in events if e["matter"] and e["type"].startswith("legal:")]
    matters: dict[str, dict[str, Any]] = {}
    for event in legal_events:
        matters.setdefault(event["matter"], {"id": event["matter"], "events": [],
                                             "notices": []})["events"].append(event)
    for notice in await legal.notices_for(address):
        entry = matters.setdefault(notice.matter_id, {"id": notice.matter_id, "events": [],
                                                      "notices": []})
        entry["notices"].append({
            "sent_at": None if notice.sent_at is None else format_time(notice.sent_at),
            "text": notice.text})
    placed = {(e["matter"]) for e in legal_events if e["type"] == HOLD_PLACED}
    holds = [{"matter": h.matter_id, "placed_at": format_time(h.placed_at),
              "expires_at": format_time(h.expires_at)}
             for h in await legal.active_holds(address, now) if h.matter_id in placed]
    ordered = sorted(matters.values(), key=_latest, reverse=True)
    return {"available": available, "matters": ordered, "holds": holds}


def _latest(matter: dict[str, Any]) -> str:
    times = [str(e["when"]) for e in matter["events"]]
    times += [str(n["sent_at"]) for n in matter["notices"] if n["sent_at"]]
    return max(times, default="")
