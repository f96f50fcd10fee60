"""Front-end worker processes (letterlock/workers.py): how many, serving what, and a
real `letterlock serve` that spreads IMAP over every CPU and restarts a worker that
dies."""

from __future__ import annotations

import asyncio
import imaplib
import os
import signal
import socket
import ssl
import time
from pathlib import Path

import pytest

from letterlock.app import initialise, open_app
from letterlock.errors import ConfigError
from letterlock.services.accounts.setup import InitOptions
from letterlock.workers import (
    RESTART_DELAY_S,
    FrontEndWorkers,
    Ports,
    ProcessPlan,
    available_cpus,
    check_port_unshared,
)
from smtp.serve_process import alive, children, start_serve
from support.connections import connect_served_by, serving_pid
from support.env import PASSWORD, make_config

ALICE = "alice@example.test"


def plan_for(tmp_path: Path, **env: str) -> ProcessPlan:
    return ProcessPlan.from_config(make_config(tmp_path, **env))


def test_one_worker_serves_both_when_both_ask_for_two(tmp_path: Path) -> None:
    plan = plan_for(tmp_path, LETTERLOCK_SMTP_WORKERS="2", LETTERLOCK_IMAP_PROCESSES="2")
    assert (plan.event_loops, plan.workers) == (2, 1)
    assert plan.serves_mx(0) and plan.serves_imap(0)
    argv = FrontEndWorkers(tmp_path, plan, Ports("127.0.0.1", 25, 143, 993))._argv(0)
    assert argv[-6:] == ["--mx-port", "25", "--imap-port", "143", "--imaps-port", "993"]


def test_workers_serve_what_each_count_asks(tmp_path: Path) -> None:
    plan = plan_for(tmp_path, LETTERLOCK_SMTP_WORKERS="4", LETTERLOCK_IMAP_PROCESSES="2")
    assert plan.workers == 3
    assert [(plan.serves_mx(i), plan.serves_imap(i)) for i in range(3)] == [
        (True, True), (True, False), (True, False)]
    plan = plan_for(tmp_path, LETTERLOCK_SMTP_WORKERS="0", LETTERLOCK_IMAP_PROCESSES="3")
    assert [(plan.serves_mx(i), plan.serves_imap(i)) for i in range(plan.workers)] == [
        (False, True), (False, True)]
    assert plan_for(tmp_path, LETTERLOCK_IMAP_PROCESSES="1").workers == 0


def test_imap_processes_default_to_the_cpus_available(tmp_path: Path) -> None:
    assert plan_for(tmp_path).imap == available_cpus() == len(os.sched_getaffinity(0))
    with pytest.raises(ConfigError):
        plan_for(tmp_path, LETTERLOCK_IMAP_PROCESSES="-1")


def test_a_port_another_program_listens_on_is_not_shared() -> None:
    """SO_REUSEPORT alone would let a second server of the same user share it."""
    with socket.socket() as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        with pytest.raises(ConfigError, match="address already in use"):
            check_port_unshared("127.0.0.1", port)
    check_port_unshared("127.0.0.1", port)  # free again


def _imaps(port: int) -> imaplib.IMAP4_SSL:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    imap = imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=ctx, timeout=20)
    imap.login(ALICE, PASSWORD)
    return imap


async def _home_with_alice(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    config = make_config(home)
    await initialise(config, InitOptions())
    async with open_app(config) as app:
        await app.accounts.create(ALICE, "us-east", PASSWORD)
    return home


def _pids_serving(port: int, connections: int) -> set[int]:
    pids = set()
    for _ in range(connections):
        imap = _imaps(port)
        pids.add(serving_pid(imap.sock))
        imap.logout()
    return pids


async def test_serve_by_default_accepts_imap_in_one_process_per_cpu(tmp_path: Path) -> None:
    cpus = available_cpus()
    if cpus > 4:
        pytest.skip("checks every process by chance: meant for small machines")
    home = await _home_with_alice(tmp_path)
    served = await asyncio.to_thread(start_serve, home)
    try:
        workers = children(served.proc.pid)
        assert len(workers) == cpus - 1
        if workers:
            assert any("IMAP in" in line for line in served.output)
        # The kernel picks a process per connection by a hash: 40 connections reach
        # each of up to four processes but with a chance below 1 in 10,000.
        pids = await asyncio.to_thread(_pids_serving, served.imaps, 40)
        assert pids == {served.proc.pid, *workers}
    finally:
        served.proc.send_signal(signal.SIGTERM)
        served.proc.wait(30)


async def test_a_killed_imap_worker_is_restarted_and_imap_keeps_working(
        tmp_path: Path) -> None:
    home = await _home_with_alice(tmp_path)
    served = await asyncio.to_thread(start_serve, home, {"LETTERLOCK_IMAP_PROCESSES": "2"})
    main = served.proc.pid
    try:
        [worker] = children(main)
        on_main = await asyncio.to_thread(connect_served_by, main,
                                          lambda: _imaps(served.imaps),
                                          lambda c: c.sock, lambda c: c.logout())
        on_main.select("INBOX")
        os.kill(worker, signal.SIGKILL)
        while alive(worker):  # until the kernel closed its listening sockets
            await asyncio.sleep(0.01)
        # Meanwhile the main process takes every connection, and its sessions go on.
        fresh = await asyncio.to_thread(_imaps, served.imaps)
        assert fresh.select("INBOX")[0] == "OK"
        assert on_main.noop()[0] == "OK"
        deadline = time.monotonic() + RESTART_DELAY_S + 30
        while time.monotonic() < deadline:
            replaced = [pid for pid in children(main) if pid != worker and alive(pid)]
            if replaced:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the worker was not restarted")
        [new_worker] = replaced
        # It serves IMAP again, and what one session does reaches the other.
        on_new = await asyncio.to_thread(connect_served_by, new_worker,
                                         lambda: _imaps(served.imaps),
                                         lambda c: c.sock, lambda c: c.logout())
        on_new.select("INBOX")
        assert on_new.append("INBOX", None, None, b"Subject: hi\r\n\r\nhi\r\n")[0] == "OK"
        on_main.noop()
        assert on_main.response("EXISTS")[1][-1] == b"1"
        for imap in (on_main, on_new, fresh):
            imap.logout()
    finally:
        served.proc.send_signal(signal.SIGTERM)
        served.proc.wait(30)
    assert not children(main)
