"""A damaged region does not take the others down (issue 13 point 2).

One page of one region's database is overwritten (the schema page, which every open
reads) and the server is started as an operator would. It must start; the healthy
region's account logs in over IMAP and takes mail over SMTP; the damaged region's
account gets temporary failures (IMAP NO [UNAVAILABLE], SMTP 451), not a refusal that
makes senders give up, and the operator's log names the region.
"""

from __future__ import annotations

import imaplib
import smtplib
from pathlib import Path

import pytest

from support.mail_scenario import ALICE, BOB, PASSWORD, message, prepare, records, serve, stop


def _damage_schema_page(db: Path) -> None:
    with db.open("r+b") as f:
        f.seek(100)  # just past the file header: the schema table's page
        f.write(b"\xff" * 200)


def test_server_serves_healthy_regions_when_one_region_database_is_damaged(
        tmp_path: Path) -> None:
    home = tmp_path / "home"
    prepare(home)  # ALICE in us-east, BOB in eu-dublin
    db = home / "regions" / "eu-dublin" / "cell.sqlite3"
    assert db.exists()
    _damage_schema_page(db)
    before = db.read_bytes()

    served = serve(home)
    try:
        healthy = imaplib.IMAP4("127.0.0.1", served.imap, timeout=30)
        healthy.login(ALICE, PASSWORD)
        damaged = imaplib.IMAP4("127.0.0.1", served.imap, timeout=30)
        with pytest.raises(imaplib.IMAP4.error, match=r"UNAVAILABLE"):
            damaged.login(BOB, PASSWORD)
        damaged.logout()

        with smtplib.SMTP("127.0.0.1", served.mx, timeout=30) as client:
            client.ehlo("mx.remote.test")
            client.mail("someone@remote.test")
            assert client.rcpt(ALICE)[0] == 250
            code, _ = client.rcpt(BOB)
            assert code == 451  # try later: the sender keeps the mail
            assert client.data(message(ALICE))[0] == 250

        healthy.select("INBOX")
        typ, data = healthy.search(None, "ALL")
        assert typ == "OK" and data[0].split() == [b"1"]
        healthy.logout()
    finally:
        output = stop(served)

    unavailable = [r for r in records(output, "logfmt")
                   if r.get("event") == "storage:region:unavailable"]
    assert unavailable, "no log line names the damaged region"
    assert {r["region"] for r in unavailable} == {"eu-dublin"}
    assert all("malformed" in r["reason"] for r in unavailable)
    assert db.read_bytes() == before, "the damaged region was written to"
