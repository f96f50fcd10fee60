"""`letterlock domain show D`: the records to publish, with a DKIM key that signs."""

from __future__ import annotations

import json
from pathlib import Path

import dkim

from letterlock.services.mail import dkim_keys
from support.cli import letterlock


def test_domain_show_prints_mx_spf_dkim(tmp_path: Path) -> None:
    home = tmp_path / "home"
    letterlock(home, "init", "--domain", "mail.test")
    text = letterlock(home, "domain", "show", "mail.test").stdout
    assert "mail.test. 3600 IN MX 10 " in text
    assert 'mail.test. 3600 IN TXT "v=spf1 mx -all"' in text
    assert "._domainkey.mail.test. 3600 IN TXT \"v=DKIM1; k=rsa; p=" in text
    records = json.loads(letterlock(home, "domain", "show", "mail.test", "--json").stdout)
    [dkim_record] = [r for r in records if "_domainkey" in r["name"]]
    key = dkim_keys.load_key(home / "control", "mail.test")
    assert key is not None
    assert dkim_record["name"] == f"{key.selector}._domainkey.mail.test"
    assert (home / "control" / "dkim" / "mail.test" / f"{key.selector}.pem").stat().st_mode \
        & 0o077 == 0
    # The published key verifies what the queue signs.
    signed = dkim_keys.DkimKeys(home / "control").sign(
        b"From: a@mail.test\r\nTo: b@x.test\r\nSubject: s\r\n\r\nbody\r\n", "mail.test")
    assert dkim.verify(signed, dnsfunc=lambda name, timeout=5: dkim_record["value"].encode())


def test_domain_show_unknown_domain_fails(tmp_path: Path) -> None:
    home = tmp_path / "home"
    letterlock(home, "init")
    proc = letterlock(home, "domain", "show", "nothere.test", check=False)
    assert proc.returncode != 0
    assert "not hosted" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
