"""What an operator watches, from a real `letterlock serve` (worker processes
included) driven by real clients over real sockets:

- the structured log: one line per event, every line logfmt or JSON, linked by queue
  id from SMTP in to store to the outbound queue, and never a subject, a body or a
  password (nor, in hashed mode, an address);
- the fail2ban filter in contrib/ run by fail2ban-regex over the lines the server
  wrote for failed logins (and not fooled by a crafted login name);
- the Prometheus endpoint, counting across processes.
"""

from __future__ import annotations

import base64
import imaplib
import json
import re
import shutil
import smtplib
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from letterlock.services.operations import metrics
from smtp.serve_process import free_ports
from support import mail_scenario as ms

FILTER = Path(__file__).resolve().parents[1] / "contrib" / "fail2ban" / "filter.d" / \
    "letterlock.conf"


@pytest.mark.parametrize(("fmt", "addresses"), [("logfmt", "full"), ("json", "hashed")])
def test_one_line_per_event_linked_by_queue_id_never_a_subject_body_or_password(
        tmp_path: Path, fmt: str, addresses: str) -> None:
    home = tmp_path / "home"
    ms.prepare(home)
    served = ms.serve(home, log_format=fmt, log_addresses=addresses, smtp_workers="2",
                    imap_processes="2")
    try:
        ms.mx_delivery(served)
        ms.submission(served)
        ms.imap(served)
        ms.http(served)
        ms.admin_action(served)
        ms.wait_for(served, "queue:delivery:deferred")
    finally:
        output = ms.stop(served)
    text = "\n".join(output)
    secrets = [ms.SUBJECT, ms.BODY, ms.PASSWORD, ms.WRONG,
               base64.b64encode(f"\0{ms.ALICE}\0{ms.PASSWORD}".encode()).decode(),
               base64.b64encode(ms.PASSWORD.encode()).decode()]
    for secret in secrets:
        assert secret not in text, f"{secret!r} in the log"
    if addresses == "hashed":
        for address in (ms.ALICE, ms.BOB, ms.FOREIGN, "someone@remote.test"):
            assert address not in text
    records = ms.records(output, fmt)  # every line is the banner or a whole record
    events = [r["event"] for r in records]
    for expected in ("server:process:started", "server:process:stopped",
                     "smtp:session:connected", "smtp:session:disconnected",
                     "imap:session:connected", "imap:session:disconnected",
                     "mail:message:accepted", "mail:message:stored", "queue:message:queued",
                     "queue:delivery:deferred", "smtp:reply:rejected", "auth:login:ok",
                     "auth:login:failed", "admin:operator:added"):
        assert expected in events, f"no {expected} in\n{text}"
    logins = {(r["proto"], r.get("mech"), r["event"]) for r in records
              if r["event"].startswith("auth:login:")}
    assert logins >= {("imap", "LOGIN", "auth:login:failed"), ("imap", "LOGIN", "auth:login:ok"),
                      ("submission", "PLAIN", "auth:login:failed"),
                      ("submission", "PLAIN", "auth:login:ok"),
                      ("http", "basic", "auth:login:failed"), ("http", "basic", "auth:login:ok")}
    assert all(r["ip"] == "127.0.0.1" for r in records if r["event"].startswith("auth:"))
    [rejected] = [r for r in records if r["event"] == "smtp:reply:rejected"
                  and r["code"] == "550"]
    assert (rejected["status"], rejected["command"]) == ("5.1.1", "RCPT")
    # One queue id from the MX session to both regions' stores...
    mx_id = next(r["queue"] for r in records
                 if r["event"] == "mail:message:accepted" and r["proto"] == "mx")
    stored = [r for r in records if r["event"] == "mail:message:stored" and r.get("queue") == mx_id]
    assert {r["region"] for r in stored} == {"us-east", "eu-dublin"}
    # ... and from submission to the local store, the outbound queue and each attempt.
    sub_id = next(r["queue"] for r in records
                  if r["event"] == "mail:message:accepted" and r["proto"] == "submission")
    chain = [r["event"] for r in records if r.get("queue") == sub_id]
    assert {"mail:message:stored", "queue:message:queued", "mail:message:accepted",
            "queue:delivery:deferred"} <= set(chain), chain
    [deferred] = [r for r in records if r["event"] == "queue:delivery:deferred"][:1]
    assert deferred["status"] == "4.4.1" and deferred["next"] and deferred["outbound"]
    if addresses == "full":
        assert deferred["rcpt"] == ms.FOREIGN
        assert {r["rcpt"] for r in stored} == {ms.ALICE, ms.BOB}
    else:
        assert re.fullmatch(r"~[0-9a-f]{16}@elsewhere\.test", deferred["rcpt"])


@pytest.fixture
def fail2ban_regex() -> Iterator[str]:
    found = shutil.which("fail2ban-regex")
    if found is None:
        pytest.skip("fail2ban-regex not installed (Debian package fail2ban, see .ci/run)")
    yield found


@pytest.mark.parametrize("fmt", ["logfmt", "json"])
def test_fail2ban_filter_finds_every_failed_login_and_only_those(
        tmp_path: Path, fail2ban_regex: str, fmt: str) -> None:
    home = tmp_path / "home"
    ms.prepare(home)
    served = ms.serve(home, log_format=fmt, log_addresses="full")
    try:
        ms.mx_delivery(served)
        ms.submission(served)  # one failure, one success
        ms.imap(served)  # one failure, one success
        ms.http(served)  # one failure, one success
        imap = imaplib.IMAP4("127.0.0.1", served.imap, timeout=30)
        # A crafted name that looks like another address's line must not ban it.
        for crafted in (f"x@y.test ip=10.9.9.9 {ms.ALICE}", '"} ip=10.9.9.8", "ip":"10.9.9.8'):
            quoted = '"' + crafted.replace("\\", "\\\\").replace('"', '\\"') + '"'
            with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
                imap.login(quoted, ms.WRONG)
        imap.logout()
        ms.wait_for(served, "imap:session:disconnected")
    finally:
        output = ms.stop(served)
    log = tmp_path / "letterlock.log"
    log.write_text("\n".join(output) + "\n")
    done = subprocess.run([fail2ban_regex, "--out", "ip", str(log), str(FILTER)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    failed = [line for line in output if "auth:login:failed" in line]
    # submission (PLAIN, then LOGIN), IMAP, HTTP, the two crafted names
    assert len(failed) == 6, "\n".join(output)
    assert done.stdout.split() == ["127.0.0.1"] * 6, done.stdout + "\n".join(output)


def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_count_every_process(tmp_path: Path) -> None:
    """Deliveries and logins spread over the main process and a worker (shared
    ports) all show in the main process's /metrics."""
    home = tmp_path / "home"
    ms.prepare(home)
    (port,) = free_ports(1)
    served = ms.serve(home, http_metrics_port=str(port), smtp_workers="2",
                    imap_processes="2")
    deliveries, logins = 12, 12
    try:
        assert _scrape(port).get(("letterlock_messages_accepted_total", (("listener", "mx"),)),
                                 0.0) == 0
        for _ in range(deliveries):
            with smtplib.SMTP("127.0.0.1", served.mx, timeout=30) as client:
                client.sendmail("someone@remote.test", [ms.ALICE], b"Subject: m\r\n\r\nhi\r\n")
        for _ in range(logins):
            imap = imaplib.IMAP4("127.0.0.1", served.imap, timeout=30)
            imap.login(ms.ALICE, ms.PASSWORD)
            imap.logout()
        imap = imaplib.IMAP4("127.0.0.1", served.imap, timeout=30)
        with pytest.raises(imaplib.IMAP4.error):
            imap.login(ms.ALICE, ms.WRONG)
        # That session stays open: one open connection.
        ms.submission(served)  # a message for the outbound queue
        ms.wait_for(served, "queue:delivery:deferred")
        deadline = time.monotonic() + 10
        while True:
            after = _scrape(port)
            if after.get(("letterlock_connections_open", (("proto", "imap"),))) == 1 \
                    or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        imap.logout()
    finally:
        output = ms.stop(served)

    def value(name: str, **labels: str) -> float:
        return after.get((name, tuple(sorted(labels.items()))), 0.0)

    pids = {m.group(1) for line in output if "imap:session:connected" in line
            for m in [re.search(r"pid=(\d+)", line)] if m}
    assert len(pids) == 2, "the kernel gave every IMAP connection to one process"
    assert value("letterlock_messages_accepted_total", listener="mx") == deliveries
    assert value("letterlock_connections_total", proto="mx") == deliveries
    assert value("letterlock_deliveries_total", result="stored") == deliveries + 1
    assert value("letterlock_connections_total", proto="imap") == logins + 1
    assert value("letterlock_logins_total", proto="imap", result="ok") == logins
    assert value("letterlock_logins_total", proto="imap", result="failed") == 1
    assert value("letterlock_logins_total", proto="submission", result="failed") == 2
    assert value("letterlock_connections_open", proto="imap") == 1
    assert value("letterlock_outbound_total", result="queued") == 1
    assert value("letterlock_outbound_total", result="deferred") >= 1
    assert value("letterlock_outbound_queue_messages") == 1
    assert value("letterlock_outbound_queue_oldest_seconds") >= 0
    assert value("letterlock_seal_seconds_count") == deliveries + 1
    assert value("letterlock_unseal_seconds_count") == 0
    assert value("letterlock_audit_log_entries") >= 2  # the two accounts created
    assert value("letterlock_audit_log_bytes") > 0
    assert value("letterlock_legal_matters_due", when="overdue") == 0


def test_the_grafana_dashboard_uses_only_metrics_the_server_exports(tmp_path: Path) -> None:
    dashboard = json.loads((Path(__file__).resolve().parents[1] / "contrib" / "grafana"
                            / "letterlock.json").read_text())
    used = {name for panel in dashboard["panels"] for target in panel.get("targets", [])
            for name in re.findall(r"letterlock_\w+", target["expr"])}
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"),
                "gauge": ("",)}
    exported = {family.name + suffix
                for metric in vars(metrics.Instruments()).values()
                for family in metric.describe() for suffix in suffixes[family.type]}
    metrics.metrics_dir(tmp_path).mkdir()
    state = metrics.State(matters_by_state={"open": 1}, next_deadline_s=60.0,
                          audit_entries=3)
    exported |= {family.name for family in text_string_to_metric_families(
        metrics.render(tmp_path, state).decode())}
    assert used and used <= exported, sorted(used - exported)
