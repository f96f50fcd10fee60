"""Real clients against the listeners: swaks (plain, STARTTLS, pipelining, AUTH,
LMTP) and Postfix's smtp-source."""

from __future__ import annotations

import asyncio
import shutil

import pytest

from smtp.conftest import ALICE, BOB, World
from support.env import PASSWORD

SWAKS = shutil.which("swaks")
SMTP_SOURCE = shutil.which("smtp-source")
needs_swaks = pytest.mark.skipif(SWAKS is None, reason="swaks not installed (see .ci/run)")
needs_source = pytest.mark.skipif(SMTP_SOURCE is None,
                                  reason="postfix smtp-source not installed (see .ci/run)")


async def run(*argv: str, timeout: float = 60) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode("utf-8", "replace")


def swaks(port: int, *args: str) -> list[str]:
    assert SWAKS is not None
    return [SWAKS, "--server", f"127.0.0.1:{port}", "--helo", "client.test",
            "--timeout", "20", *args]


@needs_swaks
async def test_swaks_mx_with_starttls_and_pipelining(world: World) -> None:
    code, out = await run(*swaks(world.mx_port, "--from", "x@remote.test", "--to",
                                 f"{ALICE},{BOB}", "--tls", "--pipeline",
                                 "--header", "Subject: via swaks"))
    assert code == 0, out
    for address in (ALICE, BOB):
        [stored] = await world.inbox(address)
        assert b"Subject: via swaks" in stored
        assert b"with ESMTPS id" in stored


@needs_swaks
async def test_swaks_unknown_user_and_relay_refused(world: World) -> None:
    code, out = await run(*swaks(world.mx_port, "--from", "x@remote.test",
                                 "--to", "nobody@example.test"))
    assert code != 0 and "550 5.1.1" in out
    code, out = await run(*swaks(world.mx_port, "--from", "x@remote.test",
                                 "--to", "victim@elsewhere.test"))
    assert code != 0 and "550 5.7.1" in out


@needs_swaks
@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
async def test_swaks_submission_auth(world: World, mechanism: str) -> None:
    code, out = await run(*swaks(world.submission_port, "--tls", "--auth", mechanism,
                                 "--auth-user", ALICE, "--auth-password", PASSWORD,
                                 "--from", ALICE, "--to", BOB))
    assert code == 0, out
    assert len(await world.inbox(BOB)) == 1


@needs_swaks
async def test_swaks_submission_refusals(world: World) -> None:
    # No TLS: AUTH is not even offered.
    code, out = await run(*swaks(world.submission_port, "--auth", "PLAIN", "--auth-user",
                                 ALICE, "--auth-password", PASSWORD, "--from", ALICE,
                                 "--to", BOB))
    assert code != 0
    # Someone else's address as sender.
    code, out = await run(*swaks(world.submission_port, "--tls", "--auth", "PLAIN",
                                 "--auth-user", ALICE, "--auth-password", PASSWORD,
                                 "--from", BOB, "--to", BOB))
    assert code != 0 and "553 5.7.1" in out
    # Without AUTH at all.
    code, out = await run(*swaks(world.submission_port, "--tls", "--from", ALICE,
                                 "--to", BOB))
    assert code != 0 and "530 5.7.0" in out
    assert await world.inbox(BOB) == []


@needs_swaks
async def test_swaks_lmtp(world: World) -> None:
    assert world.lmtp_port is not None
    code, out = await run(*swaks(world.lmtp_port, "--protocol", "LMTP", "--from",
                                 "x@remote.test", "--to", f"{ALICE},{BOB}"))
    assert code == 0, out
    assert len(await world.inbox(ALICE)) == 1 and len(await world.inbox(BOB)) == 1


@needs_source
async def test_smtp_source_parallel_sessions(world: World) -> None:
    assert SMTP_SOURCE is not None
    code, out = await run(SMTP_SOURCE, "-s", "5", "-m", "50", "-l", "2048", "-f",
                          "load@remote.test", "-t", ALICE, f"127.0.0.1:{world.mx_port}",
                          timeout=120)
    assert code == 0, out
    stored = await world.inbox(ALICE)
    assert len(stored) == 50
    assert all(len(m) > 2048 for m in stored)
