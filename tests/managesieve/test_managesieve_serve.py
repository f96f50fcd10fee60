"""`letterlock serve` starts the ManageSieve listener on ``sieve.port`` (issue 16
point 3): its greeting offers STARTTLS and names the engine's extensions."""

from __future__ import annotations

import socket
from pathlib import Path

from smtp.serve_process import free_ports, start_serve


def test_serve_listens_for_managesieve(tmp_path: Path) -> None:
    (port,) = free_ports(1)
    served = start_serve(tmp_path / "home", env={"LETTERLOCK_SIEVE_PORT": str(port)})
    try:
        assert any("ManageSieve" in line and str(port) in line for line in served.output)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            greeting = b""
            while not greeting.endswith(b"\r\n") or b"\r\nOK" not in b"\r\n" + greeting:
                chunk = sock.recv(4096)
                assert chunk
                greeting += chunk
        assert b'"STARTTLS"' in greeting and b'"SIEVE" "' in greeting
        assert b"fileinto" in greeting
    finally:
        served.proc.terminate()
        served.proc.wait(30)
