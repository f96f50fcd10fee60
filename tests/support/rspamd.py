"""A throwaway rspamd (the Debian package's binary) for tests: its own configuration
directory built on the package's shared rules (/etc/rspamd), its own database, run and
log directories, loopback ports of its own, no Redis (so Bayes cannot store what it is
taught, but learning requests are answered and logged), and no network: DNS goes to
a closed loopback port, and the URL suffix list is cut to a few names so that start-up
takes a second instead of compiling ten thousand suffixes.

GTUBE test patterns are on (``enable_test_patterns``): the ``XJS*`` string gets
``reject``, ``YJS*`` ``add header``, ``ZJS*`` ``rewrite subject``. A force_actions rule
answers ``soft reject`` (what rspamd's greylisting says) for a message without a
Message-ID, to test deferral.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
GTUBE_ADD_HEADER = "Y" + GTUBE[1:]
GTUBE_REWRITE_SUBJECT = "Z" + GTUBE[1:]
SHARED_RULES = Path("/etc/rspamd")

_CONFIG = """\
.include "$CONFDIR/common.conf"
options {{
    pidfile = "$RUNDIR/rspamd.pid";
    filters = "chartable,dkim,regexp,fuzzy_check";
    cache_file = "$DBDIR/symbols.cache";
    dynamic_conf = "$DBDIR/rspamd_dynamic";
    history_file = "$DBDIR/rspamd.history";
    control_socket = "$DBDIR/rspamd.sock mode=0600";
    stats_file = "$DBDIR/stats.ucl";
    hs_cache_dir = "$DBDIR/";
    explicit_modules = ["settings", "bayes_expiry"];
    allow_raw_input = true;
    task_timeout = 8s;
    dns {{ nameserver = ["127.0.0.1:9"]; timeout = 0.2s; retransmits = 1; }}
    enable_test_patterns = true;
    url_tld = "{tld}";
}}
logging {{
    type = "file";
    filename = "$LOGDIR/rspamd.log";
    level = "info";
}}
worker "normal" {{
    bind_socket = "127.0.0.1:{normal}";
    count = 1;
    .include "$CONFDIR/worker-normal.inc"
}}
worker "controller" {{
    bind_socket = "127.0.0.1:{controller}";
    count = 1;
    secure_ip = "127.0.0.1";
    password = "{password}";
}}
"""
_FORCE_ACTIONS = """\
rules {
    LETTERLOCK_TEST_DEFER {
        action = "soft reject";
        expression = "MISSING_MID";
        message = "Try again later";
    }
}
"""


@dataclass
class Rspamd:
    url: str
    controller_url: str
    log: Path

    def log_text(self) -> str:
        return self.log.read_text("utf-8", "replace") if self.log.exists() else ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/ping", timeout=1) as reply:
            return bool(reply.read().startswith(b"pong"))
    except OSError:
        return False


@contextlib.contextmanager
def running_rspamd(workdir: Path, password: str = "") -> Iterator[Rspamd]:
    """Start rspamd under ``workdir``; skip the test (visibly) where it is missing."""
    binary = shutil.which("rspamd") or ("/usr/bin/rspamd"
                                        if os.path.exists("/usr/bin/rspamd") else None)
    if binary is None or not (SHARED_RULES / "common.conf").exists():
        pytest.skip("rspamd is not installed (Debian package rspamd; .ci/run installs it)")
    for sub in ("db", "run", "log", "local.d"):
        (workdir / sub).mkdir(parents=True, exist_ok=True)
    tld = workdir / "tld.dat"
    tld.write_text("com\norg\nnet\ntest\nexample\n")
    normal, controller = _free_port(), _free_port()
    conf = workdir / "rspamd.conf"
    conf.write_text(_CONFIG.format(tld=tld, normal=normal, controller=controller,
                                   password=password))
    (workdir / "local.d" / "force_actions.conf").write_text(_FORCE_ACTIONS)
    command = [binary, "-f", "-c", str(conf), f"--var=CONFDIR={SHARED_RULES}",
               f"--var=LOCAL_CONFDIR={workdir}", f"--var=DBDIR={workdir / 'db'}",
               f"--var=RUNDIR={workdir / 'run'}", f"--var=LOGDIR={workdir / 'log'}"]
    if os.geteuid() == 0:
        # rspamd refuses to run its workers as root unless told it may (the
        # alternative, -u/-g _rspamd, would need the test's directories opened to
        # that user).
        command.append("--insecure")
    out = (workdir / "stdout.txt").open("wb")
    process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                               start_new_session=True)
    url, controller_url = f"http://127.0.0.1:{normal}", f"http://127.0.0.1:{controller}"
    try:
        for _ in range(300):  # up to ~30 s on a loaded machine; ~1 s usually
            if process.poll() is not None:
                raise RuntimeError("rspamd exited at start: "
                                   + (workdir / "stdout.txt").read_text()[-2000:])
            if _answers(url) and _answers(controller_url):
                break
            time.sleep(0.1)
        else:
            raise RuntimeError("rspamd did not answer /ping within 30 s")
        yield Rspamd(url, controller_url, workdir / "log" / "rspamd.log")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        out.close()
