"""The privacy center says that the spam filter reads mail when the operator turned
it on (``[spam] rspamd = on``), and says nothing of it otherwise."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import httpx
import pytest

from letterlock import config as config_mod
from letterlock.app import App
from support.env import PASSWORD, make_config

ALICE = "alice@example.test"


@pytest.fixture
def config(home: Path, request: pytest.FixtureRequest) -> config_mod.Config:
    mode = getattr(request, "param", "on")
    return dataclasses.replace(make_config(home), spam=config_mod.SpamConfig(
        rspamd=mode, rspamd_url="http://127.0.0.1:9", rspamd_controller_url=""))


async def overview(app: App, client: httpx.AsyncClient) -> str:
    await app.accounts.create(ALICE, "us-east", PASSWORD)
    form = await client.get("/account/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf is not None
    done = await client.post("/account/login", data={"csrf": csrf[1], "address": ALICE,
                                                      "password": PASSWORD})
    assert done.status_code == 303
    page = await client.get("/account")
    assert page.status_code == 200
    return page.text


async def test_the_overview_names_the_spam_filter(app: App, client: httpx.AsyncClient,
                                                  ) -> None:
    text = await overview(app, client)
    assert 'id="spam-filter"' in text and "rspamd" in text
    assert "move a message into or out of Junk" in text


@pytest.mark.parametrize("config", ["off"], indirect=True)
async def test_nothing_is_said_when_it_is_off(app: App, client: httpx.AsyncClient) -> None:
    assert "rspamd" not in await overview(app, client)
