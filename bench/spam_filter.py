"""What the inbound screen adds per message: one rspamd /checkv2 round trip for a
2 KiB message against a private rspamd (tests/support/rspamd.py; needs the Debian
package), and one DMARC evaluation with DNS answered from memory (as the resolver
cache does for a busy sender).

    .venv/bin/python bench/spam_filter.py
"""

from __future__ import annotations

import asyncio
import pathlib
import statistics
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "tests"))
from letterlock.services.mail import dmarc
from letterlock.services.mail.rspamd import RspamdClient
from support.rspamd import running_rspamd

MSG = (b"From: Carol <carol@remote.test>\r\nTo: alice@example.test\r\nSubject: Lunch\r\n"
       b"Date: Sat, 05 Dec 2026 09:00:00 +0000\r\nMessage-ID: <m@remote.test>\r\n\r\n"
       + b"Shall we have lunch on Thursday? " * 60 + b"\r\n")

async def main(url: str) -> None:
    c = RspamdClient(url, timeout_s=10)
    times = []
    for _ in range(200):
        t = time.perf_counter()
        await c.check(MSG, ip="127.0.0.1", helo="mx.remote.test", sender="carol@remote.test",
                      recipients=["alice@example.test"])
        times.append(time.perf_counter() - t)
    print(f"rspamd /checkv2, {len(MSG)} B message, 200 sequential: median "
          f"{statistics.median(times)*1000:.2f} ms, max {max(times)*1000:.2f} ms")
    zone = {"_dmarc.bank.test": ["v=DMARC1; p=reject"]}
    async def lookup(name: str, rdtype: str) -> list[str]:
        return zone.get(name, [])
    t = time.perf_counter()
    for _ in range(10000):
        await dmarc.evaluate(["Bank <a@mail.bank.test>"], "pass", "bank.test", [], lookup)
    each = (time.perf_counter() - t) / 10000
    print(f"DMARC evaluate (lookups answered from memory): {each * 1e6:.1f} us")

if __name__ == "__main__":
    with running_rspamd(pathlib.Path(tempfile.mkdtemp())) as r:
        asyncio.run(main(r.url))
