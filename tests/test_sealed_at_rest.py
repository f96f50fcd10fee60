"""Acceptance: nothing readable of a message reaches the disk.

Messages whose subject, From, To, body text, attachment name and attachment content
each carry a distinct marker are imported; then no file under HOME (SQLite databases
and their WAL, blobs, logs) contains any marker, raw, base64 or quoted-printable
encoded; and `mail export` with the password returns every message byte-identical.
"""

from __future__ import annotations

import base64
import quopri
from email.message import EmailMessage
from pathlib import Path

from support.cli import letterlock
from support.env import PASSWORD

MARKERS = {
    "subject": "SubjMarkerQ7xv",
    "from": "FromMarkerK2pw",
    "to": "ToMarkerZ9ld",
    "body": "BodyMarkerW4mc",
    "attachment-name": "AttachNameMarkerR8yt",
    "attachment-content": "AttachDataMarkerJ3qe",
}


def build_message(i: int) -> bytes:
    msg = EmailMessage()
    msg["Subject"] = f"{MARKERS['subject']} number {i}"
    msg["From"] = f"{MARKERS['from']} <sender@elsewhere.test>"
    msg["To"] = f"{MARKERS['to']} <bob@example.test>"
    msg["Message-ID"] = f"<m{i}@elsewhere.test>"
    msg.set_content(f"Hello,\n{MARKERS['body']} in message {i}.\nRegards\n")
    msg.add_attachment((MARKERS["attachment-content"] * 40).encode(),
                       maintype="application", subtype="octet-stream",
                       filename=f"{MARKERS['attachment-name']}-{i}.bin")
    return msg.as_bytes()


def encodings(marker: str) -> list[bytes]:
    """The marker raw, quoted-printable, and base64 at each of the three alignments
    it can take inside a longer base64 stream (minus the partial edge characters)."""
    raw = marker.encode()
    forms = [raw, raw.lower(), quopri.encodestring(raw).strip()]
    for pad in range(3):
        encoded = base64.b64encode(b"\x00" * pad + raw)
        forms.append(encoded[4 if pad else 0 : -4])
    forms.append(base64.b64encode(raw.decode().encode("utf-16-le"))[4:-4])
    return forms


def scan(home: Path) -> list[str]:
    hits = []
    files = [p for p in home.rglob("*") if p.is_file()]
    assert any(p.name.endswith("-wal") for p in files) or any(
        p.suffix == ".sqlite3" for p in files)
    for path in files:
        data = path.read_bytes()
        for name, marker in MARKERS.items():
            for form in encodings(marker):
                if form in data:
                    hits.append(f"{name} ({form!r}) in {path.relative_to(home)}")
    return hits


def test_no_marker_on_disk_and_export_is_intact(tmp_path: Path) -> None:
    home = tmp_path / "home"
    letterlock(home, "init")
    letterlock(home, "user", "add", "bob@example.test", "--region", "eu-dublin",
               "--password-stdin", stdin=PASSWORD + "\n")
    originals = [build_message(i) for i in range(3)]
    for i, raw in enumerate(originals):
        (tmp_path / f"m{i}.eml").write_bytes(raw)
        letterlock(home, "mail", "import", "bob@example.test", str(tmp_path / f"m{i}.eml"))
    mbox = tmp_path / "in.mbox"
    in_mbox = build_message(9)
    mbox.write_bytes(b"From x@y Thu Jan  1 00:00:00 2025\n" + in_mbox + b"\n")
    letterlock(home, "mail", "import", "bob@example.test", str(mbox), "--mailbox", "Archive")

    # sanity: the scanner does find markers where they are
    assert scan_bytes(originals[0])
    assert scan(home) == []

    out = tmp_path / "export.mbox"
    proc = letterlock(home, "mail", "export", "bob@example.test", "--out", str(out),
                      "--password-stdin", stdin=PASSWORD + "\n")
    assert "exported 4 message(s)" in proc.stdout
    exported = out.read_bytes()
    for raw in [*originals, in_mbox]:
        assert raw in exported  # LF form, byte for byte

    bad = letterlock(home, "mail", "export", "bob@example.test", "--out",
                     str(tmp_path / "x.mbox"), "--password-stdin", stdin="wrong-pass\n",
                     check=False)
    assert bad.returncode != 0 and "authentication failed" in bad.stderr
    assert not (tmp_path / "x.mbox").exists()


def scan_bytes(data: bytes) -> list[str]:
    return [name for name, marker in MARKERS.items()
            if any(form in data for form in encodings(marker))]
