"""docs/sieve.md, "Using filters": the worked example's script, uploaded as the
document says, does what the document says over real SMTP: list mail in
Lists/Team (made on the way), the manager's mail flagged in INBOX, one vacation
reply per sender."""

from __future__ import annotations

import asyncio
import re
import smtplib
from collections.abc import Sequence
from pathlib import Path

from letterlock.services.accounts.accounts import AccountRef
from smtp.conftest import ALICE, World
from support.env import PASSWORD

DOC = Path(__file__).resolve().parents[2] / "docs" / "sieve.md"


class Queue:
    def __init__(self) -> None:
        self.to: list[list[str]] = []

    async def submit(self, sender: AccountRef, mail_from: str, recipients: Sequence[str],
                     message: bytes, *, sign_for: str | None = None) -> str:
        self.to.append(list(recipients))
        return "q"


def example_script() -> str:
    section = DOC.read_text("utf-8").split("## Using filters", 1)[1]
    found = re.search(r"```\n(.*?)```", section, re.S)
    assert found, "the worked example has a script"
    # The document speaks of alice@example.org; the test world hosts example.test.
    return found.group(1).replace("alice@example.org", ALICE)


def send(port: int, sender: str, extra: str) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.sendmail(sender, [ALICE], (f"From: <{sender}>\r\nTo: <{ALICE}>\r\n{extra}"
                                          "Subject: s\r\n\r\nbody\r\n").encode())


async def test_the_worked_example_does_what_the_document_says(world: World) -> None:
    queue = Queue()
    assert world.app.delivery.filters is not None
    world.app.delivery.filters.attach_outbound(queue)
    session = await world.app.accounts.authenticate(ALICE, PASSWORD)
    await world.app.filters.put(session, "main", example_script(), via="test")
    await world.app.filters.activate(session, "main", via="test")
    list_id = "List-Id: Team <team.lists.example.org>\r\n"
    await asyncio.to_thread(send, world.mx_port, "list@lists.example.org", list_id)
    for _ in range(2):
        await asyncio.to_thread(send, world.mx_port, "boss@example.org", "")
    team = await world.app.mailboxes.get_mailbox(session, "Lists/Team")
    assert len(await world.app.mailboxes.messages(session, team.id)) == 1
    inbox = await world.app.mailboxes.get_mailbox(session, "INBOX")
    flags = [m.flags for m in await world.app.mailboxes.messages(session, inbox.id)]
    assert flags == [frozenset({"\\Flagged"})] * 2
    assert queue.to == [["boss@example.org"]]  # once per 7 days, not for the list
