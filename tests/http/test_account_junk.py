"""The privacy center's Junk tab (issue 16 point 5) through httpx against the real
application: it says whether the operator has the spam filter on, whether rspamd
answers (a real rspamd, tests/support/rspamd.py; and a closed port), whether moves
into and out of Junk teach it, and where junk goes for this account."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from letterlock import config as config_mod
from letterlock.app import App
from support.env import PASSWORD, make_config
from support.rspamd import Rspamd, running_rspamd

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
    assert "Junk folder <strong>Junk</strong>, which holds 0 messages now" in text


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
    assert "Junk folder <strong>Junk</strong>, which holds 1 message now" in " ".join(
        page.text.split()
    )
