"""`letterlock queue list|show|hold|retry|delete` against a running `letterlock serve`:
a message for another domain waits in the outbound queue (its smarthost does not
answer); the operator sees why and when it is tried next, holds it, releases it (it
is tried at once, not at its back-off time), and deletes it; the server takes each
change at once (peer bus) and logs it."""

from __future__ import annotations

import json
import time
from pathlib import Path

from support import mail_scenario as ms
from support.cli import letterlock


def _queue(home: Path, *args: str) -> str:
    return letterlock(home, "queue", *args).stdout


def _listed(home: Path) -> list[dict[str, object]]:
    listed: list[dict[str, object]] = json.loads(_queue(home, "list", "--json"))
    return listed


def _wait_log(served: ms.Served, text: str, count: int = 1, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while sum(text in line for line in served.output) < count:
        assert time.monotonic() < deadline, f"no {text!r} x{count} in\n" + "".join(served.output)
        time.sleep(0.05)


def test_an_operator_lists_holds_releases_and_deletes_a_queued_message(
        tmp_path: Path) -> None:
    home = tmp_path / "home"
    ms.prepare(home)
    served = ms.serve(home, log_addresses="full")
    try:
        ms.submission(served)  # one message for FOREIGN, tried once and deferred
        ms.wait_for(served, "queue:delivery:deferred")
        [entry] = _listed(home)
        assert entry["mail_from"] == ms.ALICE and entry["attempts"] == 1
        assert entry["held"] is False and entry["queue_id"]
        [rcpt] = entry["recipients"]  # type: ignore[misc]
        assert (rcpt["address"], rcpt["state"], rcpt["status"]) == (ms.FOREIGN, "pending",
                                                                   "4.4.1")
        entry_id = str(entry["id"])
        shown = _queue(home, "show", entry_id[:8])
        assert entry_id in shown and ms.FOREIGN in shown and "4.4.1" in shown
        assert ms.BODY not in shown and ms.SUBJECT not in shown  # never the message
        assert "1 message(s)" in _queue(home, "list")

        assert _queue(home, "hold", entry_id[:8]).strip() == f"held {entry_id}"
        _wait_log(served, "event=queue:message:changed")
        assert _listed(home)[0]["held"] is True
        assert "on hold" in _queue(home, "list")

        # Released: tried now, not after its five-minute back-off.
        assert _queue(home, "retry", entry_id).strip() == f"retrying {entry_id}"
        _wait_log(served, "event=queue:delivery:deferred", count=2, timeout=20)
        [again] = _listed(home)
        assert again["attempts"] == 2 and again["held"] is False

        assert _queue(home, "delete", "--yes", entry_id).strip() == f"deleted {entry_id}"
        _wait_log(served, "event=queue:message:deleted")
        assert _listed(home) == []
        assert "empty" in _queue(home, "list")
        assert not list(home.glob("regions/*/outbound/*"))
    finally:
        output = ms.stop(served)
    changed = [r for r in ms.records(output, "logfmt") if r["event"].startswith("queue:message:")]
    assert [(r["event"], r.get("held")) for r in changed] == [
        ("queue:message:queued", None), ("queue:message:changed", "true"),
        ("queue:message:changed", "false"), ("queue:message:deleted", None)]


def test_bad_queue_ids_get_one_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    ms.prepare(home)
    short = letterlock(home, "queue", "show", "abc", check=False)
    assert short.returncode != 0 and "at least 6" in short.stderr
    missing = letterlock(home, "queue", "hold", "abcdef", check=False)
    assert missing.returncode != 0 and "no queued message abcdef" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
