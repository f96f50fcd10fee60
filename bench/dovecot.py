"""A private Dovecot 2.3 instance for side-by-side benchmarks (bench/vs_dovecot.py).

    async with running_dovecot(root, users, variant="mail-crypt") as dovecot:
        dovecot.imap_port, dovecot.lmtp_port, dovecot.pids(), await dovecot.doveadm(...)

Dovecot runs as an ordinary child process (``dovecot -F -c CONF``) with everything
under ``root``: configuration, sockets (base_dir), state, log, and the mail itself.
It listens on 127.0.0.1 only, on free ports: IMAP (plaintext LOGIN allowed), IMAPS
(self-signed certificate, when ``tls``) and LMTP.

Choices, so the figures can be read:

- Mail is stored as **mdbox** (several messages per file, Dovecot's own fast format,
  closest to letterlock's segment files), under ``root/mail/USER``.
- Passwords are in a passwd-file with the **{PLAIN}** scheme by default: the cheapest
  check Dovecot has, so its LOGIN figure is the cost of the protocol and processes.
  ``password_scheme`` picks another (e.g. ``SHA512-CRYPT``, ``ARGON2ID``).
- ``mail_fsync = optimized``, Dovecot's default, written out explicitly: it fsyncs
  new mail before LMTP's 250 and index changes where they matter.
- Variant ``mail-crypt``: the mail_crypt plugin with **per-user keys** (EC
  prime256v1), the user's private key encrypted with the user's password
  (``mail_crypt_require_encrypted_user_key``). The password reaches the plugin at
  LOGIN through a passdb override field (``userdb_mail_crypt_private_password=%w``);
  delivery needs only the public key. Keys are made by ``doveadm mailbox cryptokey
  generate -U`` before any mail arrives. If that fails, the instance falls back to one
  **global key** pair (``crypt_mode`` says which is in force).
- Limits that would refuse the benchmark's connections are raised
  (``mail_max_userip_connections``, process and client limits). Logins keep the
  default high-security mode: one imap-login process per connection until login
  (and for the whole connection over TLS, where it proxies), then one imap process
  per connection.

As root, Dovecot drops privileges as its installation intends: login processes run as
``dovenull``, internal ones as ``dovecot``, and the mail belongs to ``dovecot`` (the
mail directory is chowned to it). As another user, everything runs as that user.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Variant = Literal["plain", "mail-crypt"]
MAIL_FORMAT = "mdbox"
CURVE = "prime256v1"


class DovecotUnavailable(RuntimeError):
    """Dovecot is not installed and could not be installed here."""


@dataclass(frozen=True)
class User:
    name: str
    password: str


@dataclass
class Dovecot:
    """A running instance (valid inside ``running_dovecot``)."""

    variant: Variant
    root: Path
    conf: Path
    imap_port: int
    imaps_port: int | None
    lmtp_port: int
    process: asyncio.subprocess.Process
    users: dict[str, User]
    mail_owner: tuple[int, int]
    crypt_mode: str = "none"
    """``none``, ``per-user keys (password-protected)`` or ``global key``."""
    notes: list[str] = field(default_factory=list)

    @property
    def log(self) -> Path:
        return self.root / "dovecot.log"

    def mail_dir(self, user: str) -> Path:
        return self.root / "mail" / user

    def pids(self) -> list[int]:
        """The master and every process below it (imap, imap-login, auth, ...)."""
        return process_tree(self.process.pid)

    async def doveadm(self, *args: str, check: bool = True) -> str:
        """Run ``doveadm -c CONF ARGS`` (in a thread) and return its standard output."""
        def run() -> subprocess.CompletedProcess[str]:
            return subprocess.run(["doveadm", "-c", str(self.conf), *args],
                                  capture_output=True, text=True, timeout=600)
        done = await asyncio.to_thread(run)
        if check and done.returncode != 0:
            raise RuntimeError(f"doveadm {' '.join(args[:3])}...: exit {done.returncode}: "
                               f"{done.stderr.strip()}")
        return done.stdout + (done.stderr if not check else "")

    async def setting(self, name: str) -> str:
        """The value in force of one setting, as doveconf reads CONF."""
        def run() -> str:
            out = subprocess.run(["doveconf", "-c", str(self.conf), "-h", name],
                                 capture_output=True, text=True, timeout=60)
            return out.stdout.strip()
        return await asyncio.to_thread(run)

    def storage_contains(self, user: str, needle: bytes) -> tuple[int, int]:
        """(files containing ``needle``, files examined) among the user's message
        files (mdbox ``storage/m.*``)."""
        files = sorted((self.mail_dir(user) / "mdbox" / "storage").glob("m.*"))
        hits = sum(1 for path in files if needle in path.read_bytes())
        return hits, len(files)

    def index_contains(self, user: str, needle: bytes) -> tuple[int, int]:
        """(files containing ``needle``, files examined) among the user's index and
        cache files (mail_crypt encrypts messages, not the index cache)."""
        files = [path for path in (self.mail_dir(user) / "mdbox").rglob("dovecot.*")
                 if path.is_file()]
        hits = sum(1 for path in files if needle in path.read_bytes())
        return hits, len(files)


# -- installation ------------------------------------------------------------------------

def ensure_installed() -> str:
    """Return the path of the ``dovecot`` binary, installing Debian's packages when
    running as root; otherwise raise DovecotUnavailable with what to do."""
    found = shutil.which("dovecot") or _sbin("dovecot")
    if found and (shutil.which("doveadm") or _sbin("doveadm")):
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise DovecotUnavailable(
            "Dovecot is not installed: run `apt-get install dovecot-imapd dovecot-lmtpd` "
            "as root (or run this benchmark as root to have it installed)")
    print("installing dovecot-imapd dovecot-lmtpd with apt-get...", file=sys.stderr, flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    command = ["apt-get", "install", "-y", "-q", "dovecot-imapd", "dovecot-lmtpd"]
    if subprocess.run(command, env=env).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, check=False)
        if subprocess.run(command, env=env).returncode != 0:
            raise DovecotUnavailable("apt-get could not install dovecot-imapd dovecot-lmtpd")
    # The package starts a system-wide instance where an init system runs; ours is
    # separate (own base_dir and ports), so that one is left alone.
    found = shutil.which("dovecot") or _sbin("dovecot")
    if not found:
        raise DovecotUnavailable("dovecot still not found after installing it")
    return found


def _sbin(name: str) -> str | None:
    path = Path("/usr/sbin") / name
    return str(path) if path.exists() else None


def version() -> str:
    out = subprocess.run(["dovecot", "--version"], capture_output=True, text=True)
    return out.stdout.strip()


# -- helpers ----------------------------------------------------------------------------

def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name (field 2) may hold spaces; the parent pid follows it.
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo.extend(children.get(current, ()))
    return out


async def wait_for_port(port: int, timeout: float, proc: asyncio.subprocess.Process | None,
                        log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            _r, w = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if proc is not None and proc.returncode is not None:
                tail = log.read_text()[-3000:] if log is not None and log.exists() else ""
                raise RuntimeError(f"server exited ({proc.returncode}) before listening on "
                                   f"{port}\n{tail}") from None
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing listening on port {port} after {timeout} s"
                                   ) from None
            await asyncio.sleep(0.05)
            continue
        w.close()
        with contextlib.suppress(OSError):
            await w.wait_closed()
        return


async def terminate(proc: asyncio.subprocess.Process, pids: Sequence[int],
                    timeout: float = 15.0) -> None:
    """Stop a server: SIGTERM to its main process, then SIGKILL to whatever of its
    process tree (``pids``, taken while it ran) is left after ``timeout``."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
    for pid in pids:
        if pid != proc.pid and Path(f"/proc/{pid}").exists():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def make_self_signed(directory: Path) -> tuple[Path, Path]:
    """A throwaway certificate and key for 127.0.0.1, made with ``openssl req``."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


# -- configuration ------------------------------------------------------------------------

@dataclass(frozen=True)
class _Identity:
    login_user: str
    internal_user: str
    mail_user: str
    uid: int
    gid: int


def _identity() -> _Identity:
    if os.geteuid() == 0:
        mail = pwd.getpwnam("dovecot")
        return _Identity("dovenull", "dovecot", "dovecot", mail.pw_uid, mail.pw_gid)
    me = pwd.getpwuid(os.geteuid())
    return _Identity(me.pw_name, me.pw_name, me.pw_name, me.pw_uid, me.pw_gid)


def render_config(*, root: Path, variant: Variant, identity: _Identity, imap_port: int,
                  imaps_port: int | None, lmtp_port: int, crypt: str,
                  global_keys: tuple[Path, Path] | None,
                  tls: tuple[Path, Path] | None, max_connections: int) -> str:
    """The dovecot.conf text. ``crypt`` is ``none``, ``user`` or ``global``."""
    name = f"llbench-{root.name}"
    lines = [
        f"# Written by bench/dovecot.py for one benchmark run (variant {variant}).",
        f"instance_name = {name}",
        f"base_dir = {root}/run",
        f"state_dir = {root}/state",
        f"log_path = {root}/dovecot.log",
        f"info_log_path = {root}/dovecot.log",
        "protocols = imap lmtp",
        "listen = 127.0.0.1",
        "",
        f"default_login_user = {identity.login_user}",
        f"default_internal_user = {identity.internal_user}",
        f"first_valid_uid = {min(identity.uid, 500)}",
        "",
        "# Plaintext LOGIN on the IMAP port; TLS only on the IMAPS port.",
        "disable_plaintext_auth = no",
        "auth_mechanisms = plain login",
        f"ssl = {'yes' if tls else 'no'}",
    ]
    if tls:
        lines += [f"ssl_cert = <{tls[0]}", f"ssl_key = <{tls[1]}"]
    lines += [
        "",
        f"mail_location = {MAIL_FORMAT}:~/{MAIL_FORMAT}",
        "mail_fsync = optimized",
        "",
        "# Room for the benchmark's connections (defaults: 100 processes per service,",
        "# 1000 clients, 10 connections per user and address).",
        f"default_process_limit = {max_connections}",
        f"default_client_limit = {max_connections * 4}",
        "protocol imap {",
        f"  mail_max_userip_connections = {max_connections}",
        "}",
        "",
        "passdb {",
        "  driver = passwd-file",
        f"  args = username_format=%u {root}/users",
    ]
    if crypt == "user":
        lines.append("  # The LOGIN password unlocks the user's private key (never stored).")
        lines.append("  override_fields = userdb_mail_crypt_private_password=%w")
    lines += [
        "}",
        "userdb {",
        "  driver = passwd-file",
        f"  args = username_format=%u {root}/users",
        "}",
        "",
        "service imap-login {",
        "  inet_listener imap {",
        "    address = 127.0.0.1",
        f"    port = {imap_port}",
        "  }",
        "  inet_listener imaps {",
        "    address = 127.0.0.1",
        f"    port = {imaps_port or 0}",
        "    ssl = yes",
        "  }",
        "}",
        "service lmtp {",
        "  inet_listener lmtp {",
        "    address = 127.0.0.1",
        f"    port = {lmtp_port}",
        "  }",
        "}",
    ]
    if crypt != "none":
        lines += [
            "",
            "mail_plugins = $mail_plugins mail_crypt",
            "# Per-user keys are kept as mailbox attributes.",
            "mail_attribute_dict = file:%h/dovecot-attributes",
            "plugin {",
            f"  mail_crypt_curve = {CURVE}",
            "  mail_crypt_save_version = 2",
        ]
        if crypt == "user":
            lines.append("  mail_crypt_require_encrypted_user_key = yes")
        else:
            assert global_keys is not None
            lines += [f"  mail_crypt_global_private_key = <{global_keys[0]}",
                      f"  mail_crypt_global_public_key = <{global_keys[1]}"]
        lines.append("}")
    return "\n".join(lines) + "\n"


def _password_field(password: str, scheme: str) -> str:
    if scheme.upper() == "PLAIN":
        return "{PLAIN}" + password
    out = subprocess.run(["doveadm", "pw", "-s", scheme, "-p", password],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def _write_users(path: Path, users: Sequence[User], root: Path, identity: _Identity,
                 scheme: str) -> None:
    # passwd-file: user:password:uid:gid:gecos:home:shell:extra fields
    rows = []
    for user in users:
        if ":" in user.name + user.password or "\n" in user.name + user.password:
            raise ValueError("passwd-file fields cannot hold ':' or newlines")
        home = root / "mail" / user.name
        rows.append(f"{user.name}:{_password_field(user.password, scheme)}:"
                    f"{identity.uid}:{identity.gid}::{home}::")
    path.write_text("\n".join(rows) + "\n")
    path.chmod(0o644)


def _make_global_keys(directory: Path) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    private, public = directory / "global-private.pem", directory / "global-public.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                    f"ec_paramgen_curve:{CURVE}", "-out", str(private)],
                   check=True, capture_output=True)
    subprocess.run(["openssl", "pkey", "-in", str(private), "-pubout", "-out", str(public)],
                   check=True, capture_output=True)
    return private, public


# -- the instance ---------------------------------------------------------------------------

async def _start(root: Path, conf_text: str) -> tuple[Path, asyncio.subprocess.Process]:
    conf = root / "dovecot.conf"
    conf.write_text(conf_text)
    with open(root / "dovecot.stderr", "ab") as errors:
        proc = await asyncio.create_subprocess_exec(
            "dovecot", "-F", "-c", str(conf), stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL, stderr=errors,
            start_new_session=True)  # Ctrl-C reaches us alone; we stop it in order
    return conf, proc


@contextlib.asynccontextmanager
async def running_dovecot(root: Path, users: Sequence[User], *, variant: Variant = "plain",
                          tls: bool = False, password_scheme: str = "PLAIN",
                          max_connections: int = 5000) -> AsyncIterator[Dovecot]:
    """Run Dovecot under the (empty or missing) directory ``root`` with ``users``; stop
    it and every process it started on exit. ``root`` itself is left for the caller
    to remove."""
    ensure_installed()
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)  # the mail and auth processes must reach root/mail and root/users
    for parent in root.resolve().parents:
        if not parent.stat().st_mode & 0o001:
            raise ValueError(f"{parent} is not searchable by other users (chmod o+x), so "
                             f"Dovecot's unprivileged processes cannot reach {root}")
    identity = _identity()
    (root / "mail").mkdir(exist_ok=True)
    for user in users:
        (root / "mail" / user.name).mkdir(exist_ok=True)
    if os.geteuid() == 0:
        for path in [root / "mail", *(root / "mail").iterdir()]:
            os.chown(path, identity.uid, identity.gid)
    _write_users(root / "users", users, root, identity, password_scheme)
    certs = make_self_signed(root / "tls") if tls else None
    imap_port, lmtp_port = free_port(), free_port()
    imaps_port = free_port() if tls else None

    attempts = ["user", "global"] if variant == "mail-crypt" else ["none"]
    proc: asyncio.subprocess.Process | None = None
    pids: list[int] = []
    notes: list[str] = []
    try:
        for crypt in attempts:
            global_keys = _make_global_keys(root / "keys") if crypt == "global" else None
            conf, proc = await _start(root, render_config(
                root=root, variant=variant, identity=identity, imap_port=imap_port,
                imaps_port=imaps_port, lmtp_port=lmtp_port, crypt=crypt,
                global_keys=global_keys, tls=certs, max_connections=max_connections))
            await wait_for_port(imap_port, 30, proc, root / "dovecot.log")
            await wait_for_port(lmtp_port, 30, proc, root / "dovecot.log")
            instance = Dovecot(variant, root, conf, imap_port, imaps_port, lmtp_port, proc,
                               {u.name: u for u in users}, (identity.uid, identity.gid),
                               notes=notes)
            if crypt == "user":
                try:
                    for user in users:
                        await instance.doveadm(
                            "-o", f"plugin/mail_crypt_private_password={user.password}",
                            "mailbox", "cryptokey", "generate", "-u", user.name, "-U")
                        listed = await instance.doveadm("mailbox", "cryptokey", "list",
                                                        "-u", user.name, "-U")
                        if CURVE not in listed and "yes" not in listed.lower():
                            raise RuntimeError(f"no active user key listed: {listed!r}")
                except RuntimeError as exc:
                    notes.append(f"per-user password-protected keys failed ({exc}); "
                                 "falling back to a global key")
                    pids = instance.pids()
                    await terminate(proc, pids)
                    for user in users:
                        shutil.rmtree(root / "mail" / user.name / MAIL_FORMAT,
                                      ignore_errors=True)
                        with contextlib.suppress(FileNotFoundError):
                            (root / "mail" / user.name / "dovecot-attributes").unlink()
                    continue
                instance.crypt_mode = "per-user keys (password-protected)"
            elif crypt == "global":
                instance.crypt_mode = "global key"
            yield instance
            break
    finally:
        if proc is not None:
            with contextlib.suppress(Exception):
                pids = process_tree(proc.pid)
            await terminate(proc, pids)
