"""The HTTP front-end over real sockets: in process (uvicorn inside our event loop), and
`letterlock serve` in a subprocess on free ports. Also the legal scheduler that
`serve` runs: a gag's expiry sends the notice without anyone typing `legal tick`."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from letterlock import server as server_mod
from letterlock.app import App, initialise, open_app
from letterlock.errors import ConfigError
from letterlock.http.server import HttpServer
from letterlock.services.accounts.setup import InitOptions
from letterlock.services.operations.periodic import start_periodic
from support.env import FAST_KDF_ENV, PASSWORD, make_config


async def test_in_process_server_on_a_real_socket(app: App) -> None:
    server = HttpServer(app)
    port = await server.start("127.0.0.1", 0)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as c:
            schema = (await c.get("/openapi.json")).json()
            assert "/api/legal/matters" in schema["paths"]
            assert (await c.get("/api/operator/me")).status_code == 401
        # A second server cannot take the same port: a one-line configuration error.
        other = HttpServer(app)
        with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{port}"):
            await other.start("127.0.0.1", port)
        await other.close()
    finally:
        await server.close()
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient() as c:
            await c.get(f"http://127.0.0.1:{port}/healthz")


async def test_periodic_runner_survives_failures_and_stops() -> None:
    runs: list[float] = []

    async def work() -> None:
        runs.append(time.monotonic())
        if len(runs) == 2:
            raise RuntimeError("transient failure")

    stop = start_periodic(work, 0.05, "test")
    while len(runs) < 4:
        await asyncio.sleep(0.01)
    await stop()
    count = len(runs)
    await asyncio.sleep(0.15)
    assert len(runs) == count  # stopped for good


async def test_serve_scheduler_sends_notice_when_gag_expires(tmp_path: Path) -> None:
    config = make_config(tmp_path / "home", LETTERLOCK_LEGAL_TICK_INTERVAL_S="1")
    await initialise(config, InitOptions())
    async with open_app(config) as app:
        await app.accounts.create("bob@example.test", "us-east", PASSWORD)
        now = datetime.now(UTC)
        stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        gag_until = (now + timedelta(seconds=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
        matter = await app.legal.file({
            "received_at": stamp, "served_at": stamp,
            "issuer": {"country": "US", "authority": "court", "name": "S.D.N.Y.",
                       "judge_validated": True, "verified": True},
            "instrument": "us-warrant", "action": "produce", "categories": ["subscriber"],
            "targets": ["bob@example.test"],
            "offence": {"max_penalty_years": 10, "listed": False, "country": "US"},
            "emergency": False, "gag": {"until": gag_until}, "renewal_of_served_at": None,
        }, "lee")
        decided = await app.legal.decide(matter.id, "lee")
        assert [n.sent_at for n in decided.notices] == [None]
        stop = await server_mod._start_legal_ticks(app)
        assert stop is not None
        try:
            for _ in range(100):
                if await app.legal.notices_for("bob@example.test"):
                    break
                await asyncio.sleep(0.1)
        finally:
            await stop()
        [notice] = await app.legal.notices_for("bob@example.test")
        assert notice.sent_at is not None and notice.sent_at >= datetime.fromisoformat(
            gag_until.replace("Z", "+00:00"))
        assert (await app.legal.show(matter.id)).state == "notified"


def _free_ports(count: int) -> list[int]:
    socks = []
    for _ in range(count):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[int, subprocess.Popen[str]]]:
    smtp, submission, imap, imaps, http = _free_ports(5)
    env = {**os.environ, **FAST_KDF_ENV, "LETTERLOCK_SIEVE_PORT": "0"}  # 4190 may be taken
    env.pop("LETTERLOCK_HOME", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "letterlock", "--home", str(tmp_path / "home"), "serve",
         "--smtp-port", str(smtp), "--submission-port", str(submission),
         "--imap-port", str(imap), "--imaps-port", str(imaps), "--http-port", str(http)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        yield http, proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_letterlock_serve_serves_openapi(served: tuple[int, subprocess.Popen[str]]) -> None:
    port, proc = served
    assert proc.stdout is not None
    lines = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "Stop with Ctrl-C." in line:
            break
    output = "".join(lines)
    assert f"HTTP               http://127.0.0.1:{port}/" in output, output
    response = httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=10)
    assert response.status_code == 200
    assert "/api/legal/matters/{matter_id}/decision" in response.json()["paths"]
    assert "/api/me/notices" in response.json()["paths"]
    proc.send_signal(signal.SIGTERM)
    rest, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, output + rest
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)


def test_listener_names_tcp_so_asyncio_turns_nagle_off() -> None:
    """Regression: a listener made with proto 0 made asyncio skip TCP_NODELAY, and each
    response waited ~40 ms for a delayed ACK (bench/move.py: 21 -> 290 requests/s)."""
    from letterlock.http.server import _listen

    sock = _listen("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
        client = socket.create_connection(sock.getsockname())
        sock.setblocking(True)
        accepted, _ = sock.accept()
        assert accepted.proto == socket.IPPROTO_TCP
        accepted.close()
        client.close()
    finally:
        sock.close()
