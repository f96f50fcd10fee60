"""A throwaway Dovecot for interoperability tests (migration, Maildir export).

    with running_dovecot([User("ann", "pw")]) as dovecot:
        imaplib.IMAP4("127.0.0.1", dovecot.imap_port)
        dovecot.maildir("ann")          # her Maildir++ root (mail_location maildir:~/Maildir)

Like bench/dovecot.py (which the benchmark uses, asynchronously and with mdbox), it
runs as a plain child process (``dovecot -F -c CONF``) with everything in one fresh
directory: configuration, sockets, state, log and mail, on free loopback ports (IMAP
with plaintext LOGIN, IMAPS with a self-signed certificate). Mail is **Maildir++**
(or mbox, on request) with Dovecot's defaults, so what a test finds on disk is what an ordinary
installation writes. As root, Dovecot's processes drop to ``dovenull``/``dovecot`` and
the mail belongs to ``dovecot``: :meth:`Dovecot.adopt` hands a tree to that user.
Tests skip, with the reason, when Dovecot is not installed (.ci/run installs it).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

MAILDIR = "maildir:~/Maildir"
MBOX = "mbox:~/mail:INBOX=~/mail/inbox"


@dataclass(frozen=True)
class User:
    name: str
    password: str


@dataclass(frozen=True)
class Dovecot:
    root: Path
    imap_port: int
    imaps_port: int
    cert: Path
    uid: int
    gid: int

    @property
    def log(self) -> Path:
        return self.root / "dovecot.log"

    def home(self, user: str) -> Path:
        return self.root / "mail" / user

    def maildir(self, user: str) -> Path:
        return self.home(user) / "Maildir"

    def adopt(self, path: Path) -> None:
        """Give ``path`` and everything below it to the user Dovecot reads mail as."""
        for top, dirs, files in os.walk(path):
            os.chown(top, self.uid, self.gid)
            for name in dirs + files:
                os.chown(os.path.join(top, name), self.uid, self.gid)


def require_dovecot() -> None:
    if not (shutil.which("dovecot") or Path("/usr/sbin/dovecot").exists()):
        pytest.skip("Dovecot is not installed (apt-get install dovecot-imapd; .ci/run "
                    "installs it)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_for(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text()[-2000:] if log.exists() else ""
                raise RuntimeError(f"Dovecot did not listen on {port}\n{tail}") from None
            time.sleep(0.05)


def _config(root: Path, login_user: str, internal_user: str, uid: int,
            imap_port: int, imaps_port: int, cert: Path, key: Path,
            mail_location: str) -> str:
    return "\n".join([
        f"instance_name = lltest-{root.name}",
        f"base_dir = {root}/run",
        f"state_dir = {root}/state",
        f"log_path = {root}/dovecot.log",
        f"info_log_path = {root}/dovecot.log",
        "protocols = imap",
        "listen = 127.0.0.1",
        f"default_login_user = {login_user}",
        f"default_internal_user = {internal_user}",
        f"first_valid_uid = {min(uid, 500)}",
        "disable_plaintext_auth = no",
        "auth_mechanisms = plain login",
        "ssl = yes",
        f"ssl_cert = <{cert}",
        f"ssl_key = <{key}",
        f"mail_location = {mail_location}",
        "namespace inbox {",
        "  inbox = yes",
        "}",
        "passdb {",
        "  driver = passwd-file",
        f"  args = username_format=%u {root}/users",
        "}",
        "userdb {",
        "  driver = passwd-file",
        f"  args = username_format=%u {root}/users",
        "}",
        "service imap-login {",
        "  inet_listener imap {",
        "    address = 127.0.0.1",
        f"    port = {imap_port}",
        "  }",
        "  inet_listener imaps {",
        "    address = 127.0.0.1",
        f"    port = {imaps_port}",
        "    ssl = yes",
        "  }",
        "}",
    ]) + "\n"


@contextlib.contextmanager
def running_dovecot(users: Sequence[User], mail_location: str = MAILDIR,
                    ) -> Iterator[Dovecot]:
    """Run Dovecot with ``users`` (empty mailboxes) in a fresh directory; stop it and
    remove the directory on exit. ``mail_location``: Dovecot's setting (MAILDIR, or
    MBOX: one mbox file per folder under ~/mail, INBOX in ~/mail/inbox)."""
    require_dovecot()
    # Not under pytest's tmp_path: that is 0700, and Dovecot's unprivileged
    # processes must reach the configuration and the mail.
    root = Path(tempfile.mkdtemp(prefix="ll-dovecot-"))
    root.chmod(0o755)
    if os.geteuid() == 0:
        mail_user = pwd.getpwnam("dovecot")
        login_user, internal_user = "dovenull", "dovecot"
    else:
        mail_user = pwd.getpwuid(os.geteuid())
        login_user = internal_user = mail_user.pw_name
    uid, gid = mail_user.pw_uid, mail_user.pw_gid
    cert, key = root / "cert.pem", root / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    (root / "mail").mkdir()
    rows = []
    for user in users:
        (root / "mail" / user.name).mkdir()
        rows.append(f"{user.name}:{{PLAIN}}{user.password}:{uid}:{gid}::"
                    f"{root / 'mail' / user.name}::")
    (root / "users").write_text("\n".join(rows) + "\n")
    dovecot = Dovecot(root, _free_port(), _free_port(), cert, uid, gid)
    if os.geteuid() == 0:
        dovecot.adopt(root / "mail")
    conf = root / "dovecot.conf"
    conf.write_text(_config(root, login_user, internal_user, uid, dovecot.imap_port,
                            dovecot.imaps_port, cert, key, mail_location))
    with open(root / "dovecot.stderr", "wb") as errors:
        proc = subprocess.Popen(["dovecot", "-F", "-c", str(conf)], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=errors,
                                start_new_session=True)
    try:
        _wait_for(dovecot.imap_port, proc, dovecot.log)
        _wait_for(dovecot.imaps_port, proc, dovecot.log)
        yield dovecot
    finally:
        # The master stops its children on SIGTERM; the whole session group goes
        # after a grace period, in case one lingers.
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        shutil.rmtree(root, ignore_errors=True)
