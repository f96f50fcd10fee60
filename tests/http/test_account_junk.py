"""The privacy center's Junk tab (issue 16 point 5) through httpx against the real
application: it says whether the operator has the spam filter on, whether rspamd
answers (a real rspamd, tests/support/rspamd.py; and a closed port), whether moves
into and out of Junk teach it, and where junk goes for this account; the owner's
choice (Junk folder, or INBOX flagged $Junk) is saved with a CSRF form and decides
where a message rspamd calls junk lands, over real SMTP."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from letterlock import config as config_mod
from letterlock.app import App
from letterlock.config import SmtpConfig
from letterlock.services.accounts.accounts import Session
from letterlock.services.mail.filters.junk_filing import junk_choice
from letterlock.services.mail.rspamd import SpamFilter
from letterlock.smtp.server import SmtpServer
from smtp.conftest import server_tls
from smtp.test_rspamd import message, send
from support.env import PASSWORD, make_config
from support.rspamd import GTUBE_ADD_HEADER, Rspamd, running_rspamd

ALICE = "alice@example.test"
CLOSED = "http://127.0.0.1:9"


@pytest.fixture(scope="module")
def rspamd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rspamd]:
    with running_rspamd(tmp_path_factory.mktemp("rspamd")) as server:
        yield server


@pytest.fixture
def config(home: Path, request: pytest.FixtureRequest) -> config_mod.Config:
    mode = getattr(request, "param", "closed")
    if mode == "running":
        server = request.getfixturevalue("rspamd")
        spam = config_mod.SpamConfig(
            rspamd="on", rspamd_url=server.url, rspamd_controller_url=server.controller_url
        )
    elif mode == "closed":
        spam = config_mod.SpamConfig(rspamd="on", rspamd_url=CLOSED, rspamd_controller_url="")
    else:
        spam = config_mod.SpamConfig(rspamd="off")
    return dataclasses.replace(make_config(home), spam=spam)


async def junk_page(app: App, client: httpx.AsyncClient) -> str:
    await app.accounts.create(ALICE, "us-east", PASSWORD)
    form = await client.get("/account/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf is not None
    done = await client.post(
        "/account/login", data={"csrf": csrf[1], "address": ALICE, "password": PASSWORD}
    )
    assert done.status_code == 303
    page = await client.get("/account/junk")
    assert page.status_code == 200
    return " ".join(page.text.split())


@pytest.mark.parametrize("config", ["running"], indirect=True)
async def test_a_running_rspamd_is_said_to_answer(
    app: App,
    client: httpx.AsyncClient,
) -> None:
    text = await junk_page(app, client)
    assert "the spam filter <strong>rspamd</strong> switched on" in text
    assert "It is <strong>answering</strong> now." in text
    assert "Move a message into Junk to teach the filter" in text
    assert "Your Junk folder holds 0 messages now." in text
    assert 'id="junk-folder" name="junk" value="folder" checked' in text


async def test_a_silent_rspamd_is_said_not_to_answer(
    app: App,
    client: httpx.AsyncClient,
) -> None:
    text = await junk_page(app, client)
    assert "It is <strong>not answering</strong> now" in text
    assert "127.0.0.1:9" in text  # why: the refused connection
    assert "mail is delivered unchecked" in text
    assert "does not learn from you" in text  # no controller configured


@pytest.mark.parametrize("config", ["off"], indirect=True)
async def test_no_filter_is_said_plainly(app: App, client: httpx.AsyncClient) -> None:
    text = await junk_page(app, client)
    assert "<strong>no spam filter</strong> switched on" in text
    assert "answering" not in text
    # The page counts what the Junk folder holds (here: a DMARC quarantine's catch).
    ref = await app.accounts.resolve(ALICE)
    await app.delivery.deliver_junk(b"From: x@remote.test\r\nSubject: s\r\n\r\nspam\r\n", [ref])
    page = await client.get("/account/junk")
    assert "Your Junk folder holds 1 message now." in " ".join(page.text.split())


async def choose(client: httpx.AsyncClient, value: str) -> httpx.Response:
    page = await client.get("/account/junk")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    return await client.post("/account/junk", data={"csrf": csrf[1], "junk": value})


@pytest.mark.parametrize("config", ["off"], indirect=True)
async def test_the_choice_is_saved_checked_and_refused_when_odd(
    app: App, client: httpx.AsyncClient
) -> None:
    await junk_page(app, client)
    saved = await choose(client, "inbox")
    assert saved.status_code == 200
    text = " ".join(saved.text.split())
    assert "Junk now stays in your Inbox, marked as junk." in text
    assert 'id="junk-inbox" name="junk" value="inbox" checked' in text
    assert "keyword <code>$Junk</code>" in text
    odd = await choose(client, "trash")
    assert odd.status_code == 422 and "Choose the Junk folder or the Inbox." in odd.text
    ref = await app.accounts.resolve(ALICE)
    assert await junk_choice(app.filters, ref) == "inbox"  # the odd value changed nothing
    forged = await client.post("/account/junk", data={"csrf": "forged", "junk": "folder"})
    assert forged.status_code == 403
    assert await junk_choice(app.filters, ref) == "inbox"
    back = await choose(client, "folder")
    assert "Junk now goes to your Junk folder." in " ".join(back.text.split())
    assert await junk_choice(app.filters, ref) == "folder"


@pytest.mark.parametrize("config", ["running"], indirect=True)
async def test_the_choice_decides_where_rspamds_junk_lands(
    app: App, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    """A message rspamd scores "add header" (its GTUBE test pattern) arrives over
    real SMTP: in Junk by default, in INBOX flagged $Junk once the owner chose so."""
    await junk_page(app, client)
    server = SmtpServer(
        app.delivery,
        app.accounts,
        None,
        SmtpConfig(port=0, submission_port=0, sender_checks=False),
        "mx.example.test",
        server_tls(tmp_path),
        lmtp=False,
        spam=SpamFilter.from_config(app.config.spam),
    )
    mx = (await server.start()).mx
    try:
        await asyncio.to_thread(send, mx, message(GTUBE_ADD_HEADER, mid="m1"))
        assert (await choose(client, "inbox")).status_code == 200
        await asyncio.to_thread(send, mx, message(GTUBE_ADD_HEADER, mid="m2"))
        await asyncio.to_thread(send, mx, message("Lunch on Thursday?", mid="m3"))
    finally:
        await server.close()
    session = await app.accounts.authenticate(ALICE, PASSWORD)
    assert await stored(app, session, "Junk") == [("m1", frozenset())]
    assert await stored(app, session, "INBOX") == [
        ("m2", frozenset({"$Junk"})),
        ("m3", frozenset()),
    ]


async def stored(app: App, session: Session, name: str) -> list[tuple[str, frozenset[str]]]:
    """(Message-ID's local part, flags) of each message in mailbox ``name``."""
    box = await app.mailboxes.get_mailbox(session, name)
    msgs = await app.mailboxes.messages(session, box.id)
    bodies = await app.mailboxes.bodies(session, msgs)
    found = []
    for m in msgs:
        mid = re.search(rb"Message-ID: <([^@]+)@", bodies[m.uid])
        assert mid is not None and b"X-Spam-Status: " in bodies[m.uid]
        found.append((mid[1].decode(), m.flags))
    return found
