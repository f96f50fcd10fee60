"""A minimal tlog witness (c2sp.org/tlog-witness, c2sp.org/tlog-cosignature), written
from the specifications for the tests, on purpose without any letterlock code: it
parses notes, checks the log's Ed25519 signature and the RFC 6962 consistency proof
with its own code, so a letterlock bug in those cannot hide behind the same bug here.

No independent witness is installable here (litewitness and sigsum's witness need a
newer Go and modules this machine cannot fetch; PyPI and Debian have none), hence this
one, and :class:`GoWitness`, whose checks are the Go reference implementation's
(golang.org/x/mod/sumdb, Debian's package). This one serves real HTTP on 127.0.0.1
from a thread::

    with Witness("witness.test/w1", {origin: log_vkey}) as w:
        w.url  # POST w.url + "/add-checkpoint"
"""

from __future__ import annotations

import base64
import hashlib
import struct
import subprocess
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)


class Refused(Exception):
    def __init__(self, status: int, message: str, body: bytes = b"",
                 content_type: str = "text/plain; charset=utf-8") -> None:
        super().__init__(message)
        self.status = status
        self.body = body or (message + "\n").encode()
        self.content_type = content_type


def _sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _kid(name: str, kind: int, pub: bytes) -> bytes:
    return _sha(name.encode() + b"\n" + bytes([kind]) + pub)[:4]


def _consistent(m: int, n: int, old: bytes, new: bytes, proof: list[bytes]) -> bool:
    """RFC 9162 2.1.4.2, written out again."""
    if m == n:
        return not proof and old == new
    if m == 0 or m > n or not proof:
        return m == 0 and not proof
    path = list(proof)
    if m & (m - 1) == 0:
        path = [old, *path]
    fn, sn = m - 1, n - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = _sha(b"\x01" + c + fr)
            sr = _sha(b"\x01" + c + sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = _sha(b"\x01" + sr + c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old and sr == new


class Witness:
    def __init__(self, name: str, logs: dict[str, str]) -> None:
        """``logs``: origin -> the log's verifier key (``name+id+base64``)."""
        self.name = name
        self._key = Ed25519PrivateKey.generate()
        self.public = self._key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self._logs: dict[str, tuple[bytes, bytes]] = {}
        for origin, vkey in logs.items():
            kname, hexid, material = vkey.split("+", 2)
            raw = base64.b64decode(material)
            assert kname == origin and raw[0] == 1 and len(raw) == 33
            self._logs[origin] = (bytes.fromhex(hexid), raw[1:])
        self.latest: dict[str, tuple[int, bytes]] = {}  # origin -> (size, root)
        self.requests: list[tuple[int, int]] = []  # (status, old size asked)
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None

    @property
    def vkey(self) -> str:
        kid = _kid(self.name, 4, self.public)
        material = base64.b64encode(bytes([4]) + self.public).decode()
        return f"{self.name}+{kid.hex()}+{material}"

    def __enter__(self) -> Witness:
        witness = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.path != "/add-checkpoint":
                    status, ctype, out = 404, "text/plain", b"not found\n"
                else:
                    try:
                        status, ctype = 200, "text/plain; charset=utf-8"
                        out = witness.add_checkpoint(body)
                    except Refused as exc:
                        status, ctype, out = exc.status, exc.content_type, exc.body
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()

    @property
    def url(self) -> str:
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def add_checkpoint(self, body: bytes) -> bytes:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise Refused(400, "not UTF-8") from None
        head, sep, note = text.partition("\n\n")
        if not sep:
            raise Refused(400, "no blank line")
        lines = head.split("\n")
        if not lines[0].startswith("old ") or not lines[0][4:].isdigit():
            raise Refused(400, "no old size")
        old = int(lines[0][4:])
        try:
            proof = [base64.b64decode(x, validate=True) for x in lines[1:]]
        except ValueError:
            raise Refused(400, "bad proof line") from None
        if any(len(p) != 32 for p in proof) or len(proof) > 63:
            raise Refused(400, "bad proof")
        cut = note.rfind("\n\n")
        if cut < 0 or not note.endswith("\n"):
            raise Refused(400, "not a signed note")
        cp_text, sigs = note[:cut + 1], note[cut + 2:-1].split("\n")
        cp_lines = cp_text.split("\n")
        if len(cp_lines) < 4 or not cp_lines[1].isdigit():
            raise Refused(400, "not a checkpoint")
        origin, size, root = cp_lines[0], int(cp_lines[1]), base64.b64decode(cp_lines[2])
        if origin not in self._logs:
            raise Refused(404, "unknown log")
        kid, pub = self._logs[origin]
        verified = False
        for line in sigs:
            if not line.startswith("\u2014 "):
                raise Refused(400, "bad signature line")
            name, _, blob = line[2:].partition(" ")
            raw = base64.b64decode(blob)
            if name == origin and raw[:4] == kid:
                try:
                    Ed25519PublicKey.from_public_bytes(pub).verify(raw[4:], cp_text.encode())
                    verified = True
                except InvalidSignature:
                    raise Refused(403, "log signature does not verify") from None
        if not verified:
            raise Refused(403, "no signature by the log")
        if old > size:
            raise Refused(400, "old size beyond the checkpoint")
        with self._lock:
            known_size, known_root = self.latest.get(origin, (0, _sha(b"")))
            if old != known_size:
                self.requests.append((409, old))
                raise Refused(409, "stale", f"{known_size}\n".encode(), "text/x.tlog.size")
            if old == size and root != known_root:
                self.requests.append((409, old))
                raise Refused(409, "same size, different root")
            if old and not _consistent(old, size, known_root, root, proof):
                self.requests.append((422, old))
                raise Refused(422, "consistency proof does not verify")
            if not old and proof:
                self.requests.append((422, old))
                raise Refused(422, "a proof from size 0 is empty")
            self.latest[origin] = (size, root)
            self.requests.append((200, old))
        stamp = int(time.time())
        message = f"cosignature/v1\ntime {stamp}\n{cp_text}".encode()
        sig = _kid(self.name, 4, self.public) + struct.pack(">Q", stamp) + self._key.sign(message)
        return f"\u2014 {self.name} {base64.b64encode(sig).decode()}\n".encode()


class GoWitness:
    """The witness of tests/support/go_witness (the Go reference implementation's note
    and consistency checks) in a subprocess, with the same face as :class:`Witness`."""

    def __init__(self, binary: str, name: str, logs: dict[str, str]) -> None:
        [(origin, vkey)] = logs.items()
        self.name = name
        self._argv = [binary, name, origin, vkey]
        self._proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.vkey = ""

    def __enter__(self) -> GoWitness:
        self._proc = subprocess.Popen(self._argv, stdout=subprocess.PIPE, text=True)
        assert self._proc.stdout is not None
        for _ in range(2):
            kind, _, value = self._proc.stdout.readline().strip().partition(" ")
            setattr(self, {"url": "url", "key": "vkey"}[kind], value)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(timeout=10)

    def _get(self, path: str) -> list[str]:
        with urllib.request.urlopen(self.url + path, timeout=10) as resp:
            return [line for line in resp.read().decode().split("\n") if line]

    @property
    def requests(self) -> list[tuple[int, int]]:
        return [(int(s), int(o)) for s, o in (line.split() for line in self._get("/requests"))]

    @property
    def latest(self) -> dict[str, tuple[int, bytes]]:
        out = {}
        for line in self._get("/latest"):
            origin, size, root = line.split()
            out[origin] = (int(size), base64.b64decode(root))
        return out
