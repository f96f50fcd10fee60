"""Which process serves a TCP connection, found from the client's side in /proc: the
connection's server-side socket (in /proc/net/tcp, by its two addresses) -> its
inode -> the process holding a descriptor on it. Linux only; the server's processes
must belong to the test's user (they do: the test starts them).

    imap = imaplib.IMAP4("127.0.0.1", port)
    serving_pid(imap.sock)         # the pid of the process that accepted it
"""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def _hex_address(host: str, port: int) -> str:
    """An address as /proc/net/tcp{,6} writes it: the IP's 32-bit words in host
    order, then the port, all in hex."""
    ip = ipaddress.ip_address(host)
    packed = ip.packed
    words = [packed[i : i + 4] for i in range(0, len(packed), 4)]
    text = "".join(f"{int.from_bytes(w, sys.byteorder):08X}" for w in words)
    return f"{text}:{port:04X}"


def _server_inode(local: tuple[str, int], remote: tuple[str, int]) -> int | None:
    """The inode of the socket whose own address is ``local`` and whose peer is
    ``remote`` (the server's end, seen from the client: its peer and its name)."""
    want = (_hex_address(*local), _hex_address(*remote))
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if (fields[1], fields[2]) == want and fields[9] != "0":
                return int(fields[9])
    return None


def _holder(inode: int) -> int | None:
    target = f"socket:[{inode}]"
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                if os.readlink(fd) == target:
                    return int(proc.name)
        except OSError:
            continue
    return None


def serving_pid(client: socket.socket, timeout: float = 5.0) -> int:
    """The pid of the process holding the server's end of ``client``'s connection
    (loopback or local connections only: the server must be on this machine)."""
    name = client.getsockname()[:2]
    peer = client.getpeername()[:2]
    deadline = time.monotonic() + timeout
    while True:
        # Not found yet means not accepted yet (a queued connection has no inode).
        inode = _server_inode(peer, name)
        if inode is not None:
            pid = _holder(inode)
            if pid is not None:
                return pid
        if time.monotonic() > deadline:
            raise AssertionError(f"no process holds the server end of {name} -> {peer}")
        time.sleep(0.02)


def connect_served_by(pid: int, connect: Callable[[], T], sock: Callable[[T], socket.socket],
                      close: Callable[[T], object], attempts: int = 64) -> T:
    """Open connections with ``connect`` until one is served by ``pid`` (the kernel
    picks the process of a shared port by a hash of the addresses); the others are
    closed."""
    for _ in range(attempts):
        conn = connect()
        if serving_pid(sock(conn)) == pid:
            return conn
        close(conn)
    raise AssertionError(f"no connection of {attempts} was served by process {pid}")
