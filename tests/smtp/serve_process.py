"""`letterlock serve` in a child process on free loopback ports, as an operator runs it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from support.env import FAST_KDF_ENV


def free_ports(count: int) -> list[int]:
    socks = [socket.socket() for _ in range(count)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class Served:
    proc: subprocess.Popen[str]
    mx: int
    submission: int
    output: list[str]
    imaps: int = 0
    imap: int = 0
    http: int = 0


def start_serve(home: Path, env: dict[str, str] | None = None, timeout: float = 60,
                args: tuple[str, ...] = ()) -> Served:
    """``args``: more options of ``serve``."""
    mx, sub, imap, imaps, http, sieve = free_ports(6)
    # ManageSieve on a free port too: tests running side by side never share 4190.
    full_env = {**os.environ, **FAST_KDF_ENV, "LETTERLOCK_SIEVE_PORT": str(sieve),
                **(env or {})}
    full_env.pop("LETTERLOCK_HOME", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "letterlock", "--home", str(home), "serve",
         "--smtp-port", str(mx), "--submission-port", str(sub), "--imap-port", str(imap),
         "--imaps-port", str(imaps), "--http-port", str(http), *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=full_env)
    assert proc.stdout is not None
    output: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        output.append(line)
        if line.startswith("Stop with Ctrl-C"):
            if not any("SMTP (MX)" in o for o in output):
                proc.kill()
                raise AssertionError("serve started without SMTP:\n" + "".join(output))
            # Keep reading, as journald would: a server whose log pipe fills up stops.
            threading.Thread(target=_drain, args=(proc, output), daemon=True).start()
            return Served(proc, mx, sub, output, imaps, imap, http)
    proc.kill()
    raise AssertionError("serve did not start:\n" + "".join(output))


def _drain(proc: subprocess.Popen[str], output: list[str]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        output.append(line)


def children(pid: int, module: str = "letterlock.worker") -> list[int]:
    """Process ids whose parent is ``pid`` and that run ``module`` (by default the
    front-end workers of a serve process; ``letterlock.services.mail.sealing`` for its
    sealing helpers)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if int(stat[1]) == pid and module.encode() in argv:
                out.append(int(entry.name))
    return out


def alive(pid: int) -> bool:
    try:
        stat = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return stat[0] != "Z"
