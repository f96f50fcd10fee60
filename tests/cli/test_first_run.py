"""First-run friction (issue 15 point 7): what `init` is told is kept, settings show
their units, a misspelt LETTERLOCK_* variable is named, and a region's country is a
real ISO 3166 code."""

from __future__ import annotations

import os
import smtplib
import subprocess
import sys
import time
from pathlib import Path

from letterlock import config as config_mod
from letterlock.services.accounts import countries, setup
from smtp.serve_process import free_ports, start_serve
from support.cli import letterlock
from support.env import FAST_KDF_ENV


def test_init_keeps_the_ports_it_was_given_for_a_later_serve(tmp_path: Path) -> None:
    home = tmp_path / "home"
    mx, sub, imap, imaps, http = free_ports(5)
    letterlock(home, "init", "--smtp-port", str(mx), "--submission-port", str(sub),
               "--imap-port", str(imap), "--imaps-port", str(imaps),
               "--http-port", str(http), "--lmtp-socket", "")
    config = config_mod.load(home, env={})
    assert (config.smtp.port, config.smtp.submission_port, config.imap.port,
            config.imap.tls_port, config.http.port, config.smtp.lmtp_socket) == (
        mx, sub, imap, imaps, http, "")
    # The starting file still names the profile; `init` may be run again to change
    # a port, and keeps the rest of the file (comments included).
    text = (home / config_mod.CONFIG_FILE).read_text()
    assert 'profile = "location-2016"' in text
    letterlock(home, "init", "--http-port", str(http + 1))
    again = config_mod.load(home, env={})
    assert (again.http.port, again.smtp.port) == (http + 1, mx)
    assert (home / config_mod.CONFIG_FILE).read_text().startswith(text.split("\n")[0])

    # `serve` without options listens where `init` said (ManageSieve off: 4190 may be
    # taken by a test running beside this one).
    env = {**os.environ, **FAST_KDF_ENV, "LETTERLOCK_SIEVE_PORT": "0"}
    env.pop("LETTERLOCK_HOME", None)
    proc = subprocess.Popen([sys.executable, "-m", "letterlock", "--home", str(home), "serve"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env)
    try:
        assert proc.stdout is not None
        lines = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if not line or line.startswith("Stop with Ctrl-C"):
                break
        assert f"127.0.0.1:{mx}" in "".join(lines), "".join(lines)
        # ... and says where the certificate it made is.
        made = (home / "control" / "tls" / "selfsigned.pem").absolute()
        assert f"TLS certificate    {made} (self-signed" in "".join(lines)
        assert made.exists() and made.with_suffix(".key").stat().st_mode & 0o077 == 0
        with smtplib.SMTP("127.0.0.1", mx, timeout=10) as client:
            assert client.ehlo()[0] == 250
    finally:
        proc.terminate()
        proc.wait(30)


def test_set_option_edits_only_its_own_section() -> None:
    text = "# mine\n[smtp]\nport = 25 # the MX\n\n[imap]\nport = 143\n"
    edited = setup.set_option(text, "imap", "port", 1143)
    assert edited == "# mine\n[smtp]\nport = 25 # the MX\n\n[imap]\nport = 1143\n"
    added = setup.set_option(edited, "smtp", "submission_port", 587)
    assert "[smtp]\nport = 25 # the MX\nsubmission_port = 587\n" in added
    assert setup.set_option("", "server", "bind", '0.0.0.0"').endswith(
        '[server]\nbind = "0.0.0.0\\""\n')


def test_every_number_in_the_schema_has_a_unit() -> None:
    numbers = [o for o in config_mod.describe() if o.kind is int]
    assert numbers and [o.name for o in numbers if not o.unit] == []
    units = {o.name: o.unit for o in config_mod.describe()}
    assert units["smtp.max_message_bytes"] == "bytes"
    assert units["crypto.argon2_memory_kib"] == "KiB"
    assert units["imap.idle_timeout_s"] == "seconds"
    assert units["server.hostname"] == ""


def test_config_listing_shows_units(tmp_path: Path) -> None:
    home = tmp_path / "home"
    letterlock(home, "init")
    rows = {line.split()[1]: line for line in letterlock(home, "config").stdout.splitlines()
            if line.startswith("│ ") and "." in line.split()[1]}
    assert "52428800" in rows["smtp.max_message_bytes"]
    assert "bytes" in rows["smtp.max_message_bytes"]
    assert "seconds" in rows["smtp.queue_max_age_s"]
    assert "KiB" in rows["crypto.argon2_memory_kib"]
    assert "TCP port" in rows["http.port"]


def run_with_env(home: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("LETTERLOCK_")}
    proc = subprocess.run([sys.executable, "-m", "letterlock", "--home", str(home), *args],
                          capture_output=True, text=True, env={**full, **env}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc


def test_a_misspelt_variable_is_named_with_the_nearest_setting(tmp_path: Path) -> None:
    home = tmp_path / "home"
    proc = run_with_env(home, {"LETTERLOCK_SMTP_PROT": "2600",
                               "letterlock_imap_port": "1144",
                               "LETTERLOCK_NOTHING_LIKE_IT": "1"}, "init")
    warnings = [line for line in proc.stderr.splitlines() if "warning" in line]
    assert warnings == [
        "letterlock: warning: LETTERLOCK_NOTHING_LIKE_IT is not a letterlock setting and "
        "is ignored (`letterlock config` lists them)",
        "letterlock: warning: LETTERLOCK_SMTP_PROT is not a letterlock setting and is "
        "ignored; did you mean LETTERLOCK_SMTP_PORT?",
        "letterlock: warning: letterlock_imap_port is not a letterlock setting and is "
        "ignored; did you mean LETTERLOCK_IMAP_PORT?",
    ], proc.stderr


def test_known_variables_are_not_warned_about(tmp_path: Path) -> None:
    proc = run_with_env(tmp_path / "home", {
        "LETTERLOCK_SMTP_PORT": "2600", "LETTERLOCK_HOME": str(tmp_path / "elsewhere"),
        "LETTERLOCK_TEST_POSTGRES_URL": "postgresql://x", "LETTERLOCK_SCREENSHOTS": "/tmp"},
        "init")
    assert "warning" not in proc.stderr


def test_serve_warns_about_a_misspelt_variable(tmp_path: Path) -> None:
    home = tmp_path / "home"
    served = start_serve(home, {"LETTERLOCK_IMAP_IDLE_TIMEOUT": "60"})
    try:
        assert any("LETTERLOCK_IMAP_IDLE_TIMEOUT is not a letterlock setting" in line
                   and "LETTERLOCK_IMAP_IDLE_TIMEOUT_S?" in line for line in served.output)
    finally:
        served.proc.terminate()
        served.proc.wait(30)


def test_region_add_refuses_a_country_iso_3166_does_not_assign(tmp_path: Path) -> None:
    home = tmp_path / "home"
    letterlock(home, "init")
    for spec, reason in (("mars:XX", "'XX' is not an ISO 3166-1 alpha-2 country code"),
                         ("london:UK", "(for the United Kingdom use GB)"),
                         ("moon:ZZ", "ZZ")):
        proc = letterlock(home, "region", "add", spec, check=False)
        assert proc.returncode == 2 and reason in proc.stderr, proc.stderr
        assert len(proc.stderr.splitlines()) == 1
    assert "mars" not in letterlock(home, "region", "list").stdout
    assert letterlock(home, "region", "add", "ch-zurich:ch").stdout.strip() == (
        "added region ch-zurich (CH)")
    refused = letterlock(tmp_path / "other", "init", "--operator-country", "XK", check=False)
    assert refused.returncode == 2 and "'XK'" in refused.stderr


def test_the_country_table_is_iso_3166_1() -> None:
    assert len(countries.ALPHA_2) == 249
    assert {"US", "IE", "GB", "CH", "AX", "SS", "CW"} <= countries.ALPHA_2
    assert not {"XX", "UK", "EU", "EL", "XK", "ZZ"} & countries.ALPHA_2
