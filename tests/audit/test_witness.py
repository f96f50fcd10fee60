"""Witness cosigning (c2sp.org/tlog-witness), all over real HTTP, against two witnesses
that share no code with letterlock: one written from the spec in Python, one in Go whose
note and consistency checks are the Go reference implementation's
(tests/support/witness.py, tests/support/go_witness/). The server submits its
checkpoints, the witness checks signatures and consistency proofs and cosigns, and the
cosignatures are served with the checkpoint. A log that shows the witness a different
tree is refused."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from letterlock.app import App
from letterlock.audit import checkpoint, witness
from letterlock.audit.keys import PRIVATE_FILE, PUBLIC_FILE, load_private_key
from letterlock.audit.store import MerkleLog
from letterlock.audit.tiles import TileServer, origin_for
from letterlock.http.server import HttpServer
from letterlock.services.transparency import witnessing
from support import go_tools
from support.cli import letterlock
from support.witness import GoWitness, Witness

from .conftest import numbered_event

WITNESS = "witness.test/w1"


@pytest.fixture(scope="module")
def go_witness_binary(tmp_path_factory: pytest.TempPathFactory) -> str:
    if not go_tools.AVAILABLE:
        pytest.skip(go_tools.MISSING)
    return str(go_tools.build("go_witness", tmp_path_factory.mktemp("go")))


@pytest.fixture(params=["python", "go"])
async def setup(app: App, request: pytest.FixtureRequest,
                ) -> AsyncIterator[tuple[App, httpx.AsyncClient, Witness]]:
    make: Any = Witness
    if request.param == "go":
        binary = request.getfixturevalue("go_witness_binary")
        make = lambda name, logs: GoWitness(binary, name, logs)  # noqa: E731
    server = HttpServer(app)
    port = await server.start("127.0.0.1", 0)
    origin = origin_for(app.config.server.hostname)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            vkey = (await client.get("/log/tlog/key")).text.strip()
            with make(WITNESS, {origin: vkey}) as w:
                (app.config.control_dir / witnessing.WITNESSES_FILE).write_text(
                    f"# test witness\n{w.url}  {w.vkey}\n")
                yield app, client, w
    finally:
        await server.close()


def audit_dir(app: App) -> Path:
    return app.config.control_dir / "audit"


async def add_events(app: App, start: int, count: int) -> None:
    for i in range(start, start + count):
        await app.audit.record(numbered_event(i))


async def test_witness_cosigns_and_the_checkpoint_carries_it(
    setup: tuple[App, httpx.AsyncClient, Witness],
) -> None:
    app, client, w = setup
    control, host = app.config.control_dir, app.config.server.hostname
    first = await witnessing.submit_round_async(control, host)
    assert [(o.witness, o.cosigned) for o in first] == [(WITNESS, True)]
    assert w.requests == [(200, 0)]
    note = (await client.get("/log/tlog/checkpoint")).text
    log_key = checkpoint.parse_verifier_key((await client.get("/log/tlog/key")).text)
    cp, _ = checkpoint.open_checkpoint(note, log_key)
    cosigner = checkpoint.parse_verifier_key(w.vkey)
    opened = checkpoint.open_note(note, cosigner)  # the cosignature verifies
    assert checkpoint.cosignature_time(opened, cosigner) > 1_700_000_000
    assert w.latest[cp.origin] == (cp.size, cp.root)
    # nothing new: no request at all
    assert await witnessing.submit_round_async(control, host) == []
    # the log grows: the next submission proves consistency from what was cosigned
    await add_events(app, 0, 5)
    second = await witnessing.submit_round_async(control, host)
    assert [o.cosigned for o in second] == [True]
    assert w.requests[-1] == (200, cp.size)
    assert w.latest[cp.origin][0] == cp.size + 5
    newer = (await client.get("/log/tlog/checkpoint")).text
    assert checkpoint.open_checkpoint(newer, log_key)[0].size == cp.size + 5
    checkpoint.open_note(newer, cosigner)
    # the log grew again, not yet witnessed: the checkpoint is served without it
    await add_events(app, 5, 1)
    bare = (await client.get("/log/tlog/checkpoint")).text
    with pytest.raises(checkpoint.NoteError, match="no signature"):
        checkpoint.open_note(bare, cosigner)


async def test_a_lost_state_is_recovered_from_the_witness_409(
    setup: tuple[App, httpx.AsyncClient, Witness],
) -> None:
    app, _, w = setup
    control, host = app.config.control_dir, app.config.server.hostname
    await witnessing.submit_round_async(control, host)
    known = w.requests and w.latest[origin_for(host)][0]
    (audit_dir(app) / witness.WITNESSED_FILE).unlink()
    await add_events(app, 0, 3)
    outcomes = await witnessing.submit_round_async(control, host)
    assert [o.cosigned for o in outcomes] == [True]
    assert w.requests[-2:] == [(409, 0), (200, known)]


async def test_a_forked_log_is_refused_by_the_witness(
    setup: tuple[App, httpx.AsyncClient, Witness], tmp_path: Path,
) -> None:
    app, _, w = setup
    control, host = app.config.control_dir, app.config.server.hostname
    await add_events(app, 0, 4)
    await witnessing.submit_round_async(control, host)
    cosigned_size = w.latest[origin_for(host)][0]
    # the same key signs another history of the same length and more
    fork = tmp_path / "fork"
    fork.mkdir()
    for name in (PRIVATE_FILE, PUBLIC_FILE):
        shutil.copy(audit_dir(app) / name, fork / name)
    with MerkleLog(fork, create=True) as log:
        log.append([numbered_event(1000 + i) for i in range(cosigned_size + 3)])
    shutil.copy(audit_dir(app) / witness.WITNESSED_FILE, fork / witness.WITNESSED_FILE)
    with MerkleLog(fork, writable=False) as log:
        note = TileServer(log, load_private_key(fork), origin_for(host)).checkpoint()
        with pytest.raises(witness.WitnessError, match="422"):
            await asyncio.to_thread(witness.submit, log, note, w.url, w.vkey)
    assert w.requests[-1] == (422, cosigned_size)
    assert w.latest[origin_for(host)][0] == cosigned_size


async def test_the_command_submits_and_reports(
    setup: tuple[App, httpx.AsyncClient, Witness],
) -> None:
    app, _, w = setup
    out = await asyncio.to_thread(letterlock, app.config.home, "log", "witness")
    assert f"{WITNESS}: cosigned size" in out.stdout
    assert w.requests[-1][0] == 200
    (app.config.control_dir / witnessing.WITNESSES_FILE).write_text("not a witness\n")
    bad = await asyncio.to_thread(letterlock, app.config.home, "log", "witness", check=False)
    assert bad.returncode != 0
    assert "expected 'URL KEY'" in bad.stderr
    assert "Traceback" not in bad.stderr


async def test_the_server_submits_on_its_own(
    setup: tuple[App, httpx.AsyncClient, Witness],
) -> None:
    """`letterlock serve`'s starter: a round at start (then every minute)."""
    from letterlock.server import _start_witnessing

    app, client, w = setup
    stop = await _start_witnessing(app)
    try:
        for _ in range(100):
            if w.requests:
                break
            await asyncio.sleep(0.05)
    finally:
        await stop()
    assert w.requests == [(200, 0)]
    note = (await client.get("/log/tlog/checkpoint")).text
    checkpoint.open_note(note, checkpoint.parse_verifier_key(w.vkey))
