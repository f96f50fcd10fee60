"""Building the Go programs of tests/support (go_tlog_check, go_witness) against the Go
reference implementation of notes and tiled logs, golang.org/x/mod/sumdb, as Debian
ships it (golang-go, golang-golang-x-mod-dev: no network needed)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

GO_PATH = Path("/usr/share/gocode")
SUPPORT = Path(__file__).parent
AVAILABLE = shutil.which("go") is not None and (GO_PATH / "src/golang.org/x/mod").is_dir()
MISSING = "needs Debian's golang-go and golang-golang-x-mod-dev"


def build(program: str, out_dir: Path) -> Path:
    """Compile ``tests/support/<program>/main.go`` into ``out_dir``; returns the binary."""
    env = {**os.environ, "GO111MODULE": "off", "GOPATH": str(GO_PATH),
           "GOCACHE": str(out_dir / "gocache"), "GOFLAGS": ""}
    binary = out_dir / program
    subprocess.run(["go", "build", "-o", str(binary), str(SUPPORT / program / "main.go")],
                   env=env, check=True, cwd=out_dir, timeout=300, capture_output=True)
    return binary
