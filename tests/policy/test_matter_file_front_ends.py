"""The matter file through its front-ends: the JSON API (typed in the OpenAPI schema,
roles enforced) and ``letterlock legal attach|attachment|note|case-number|
matter-file|export|search`` on a real HOME."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from letterlock.app import App
from letterlock.crypto.keys import KdfParams
from letterlock.http.legal_api import OperatorIdentity
from letterlock.http.legal_schema import Attachment, MatterFile, Note
from letterlock.services.legal.file_key import create_file_key

from .cli_home import CliHome
from .harness import make_request
from .legal_api_client import legal_api_client

TOKENS = {
    "t-legal": OperatorIdentity("lee", "legal"),
    "t-audit": OperatorIdentity("ada", "auditor"),
}
PASSPHRASE = "the legal team's long passphrase"
ORDER = b"%PDF-1.4\n% scanned order 25-mj-00042\n%%EOF\n"


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def client(app: App) -> AsyncIterator[httpx.AsyncClient]:
    create_file_key(app.config.control_dir / "legal", PASSPHRASE, KdfParams(1024, 1, 1))
    async with legal_api_client(app, TOKENS) as c:
        yield c


async def test_api_matter_file(client: httpx.AsyncClient) -> None:
    filed = await client.post(
        "/api/legal/matters", json={"request": make_request()}, headers=_auth("t-legal")
    )
    mid = filed.json()["id"]
    base = f"/api/legal/matters/{mid}"
    denied = await client.post(f"{base}/notes", json={"text": "x"}, headers=_auth("t-audit"))
    assert denied.status_code == 403
    note = await client.post(
        f"{base}/notes", json={"text": "Served by fax."}, headers=_auth("t-legal")
    )
    assert note.status_code == 201, note.text
    Note.model_validate(note.json())
    number = await client.put(
        f"{base}/case-number", json={"case_number": "25-mj-00042"}, headers=_auth("t-legal")
    )
    assert number.status_code == 200 and number.json()["case_number"] == "25-mj-00042"
    attached = await client.post(
        f"{base}/attachments?name=order.pdf",
        content=ORDER,
        headers={**_auth("t-legal"), "Content-Type": "application/octet-stream"},
    )
    assert attached.status_code == 201, attached.text
    attachment = Attachment.model_validate(attached.json())
    assert attachment.sha256 == hashlib.sha256(ORDER).hexdigest()
    assert attachment.media_type == "application/pdf"
    record = await client.get(f"{base}/file", headers=_auth("t-audit"))
    MatterFile.model_validate(record.json())
    assert [n["text"] for n in record.json()["notes"]] == ["Served by fax."]
    wrong = await client.post(
        f"{base}/attachments/{attachment.id}/open",
        json={"passphrase": "not the passphrase"},
        headers=_auth("t-legal"),
    )
    assert wrong.status_code == 401
    opened = await client.post(
        f"{base}/attachments/{attachment.id}/open",
        json={"passphrase": PASSPHRASE},
        headers=_auth("t-legal"),
    )
    assert opened.status_code == 200 and opened.content == ORDER
    assert opened.headers["x-content-sha256"] == attachment.sha256
    export = await client.post(
        f"{base}/export", json={"passphrase": PASSPHRASE}, headers=_auth("t-legal")
    )
    assert export.status_code == 200 and export.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(export.content)) as zf:
        assert zf.read(f"attachments/{attachment.id}/order.pdf") == ORDER
    found = await client.get("/api/legal/search?case_number=MJ-000", headers=_auth("t-audit"))
    assert [m["id"] for m in found.json()] == [mid]
    none = await client.get("/api/legal/search", headers=_auth("t-audit"))
    assert none.status_code == 422 and "search term" in none.text
    empty = await client.post(
        f"{base}/attachments?name=x.txt", content=b"", headers=_auth("t-legal")
    )
    assert empty.status_code == 422
    unknown = await client.get("/api/legal/matters/M-nope/file", headers=_auth("t-legal"))
    assert unknown.status_code == 404


async def test_openapi_types_the_matter_file(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    for name in ("MatterFile", "Note", "Attachment", "Letter"):
        assert name in schema["components"]["schemas"], name
    paths = schema["paths"]
    upload = paths["/api/legal/matters/{matter_id}/attachments"]["post"]
    assert upload["requestBody"]["content"]["*/*"]["schema"]["format"] == "binary"
    assert paths["/api/legal/matters/{matter_id}/file"]["get"]["responses"]["200"]["content"][
        "application/json"
    ]["schema"]["$ref"].endswith("/MatterFile")


def test_cli_matter_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = CliHome(tmp_path, monkeypatch)
    run, ok = home.run, home.ok

    ok("init")
    req = tmp_path / "req.json"
    req.write_text(json.dumps(make_request()))
    mid = ok("legal", "file", str(req)).strip()
    order = tmp_path / "order.pdf"
    order.write_bytes(ORDER)
    code, _, err = run("legal", "attach", mid, str(order))
    assert code == 3 and "file-key create" in err and len(err.strip().splitlines()) == 1
    out = ok("legal", "file-key", "create", "--passphrase-stdin", stdin=PASSPHRASE + "\n")
    recovery = out.strip().splitlines()[-1]
    assert len(recovery.replace("-", "")) == 40
    filed = json.loads(ok("legal", "attach", mid, str(order), "--actor", "lee", "--json"))
    assert filed["sha256"] == hashlib.sha256(ORDER).hexdigest()
    assert filed["added_by"] == "lee"
    ok("legal", "note", mid, "Called the clerk.", "--actor", "lee")
    ok("legal", "note", mid, "--actor", "max", stdin="Counsel: comply.\n")
    ok("legal", "case-number", mid, "25-mj-00042")
    record = json.loads(ok("legal", "matter-file", mid, "--json"))
    assert [(n["added_by"], n["text"]) for n in record["notes"]] == [
        ("lee", "Called the clerk."),
        ("max", "Counsel: comply."),
    ]
    assert "25-mj-00042" in ok("legal", "matter-file", mid)
    opened = tmp_path / "opened.pdf"

    def open_original(passphrase: str) -> int:
        code, _, _ = run(
            "legal", "attachment", mid, filed["id"], "--out", str(opened),
            "--passphrase-stdin", stdin=passphrase + "\n",
        )  # fmt: skip
        return code

    assert open_original("wrong passphrase!!") == 6 and not opened.exists()
    assert open_original(PASSPHRASE) == 0
    assert opened.read_bytes() == ORDER and opened.stat().st_mode & 0o077 == 0
    # A new passphrase from the recovery code; the old one no longer opens it.
    ok("legal", "file-key", "passwd", "--recovery", stdin=f"{recovery}\nanother long passphrase\n")
    assert open_original(PASSPHRASE) == 6
    assert open_original("another long passphrase") == 0
    out_dir = tmp_path / "exports"
    out_dir.mkdir()
    ok(
        "legal",
        "export",
        mid,
        "--out",
        str(out_dir),
        "--with-originals",
        "--passphrase-stdin",
        stdin="another long passphrase\n",
    )
    [archive] = out_dir.iterdir()
    assert ok("legal", "verify-package", str(archive)).startswith(f"ok: matter {mid}")
    found = json.loads(ok("legal", "search", "--text", "CLERK", "--json"))
    assert [m["id"] for m in found] == [mid]
    assert mid in ok("legal", "search", "--case-number", "00042")
    code, _, err = run("legal", "search")
    assert code == 2 and "--case-number" in err
