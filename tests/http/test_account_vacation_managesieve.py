"""The vacation form beside a script the user keeps with a real ManageSieve client
(sieve-connect, Debian package ``sieve-connect``): the form's rule appears inside the
uploaded, running script between its marker lines; the user edits their part of the
script in the client and uploads it again, marker lines kept, and the form still reads
its rule; switching off in the form gives back exactly what the user uploaded."""

from __future__ import annotations

import asyncio
import re
import shutil
from pathlib import Path

import httpx
import pytest

from letterlock.http.server import make_api
from letterlock.services.mail.filters.vacation_form import BEGIN, END, remove_section
from managesieve.conftest import ALICE, PASSWORD, Sieve, sieve_server
from managesieve.test_sieve_connect import sieve_connect

__all__ = ["sieve_server"]

pytestmark = pytest.mark.skipif(
    shutil.which("sieve-connect") is None,
    reason="sieve-connect is not installed (Debian: sieve-connect)",
)

MINE = 'require ["fileinto"];\r\nif header :contains "subject" "[team]" { fileinto "Team"; }\r\n'
EDITED = MINE.replace("[team]", "[crew]")


async def save_form(sieve: Sieve, on: str) -> str:
    api = make_api(sieve.app)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=api), base_url="http://letterlock.test"
    ) as c:
        form = await c.get("/account/login")
        token = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert token is not None
        logged = await c.post(
            "/account/login", data={"csrf": token[1], "address": ALICE, "password": PASSWORD}
        )
        assert logged.status_code == 303
        page = await c.get("/account/vacation")
        token = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert token is not None
        fields = {
            "csrf": token[1],
            "on": on,
            "subject": "",
            "text": "Away this week.",
            "days": "7",
            "start": "",
            "end": "",
            "addresses": "",
        }
        saved = await c.post("/account/vacation", data=fields)
        assert saved.status_code == 200, saved.text
        return " ".join(saved.text.split())


async def client(port: int, *args: str) -> str:
    done = await asyncio.to_thread(sieve_connect, port, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_the_form_and_sieve_connect_share_the_running_script(
    sieve_server: Sieve, tmp_path: Path
) -> None:
    port = sieve_server.port
    local, back = tmp_path / "main.sieve", tmp_path / "back.sieve"
    local.write_text(MINE, newline="")
    await client(port, "--upload", "--localsieve", str(local), "--remotesieve", "main")
    await client(port, "--activate", "--remotesieve", "main")

    page = await save_form(sieve_server, "on")
    assert "run by your script <strong>main</strong>" in page
    await client(port, "--download", "--remotesieve", "main", "--localsieve", str(back))
    running = back.read_bytes().decode()
    assert BEGIN in running and END in running and "vacation :days 7" in running
    assert remove_section(running) == MINE
    listed = await client(port, "--list")
    assert '"main" ACTIVE' in listed.splitlines()  # still the user's script that runs

    # The user changes their own rule in the client, keeping the marked lines.
    back.write_text(running.replace("[team]", "[crew]"), newline="")
    await client(port, "--upload", "--localsieve", str(back), "--remotesieve", "main")
    page = await save_form(sieve_server, "on")  # saved again: the section replaced
    assert "run by your script <strong>main</strong>" in page
    page = await save_form(sieve_server, "off")
    assert "Vacation replies are <strong>off</strong>" in page
    await client(port, "--download", "--remotesieve", "main", "--localsieve", str(back))
    assert back.read_bytes().decode() == EDITED
