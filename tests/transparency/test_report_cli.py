"""`letterlock report` on matters filed and decided through the real legal workflow:
the report is what the decisions say, and the canary verifies offline."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from support.cli import letterlock

PASSWORD = "correct horse battery"


def request(served: str, instrument: str, categories: list[str], target: str,
            *, action: str = "produce", gag: Any = None) -> dict[str, Any]:
    return {
        "received_at": served, "served_at": served,
        "issuer": {"country": "US", "authority": "court", "name": "SDNY",
                   "judge_validated": True, "verified": True},
        "instrument": instrument, "action": action, "categories": categories,
        "targets": [target],
        "offence": {"max_penalty_years": 10, "listed": False, "country": "US"},
        "emergency": False, "gag": gag,
    }


MATTERS = [
    # L16: US warrant for mail stored in Ireland -> redirect to MLAT (rejected bucket)
    request("2025-01-15T09:00:00Z", "us-warrant", ["content", "traffic"], "carol@example.test"),
    request("2025-02-01T09:00:00Z", "us-subpoena", ["subscriber"], "bob@example.test"),
    request("2025-03-01T09:00:00Z", "us-warrant", ["content"], "bob@example.test",
            gag={"until": "2025-09-01"}),
    request("2025-04-01T09:00:00Z", "us-nsl", ["subscriber"], "bob@example.test"),
    request("2025-05-01T09:00:00Z", "us-preservation", ["content"], "carol@example.test",
            action="preserve"),
    request("2025-08-01T09:00:00Z", "us-subpoena", ["subscriber"], "bob@example.test"),
]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("report")
    home = base / "home"
    letterlock(home, "init")
    letterlock(home, "user", "add", "bob@example.test", "--region", "us-east",
               "--password-stdin", stdin=PASSWORD + "\n")
    letterlock(home, "user", "add", "carol@example.test", "--region", "eu-dublin",
               "--password-stdin", stdin=PASSWORD + "\n")
    for n, doc in enumerate(MATTERS):
        path = base / f"request{n}.json"
        path.write_text(json.dumps(doc))
        matter = json.loads(letterlock(home, "legal", "file", str(path), "--json").stdout)
        letterlock(home, "legal", "decide", matter["id"], "--accept")
    return home


def test_json_report_matches_hand_computed_table(home: Path) -> None:
    doc = json.loads(letterlock(home, "report", "transparency", "--period", "2025-H1").stdout)
    assert doc["rows"] == [{
        "country": "US", "period": "2025-H1",
        "requests": 3, "accounts": 3, "content": 1, "non_content": 1, "no_data": 0,
        "rejected": 1, "preservation": 1, "mlat_redirects": 1, "stored_abroad": 2,
        "closed_undecided": 0,
    }]
    assert doc["national_security"] == {"requests": "0-499", "accounts": "0-499"}
    head = json.loads(letterlock(home, "log", "head", "--json").stdout)
    assert doc["computed_at_head"]["tree_size"] == head["tree_size"]
    assert doc["computed_at_head"]["root_hash"] == head["root_hash"]
    h2 = json.loads(letterlock(home, "report", "transparency", "--period", "2025-H2").stdout)
    assert [(r["requests"], r["non_content"]) for r in h2["rows"]] == [(1, 1)]


def test_csv_and_html_to_file(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.csv"
    letterlock(home, "report", "transparency", "--period", "2025-H1", "--format", "csv",
               "--out", str(out))
    lines = [ln for ln in out.read_text().splitlines() if not ln.startswith("#")]
    rows = list(csv.DictReader(io.StringIO("\n".join(lines))))
    assert rows[0]["country"] == "US" and rows[0]["requests"] == "3"
    page = letterlock(home, "report", "transparency", "--period", "2025-H1",
                      "--format", "html").stdout
    assert "<svg" in page and "<script" not in page


def test_bad_period_is_one_line_error(home: Path) -> None:
    proc = letterlock(home, "report", "transparency", "--period", "2025-Q1", check=False)
    assert proc.returncode == 2
    assert "2025-H1" in proc.stderr


def test_canary_is_signed_and_omits_what_was_received(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "canary.json"
    letterlock(home, "report", "canary", "--period", "2025-H1", "--out", str(out))
    doc = json.loads(out.read_text())
    assert "national-security-letter" not in doc["not_received"]
    assert "fisa-order" in doc["not_received"]
    assert set(doc["covers"]) > set(doc["not_received"])
    key = json.loads(letterlock(home, "log", "head", "--json").stdout)["public_key"]
    ok = subprocess.run([sys.executable, "-m", "letterlock.audit.verify", "--public-key", key,
                         "canary", str(out)], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "not received any order under the Foreign Intelligence" in ok.stdout
    doc["not_received"].append("national-security-letter")
    out.write_text(json.dumps(doc))
    bad = subprocess.run([sys.executable, "-m", "letterlock.audit.verify", "canary", str(out)],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1
    h2 = json.loads(letterlock(home, "report", "canary", "--period", "2025-H2").stdout)
    assert "national-security-letter" in h2["not_received"]


def test_gagged_steps_stay_sealed_in_the_log(home: Path) -> None:
    assert letterlock(home, "log", "verify").stdout.startswith("OK ")
    events = (home / "control" / "audit" / "events.jsonl").read_text().splitlines()
    kinds = [json.loads(line)["kind"] for line in events]
    assert "commitment" in kinds  # the gagged warrant's steps
