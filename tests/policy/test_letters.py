"""Letters to the issuing authority (issue 14, point 9): the response stating the legal
basis of each outcome, the production certificate, as HTML and PDF, each signed
(detached Ed25519), kept with the matter and listed in its export. PDFs are read
back with poppler's pdftotext and pdfinfo."""

from __future__ import annotations

import io
import json
import subprocess
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from letterlock.app import App
from letterlock.audit.events import EventType
from letterlock.crypto.keys import KdfParams
from letterlock.errors import Refused
from letterlock.http.legal_api import OperatorIdentity
from letterlock.http.legal_schema import LetterList
from letterlock.services.legal.file_key import create_file_key
from letterlock.services.legal.letters import verify_letter
from letterlock.services.legal.matters import LegalService
from letterlock.services.legal.pdf import Block, render_pdf

from .cli_home import CliHome
from .harness import make_request
from .legal_api_client import legal_api_client
from .matter_support import add_bob, clear_events_of, clock, legal, log_records

__all__ = ["clock", "legal"]


def pdf_text(data: bytes, tmp: Path) -> str:
    """The PDF's text as poppler reads it; poppler must report no error."""
    path = tmp / "letter.pdf"
    path.write_bytes(data)
    info = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, check=True)
    assert info.stderr == "", info.stderr
    text = subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True, check=True)
    assert text.stderr == "", text.stderr
    return " ".join(text.stdout.split())


def pages(data: bytes, tmp: Path) -> int:
    path = tmp / "count.pdf"
    path.write_bytes(data)
    info = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, check=True)
    return int(
        next(line.split()[1] for line in info.stdout.splitlines() if line.startswith("Pages:"))
    )


def test_pdf_writer_paginates_wraps_and_escapes(tmp_path: Path) -> None:
    words = [f"w{i:04d}" for i in range(3000)]
    blocks = [
        Block("title", "A (long) letter \\ with Caf\u00e9 and \u20ac"),
        *(Block("para", " ".join(words[i : i + 100])) for i in range(0, 3000, 100)),
    ]
    data = render_pdf(
        blocks, title="T", footer="matter M-1", created=datetime(2025, 1, 15, tzinfo=UTC)
    )
    assert data.startswith(b"%PDF-1.4\n") and data.endswith(b"%%EOF\n")
    assert pages(data, tmp_path) >= 4
    text = pdf_text(data, tmp_path)
    assert "A (long) letter \\ with Caf\u00e9 and \u20ac" in text
    # Every word, in order, nothing lost at a line or page break.
    found = [w for w in text.split() if w.startswith("w") and len(w) == 5]
    assert found == words
    assert "page 1 of" in text
    # Deterministic: the same input makes the same bytes.
    assert data == render_pdf(
        blocks, title="T", footer="matter M-1", created=datetime(2025, 1, 15, tzinfo=UTC)
    )


async def test_response_states_the_legal_basis(
    app: App, legal: LegalService, tmp_path: Path
) -> None:
    # The motivating case under location-2016: a US warrant for mail stored in IE.
    await add_bob(app, region="eu-dublin")
    matter = await legal.file(
        make_request(categories=["content", "traffic"], issuer={"name": "S.D.N.Y. <Magistrate>"}),
        "ada",
    )
    await legal.set_case_number(matter.id, "ada", "13-MAG-2814")
    with pytest.raises(Refused, match="letters answer a decision"):
        await legal.issue_letters(matter.id, "ada")
    await legal.decide(matter.id, "ada")
    [letter] = await legal.issue_letters(matter.id, "bea")
    assert letter.kind == "response" and letter.stage == 1 and letter.issued_by == "bea"
    pdf = await legal.letter_file(matter.id, letter.id, "letter.pdf")
    text = pdf_text(pdf, tmp_path)
    for expected in (
        "13-MAG-2814",
        "Stored Communications Act",
        "R05",
        "stored only in IE, outside the territory of US",
        "mutual legal assistance to the central authority of IE",
        "L16-13-data-abroad",
        "bob@example.test, content: not produced",
        f"Our reference: {matter.id}, decision 1",
        "Issued on",
        "by bea",
    ):
        assert expected in text, expected
    html = (await legal.letter_file(matter.id, letter.id, "letter.html")).decode()
    assert "S.D.N.Y. &lt;Magistrate&gt;" in html and "<Magistrate>" not in html
    assert "stored only in IE" in html and "13-MAG-2814" in html
    # Each file has its detached signature; a changed byte or another key fails.
    for name in ("letter.pdf", "letter.html"):
        data = await legal.letter_file(matter.id, letter.id, name)
        sig = await legal.letter_file(matter.id, letter.id, f"{name}.sig")
        check = verify_letter(data, sig)
        assert check.ok and check.matter == matter.id and check.letter == letter.id
        assert not verify_letter(data[:-2] + b"X" + data[-1:], sig).ok
        assert "different key" in verify_letter(data, sig, "00" * 32).problems[0]
    # Kept with the matter, once per decision, and logged.
    assert [x.id for x in (await legal.matter_file(matter.id)).letters] == [letter.id]
    with pytest.raises(Refused, match="no new letter"):
        await legal.issue_letters(matter.id, "bea")
    events = clear_events_of(log_records(app.config.control_dir), matter.id)
    issued = [e for e in events if e.type == EventType.LEGAL_LETTER_ISSUED]
    assert [(e.actor, dict(e.details)["letter"]) for e in issued] == [("bea", letter.id)]
    export = await legal.export(matter.id, "bea")
    with zipfile.ZipFile(io.BytesIO(export.data)) as zf:
        names = set(zf.namelist())
        assert zf.read(f"letters/{letter.id}/letter.pdf") == pdf
        about = json.loads(zf.read(f"letters/{letter.id}/letter.json"))
    assert {
        f"letters/{letter.id}/{n}" for n in ("letter.html", "letter.html.sig", "letter.pdf.sig")
    } <= names
    assert about["kind"] == "response" and about["pdf_sha256"] == letter.pdf_sha256


async def test_production_gets_a_certificate_listing_every_item(
    app: App, legal: LegalService, tmp_path: Path
) -> None:
    await add_bob(app)
    matter = await legal.file(make_request(categories=["subscriber", "content"]), "ada")
    decided = await legal.decide(matter.id, "ada")
    assert decided.package is not None
    manifest = json.loads((Path(decided.package) / "manifest.json").read_bytes())
    letters = await legal.issue_letters(matter.id, "ada")
    assert [x.kind for x in letters] == ["response", "production-certificate"]
    certificate = letters[1]
    text = pdf_text(await legal.letter_file(matter.id, certificate.id, "letter.pdf"), tmp_path)
    assert manifest["items"]
    for item in manifest["items"]:
        assert item["sha256"] in text and item["path"] in text
    assert "I certify that the production package" in text
    assert "operator holds no key that can open it" in text
    response = pdf_text(await legal.letter_file(matter.id, letters[0].id, "letter.pdf"), tmp_path)
    assert "bob@example.test, content: produced" in response
    assert "told of this request before any data is produced" in response
    sig = await legal.letter_file(matter.id, certificate.id, "letter.pdf.sig")
    assert verify_letter(await legal.letter_file(matter.id, certificate.id, "letter.pdf"), sig).ok


async def test_api_issues_and_serves_signed_letters(app: App, tmp_path: Path) -> None:
    tokens = {
        "t-legal": OperatorIdentity("lee", "legal"),
        "t-audit": OperatorIdentity("ada", "auditor"),
    }
    await add_bob(app, region="eu-dublin")
    async with legal_api_client(app, tokens) as client:
        legal_h = {"Authorization": "Bearer t-legal"}
        filed = await client.post(
            "/api/legal/matters", json={"request": make_request()}, headers=legal_h
        )
        mid = filed.json()["id"]
        await client.post(
            f"/api/legal/matters/{mid}/decision", json={"accept": True}, headers=legal_h
        )
        denied = await client.post(
            f"/api/legal/matters/{mid}/letters",
            json={},
            headers={"Authorization": "Bearer t-audit"},
        )
        assert denied.status_code == 403
        bad = await client.post(
            f"/api/legal/matters/{mid}/letters", json={"kinds": ["poem"]}, headers=legal_h
        )
        assert bad.status_code == 422
        issued = await client.post(f"/api/legal/matters/{mid}/letters", json={}, headers=legal_h)
        assert issued.status_code == 201, issued.text
        [letter] = LetterList.model_validate(issued.json()).root
        assert letter.kind == "response" and letter.issued_by == "lee"
        base = f"/api/legal/matters/{mid}/letters/{letter.id}"
        pdf = await client.get(f"{base}/letter.pdf", headers=legal_h)
        assert pdf.headers["content-type"] == "application/pdf"
        sig = await client.get(f"{base}/letter.pdf.sig", headers=legal_h)
        assert verify_letter(pdf.content, sig.content).ok
        assert "R05" in pdf_text(pdf.content, tmp_path)
        nope = await client.get(f"{base}/secrets.txt", headers=legal_h)
        assert nope.status_code == 422
        again = await client.post(f"/api/legal/matters/{mid}/letters", json={}, headers=legal_h)
        assert again.status_code == 409
        schema = (await client.get("/openapi.json")).json()
        post = schema["paths"]["/api/legal/matters/{matter_id}/letters"]["post"]
        assert post["responses"]["201"]["content"]["application/json"]["schema"]["$ref"].endswith(
            "/LetterList"
        )


def test_cli_letters_and_verify_letter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = CliHome(tmp_path, monkeypatch)
    run, ok = home.run, home.ok

    ok("init")
    ok(
        "user",
        "add",
        "bob@example.test",
        "--region",
        "us-east",
        "--password-stdin",
        stdin="correct horse battery\n",
    )
    req = tmp_path / "req.json"
    req.write_text(json.dumps(make_request(categories=["subscriber"])))
    mid = ok("legal", "file", str(req)).strip()
    code, _, err = run("legal", "letters", mid)
    assert code == 7 and "letters answer a decision" in err
    ok("legal", "decide", mid, "--accept")
    issued = json.loads(ok("legal", "letters", mid, "--actor", "lee", "--json"))
    assert [x["kind"] for x in issued] == ["response", "production-certificate"]
    pdf = Path(issued[1]["path"]) / "letter.pdf"
    assert ok("legal", "verify-letter", str(pdf)).startswith(f"ok: letter {issued[1]['id']}")
    copy = tmp_path / "copy.pdf"
    copy.write_bytes(pdf.read_bytes().replace(b"certify", b"CERTIFY"))
    code, _, err = run("legal", "verify-letter", str(copy), "--signature", f"{pdf}.sig")
    assert code == 1 and "does not verify" in err
    code, _, err = run("legal", "verify-letter", str(pdf), "--signature", str(pdf))
    assert code == 2 and "malformed letter signature" in err
    listed = json.loads(ok("legal", "matter-file", mid, "--json"))["letters"]
    assert [x["id"] for x in listed] == [x["id"] for x in issued]


async def test_docs_list_every_matter_file_field(app: App, legal: LegalService) -> None:
    create_file_key(
        app.config.control_dir / "legal", "a long enough passphrase", KdfParams(1024, 1, 1)
    )
    await add_bob(app)
    matter = await legal.file(make_request(categories=["subscriber"]), "ada")
    await legal.attach(matter.id, "ada", b"order", "order.txt")
    await legal.add_note(matter.id, "ada", "note")
    await legal.set_case_number(matter.id, "ada", "1")
    await legal.decide(matter.id, "ada")
    await legal.issue_letters(matter.id, "ada")
    record = (await legal.matter_file(matter.id)).to_json()
    fields = set()
    for key, value in record.items():
        fields.add(key)
        if isinstance(value, list):
            fields |= {f"{key}[].{k}" for k in value[0]}
    doc = (Path(__file__).parents[2] / "docs" / "legal-formats.md").read_text("utf-8")
    section = doc.split("\n## Matter file\n", 1)[1].split("\n### ", 1)[0]
    documented = {
        line.split("|")[1].strip().strip("`")
        for line in section.splitlines()
        if line.startswith("| `")
    }
    assert documented == fields
