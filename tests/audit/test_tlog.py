"""The audit log in the C2SP formats: signed-note checkpoints that match the Go
reference implementation byte for byte, and tlog-tiles over real HTTP, checked here by
a client written from the specification (hashlib only), not by letterlock's code."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from letterlock.app import App
from letterlock.audit import checkpoint, tiles
from letterlock.audit.store import MerkleLog
from letterlock.errors import InvalidInput
from letterlock.http.server import HttpServer
from support import go_tools

from .conftest import numbered_event

# The example key and note of golang.org/x/mod/sumdb/note's documentation and tests.
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_TEXT = ("If you think cryptography is the answer to your problem,\n"
           "then you don't know what your problem is.\n")
GO_SIGNED = GO_TEXT + ("\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUg"
                       "YN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n")
EVENTS = 700  # two full level-0 tiles, a partial one, and a partial level-1 tile


def go_private_key() -> Ed25519PrivateKey:
    raw = base64.b64decode(GO_SKEY.split("+", 4)[4])
    assert raw[0] == 1
    return Ed25519PrivateKey.from_private_bytes(raw[1:])


def test_notes_match_the_go_reference_byte_for_byte() -> None:
    key = go_private_key()
    assert checkpoint.sign_note(GO_TEXT, "PeterNeumann", key) == GO_SIGNED
    verifier = checkpoint.parse_verifier_key(GO_VKEY)
    assert verifier.key_id.hex() == "c74f20a3"
    assert checkpoint.verifier_key("PeterNeumann", verifier.public) == GO_VKEY
    assert checkpoint.open_note(GO_SIGNED, verifier).text == GO_TEXT
    with pytest.raises(checkpoint.NoteError, match="does not verify"):
        checkpoint.open_note(GO_SIGNED.replace("cryptography", "cryptographY"), verifier)
    with pytest.raises(checkpoint.NoteError, match="key's ID"):
        checkpoint.parse_verifier_key(GO_VKEY.replace("c74f20a3", "c74f20a4"))
    with pytest.raises(checkpoint.NoteError, match="no signature by"):
        checkpoint.open_note(GO_SIGNED.replace("PeterNeumann", "Peter"), verifier)


def test_checkpoints_parse_strictly() -> None:
    root = hashlib.sha256(b"x").digest()
    text = checkpoint.Checkpoint("example.test/log", 12, root).text()
    assert text == f"example.test/log\n12\n{base64.b64encode(root).decode()}\n"
    assert checkpoint.parse_checkpoint(text).size == 12
    for bad in (text.replace("\n12\n", "\n012\n"), text.replace("\n12\n", "\n-1\n"),
                "example.test/log\n12\n" + base64.b64encode(b"short").decode() + "\n",
                text[:-1]):
        with pytest.raises(checkpoint.NoteError):
            checkpoint.parse_checkpoint(bad)


def test_tile_paths_follow_the_spec() -> None:
    assert tiles.encode_index(0) == "000"
    assert tiles.encode_index(67) == "067"
    assert tiles.encode_index(1000) == "x001/000"
    assert tiles.encode_index(1234067) == "x001/x234/067"
    assert tiles.tile_path(0, 1234067, 3) == "tile/0/x001/x234/067.p/3"
    assert tiles.tile_path("entries", 5) == "tile/entries/005"
    assert tiles.parse_index("x001/x234/067.p/255") == (1234067, 255)
    for bad in ("0", "x000/005", "001/005", "x1/005", "005.p/0", "005.p/256", "005.p/07",
                "005/", "abc"):
        with pytest.raises(InvalidInput):
            tiles.parse_index(bad)


def _leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def _mth(hashes: list[bytes]) -> bytes:
    """RFC 6962 Merkle tree hash over leaf hashes, straight from the definition."""
    if len(hashes) == 1:
        return hashes[0]
    k = 1 << ((len(hashes) - 1).bit_length() - 1)
    return hashlib.sha256(b"\x01" + _mth(hashes[:k]) + _mth(hashes[k:])).digest()


def _entries(bundle: bytes) -> list[bytes]:
    out, pos = [], 0
    while pos < len(bundle):
        n = int.from_bytes(bundle[pos:pos + 2], "big")
        out.append(bundle[pos + 2:pos + 2 + n])
        pos += 2 + n
    assert pos == len(bundle)
    return out


@pytest.fixture
async def served(app: App) -> AsyncIterator[tuple[App, httpx.AsyncClient]]:
    with MerkleLog(app.config.control_dir / "audit") as log:
        log.append([numbered_event(i) for i in range(EVENTS)])
    server = HttpServer(app)
    port = await server.start("127.0.0.1", 0)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            yield app, client
    finally:
        await server.close()


async def test_checkpoint_and_tiles_over_http_rebuild_the_signed_root(
    served: tuple[App, httpx.AsyncClient],
) -> None:
    app, client = served
    head = (await client.get("/log/head.json")).json()
    vkey = (await client.get("/log/tlog/key")).text.strip()
    verifier = checkpoint.parse_verifier_key(vkey)
    assert verifier.public.hex() == head["public_key"]
    assert verifier.name == f"{app.config.server.hostname}/log/tlog"
    resp = await client.get("/log/tlog/checkpoint")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    cp, _ = checkpoint.open_checkpoint(resp.text, verifier)
    size = cp.size
    assert size == head["tree_size"] >= EVENTS
    assert cp.root.hex() == head["root_hash"]
    # a tiles client: entry bundles and level-0 tiles, full then partial
    leaf_hashes: list[bytes] = []
    full, rest = divmod(size, 256)
    for n in range(full + (1 if rest else 0)):
        width = 256 if n < full else rest
        tile = await client.get("/log/tlog/" + tiles.tile_path(0, n, width))
        bundle = await client.get("/log/tlog/" + tiles.tile_path("entries", n, width))
        assert tile.status_code == bundle.status_code == 200
        assert len(tile.content) == 32 * width
        entries = _entries(bundle.content)
        assert len(entries) == width
        hashes = [tile.content[i:i + 32] for i in range(0, len(tile.content), 32)]
        assert hashes == [_leaf_hash(e) for e in entries]
        assert (tile.headers["cache-control"] == "no-store") == (width < 256)
        leaf_hashes += hashes
    assert _mth(leaf_hashes) == cp.root
    # level 1: the roots of the complete 256-leaf subtrees
    level1 = await client.get("/log/tlog/" + tiles.tile_path(1, 0, full))
    assert level1.status_code == 200
    assert level1.content == b"".join(_mth(leaf_hashes[i * 256:(i + 1) * 256])
                                      for i in range(full))
    # entries are the log's records, as written
    first = _entries((await client.get("/log/tlog/tile/entries/000")).content)
    with MerkleLog(app.config.control_dir / "audit", writable=False) as log:
        assert first == [log.leaf(i) for i in range(256)]
    assert any(b'"actor":"admin0000"' in e for e in first)
    page = (await client.get("/log")).text
    assert 'href="/log/tlog/checkpoint"' in page and 'href="/log/tlog/key"' in page


async def test_tiles_outside_the_tree_or_misnamed_are_not_found(
    served: tuple[App, httpx.AsyncClient],
) -> None:
    _, client = served
    size = (await client.get("/log/head.json")).json()["tree_size"]
    beyond = size // 256 + 1
    for path in (f"tile/0/{tiles.encode_index(beyond)}", "tile/0/0", "tile/0/x000/001",
                 f"tile/0/{tiles.encode_index(size // 256)}.p/{size % 256 + 1}",
                 "tile/1/000", "tile/64/000", "tile/entries/000.p/256", "tile/00/000"):
        resp = await client.get("/log/tlog/" + path)
        assert resp.status_code == 404, path


async def test_consistency_proof_endpoint(served: tuple[App, httpx.AsyncClient]) -> None:
    from letterlock.audit.verify import check_consistency

    _, client = served
    with MerkleLog(served[0].config.control_dir / "audit", writable=False) as log:
        old_root = log.root(300)
    doc = (await client.get("/log/consistency.json", params={"old": 300})).json()
    head = doc["head"]
    check_consistency(300, head["tree_size"], old_root, bytes.fromhex(head["root_hash"]),
                      [base64.b64decode(h) for h in doc["proof"]])
    resp = await client.get("/log/consistency.json", params={"old": head["tree_size"] + 1})
    assert resp.status_code == 404


def test_verifier_keys_whose_base64_holds_a_plus_round_trip() -> None:
    from letterlock.audit.keys import public_bytes

    while True:  # about one key in six has a '+' in its base64
        public = public_bytes(Ed25519PrivateKey.generate())
        text = checkpoint.verifier_key("example.test/log", public, checkpoint.COSIGNATURE_V1)
        if "+" in text.split("+", 2)[2]:
            break
    parsed = checkpoint.parse_verifier_key(text)
    assert (parsed.name, parsed.key_type, parsed.public) == (
        "example.test/log", checkpoint.COSIGNATURE_V1, public)


@pytest.mark.skipif(not go_tools.AVAILABLE, reason=go_tools.MISSING)
async def test_the_go_reference_implementation_accepts_the_log(
    served: tuple[App, httpx.AsyncClient], tmp_path: Path,
) -> None:
    """golang.org/x/mod/sumdb/note opens our checkpoint, tlog.TileHashReader
    authenticates our tiles against it, tlog.CheckTree accepts our consistency proof."""
    app, client = served
    binary = await asyncio.to_thread(go_tools.build, "go_tlog_check", tmp_path)
    vkey = (await client.get("/log/tlog/key")).text.strip()
    with MerkleLog(app.config.control_dir / "audit", writable=False) as log:
        old_root = base64.b64encode(log.root(300)).decode()
        size = log.size

    base = str(client.base_url).rstrip("/") + "/log/tlog"

    def run(root: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(binary), base, vkey, "300", root],
                              capture_output=True, text=True, timeout=120)

    good = await asyncio.to_thread(run, old_root)
    assert good.returncode == 0, good.stdout + good.stderr
    assert good.stdout.strip() == f"ok {size}"
    forged = base64.b64encode(hashlib.sha256(b"another history").digest()).decode()
    bad = await asyncio.to_thread(run, forged)
    assert bad.returncode == 1
    assert "consistency from 300" in bad.stdout
