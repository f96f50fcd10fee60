"""Issue 17 point 4: letterlock behind an existing MX. A private Postfix instance (its
own configuration, queue and data directories under a temp dir; its master in the
foreground, stopped at the end) takes mail over SMTP and hands it to `letterlock
serve` over LMTP, on the Unix socket (``--lmtp-socket``, Postfix
``virtual_transport = lmtp:unix:PATH``) and on a TCP port (``--lmtp-port``,
``lmtp:inet:127.0.0.1:PORT``).

Postfix's master must start as root (its daemons then run as the ``postfix`` user),
so the test is skipped, saying why, without root or without Postfix (.ci/run
installs it)."""

from __future__ import annotations

import asyncio
import contextlib
import grp
import imaplib
import os
import pwd
import shutil
import smtplib
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from letterlock.app import initialise, open_app
from letterlock.services.accounts.setup import InitOptions
from smtp.serve_process import free_ports, start_serve
from support.env import PASSWORD, make_config

POSTFIX = shutil.which("postfix") or ("/usr/sbin/postfix"
                                      if os.path.exists("/usr/sbin/postfix") else None)
DAEMONS = "/usr/lib/postfix/sbin"
ALICE = "alice@example.test"
BOB = "bob@example.test"


def _why_not() -> str | None:
    if POSTFIX is None or not os.path.exists(f"{DAEMONS}/lmtp"):
        return "Postfix is not installed (apt-get install postfix; see .ci/run)"
    if os.geteuid() != 0:
        return "a private Postfix instance needs root (its master starts as root)"
    try:
        pwd.getpwnam("postfix")
        grp.getgrnam("postdrop")
    except KeyError:
        return "the postfix user or postdrop group is missing (install the postfix package)"
    return None


pytestmark = pytest.mark.skipif(_why_not() is not None, reason=_why_not() or "")

MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
cleanup   unix n - n - 0 cleanup
qmgr      unix n - n 300 1 qmgr
rewrite   unix - - n - - trivial-rewrite
bounce    unix - - n - 0 bounce
defer     unix - - n - 0 bounce
trace     unix - - n - 0 bounce
verify    unix - - n - 1 verify
flush     unix n - n 1000? 0 flush
proxymap  unix - - n - - proxymap
smtp      unix - - n - - smtp
relay     unix - - n - - smtp
showq     unix n - n - - showq
error     unix - - n - - error
retry     unix - - n - - error
discard   unix - - n - - discard
lmtp      unix - - n - - lmtp
anvil     unix - - n - 1 anvil
scache    unix - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


@contextlib.contextmanager
def private_postfix(transport: str) -> Iterator[tuple[int, Path]]:
    """A Postfix instance relaying mail for example.test to ``transport`` (e.g.
    ``lmtp:unix:/path``): (its SMTP port, its log file)."""
    assert POSTFIX is not None
    # Not under pytest's tmp_path: Postfix's daemons (user postfix) must reach it.
    root = Path(tempfile.mkdtemp(prefix="letterlock-postfix-"))
    os.chmod(root, 0o755)
    for name in ("etc", "spool", "data"):
        (root / name).mkdir()
    postfix_user = pwd.getpwnam("postfix")
    os.chown(root / "data", postfix_user.pw_uid, postfix_user.pw_gid)
    [port] = free_ports(1)
    (root / "etc" / "main.cf").write_text(f"""\
compatibility_level = 3.6
queue_directory = {root}/spool
data_directory = {root}/data
meta_directory = /etc/postfix
command_directory = {os.path.dirname(POSTFIX)}
daemon_directory = {DAEMONS}
mail_owner = postfix
setgid_group = postdrop
myhostname = front.example.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
virtual_mailbox_domains = example.test
virtual_transport = {transport}
smtpd_reject_unlisted_recipient = no
maillog_file_prefixes = {root}
maillog_file = {root}/maillog
alias_maps =
alias_database =
biff = no
smtputf8_enable = no
""")
    (root / "etc" / "master.cf").write_text(MASTER_CF.format(port=port))
    master = subprocess.Popen([POSTFIX, "-c", str(root / "etc"), "start-fg"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = root / "maillog"
    try:
        deadline = time.monotonic() + 30
        while "daemon started" not in (log.read_text() if log.exists() else ""):
            if master.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("Postfix did not start:\n"
                                     + (log.read_text() if log.exists() else ""))
            time.sleep(0.1)
        yield port, log
    finally:
        subprocess.run([POSTFIX, "-c", str(root / "etc"), "stop"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30,
                       check=False)
        try:
            master.wait(30)
        except subprocess.TimeoutExpired:
            master.kill()
            master.wait(5)
        shutil.rmtree(root, ignore_errors=True)


def _inbox_subjects(port: int, address: str) -> list[bytes]:
    with imaplib.IMAP4("127.0.0.1", port) as client:
        client.login(address, PASSWORD)
        client.select("INBOX", readonly=True)
        _, data = client.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT RECEIVED)])")
        return [item[1] for item in data if isinstance(item, tuple)]


@pytest.mark.parametrize("over", ["unix", "inet"])
async def test_postfix_delivers_to_serve_over_lmtp(tmp_path: Path, over: str) -> None:
    home = tmp_path / "home"
    config = make_config(home)
    await initialise(config, InitOptions())
    async with open_app(config) as app:
        await app.accounts.create(ALICE, "us-east", PASSWORD)
        await app.accounts.create(BOB, "eu-dublin", PASSWORD)
    # The socket where Postfix's lmtp client (user postfix) may reach it: its directory
    # searchable, the socket's group one the postfix user is in (what an operator does
    # by adding postfix to the server's group).
    sockets = Path(tempfile.mkdtemp(prefix="letterlock-lmtp-"))
    os.chmod(sockets, 0o711)
    socket_path = sockets / "lmtp.sock"
    [lmtp_port] = free_ports(1)
    served = await asyncio.to_thread(
        start_serve, home, {"LETTERLOCK_IMAP_PROCESSES": "1"}, 60,
        ("--lmtp-port", str(lmtp_port), "--lmtp-socket", str(socket_path)))
    try:
        assert f"LMTP               unix:{socket_path}" in "".join(served.output)
        assert f"LMTP               127.0.0.1:{lmtp_port}" in "".join(served.output)
        assert (socket_path.stat().st_mode & 0o777) == 0o660
        os.chown(socket_path, -1, pwd.getpwnam("postfix").pw_gid)
        transport = (f"lmtp:unix:{socket_path}" if over == "unix"
                     else f"lmtp:inet:127.0.0.1:{lmtp_port}")
        with private_postfix(transport) as (smtp_port, log):
            def send() -> None:
                with smtplib.SMTP("127.0.0.1", smtp_port, timeout=30) as client:
                    client.sendmail("someone@remote.test", [ALICE, BOB],
                                    f"Subject: via postfix {over}\r\n\r\nhello\r\n".encode())

            await asyncio.to_thread(send)
            deadline = time.monotonic() + 30
            while log.read_text().count("status=sent") < 2:
                assert "status=bounced" not in log.read_text(), log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                await asyncio.sleep(0.2)
            assert f"relay=front.example.test[{socket_path}]" in log.read_text() \
                if over == "unix" else f"[127.0.0.1]:{lmtp_port}" in log.read_text()
        for address in (ALICE, BOB):
            [headers] = await asyncio.to_thread(_inbox_subjects, served.imap, address)
            assert f"Subject: via postfix {over}".encode() in headers
            assert b"with LMTP id" in headers
            assert b"([])" not in headers  # no address to show for a socket peer
    finally:
        served.proc.terminate()
        served.proc.wait(30)
        removed = not socket_path.exists()
        shutil.rmtree(sockets, ignore_errors=True)
    assert removed  # at shutdown
