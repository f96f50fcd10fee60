"""Cost of resolving one RCPT address: an account (cached), an alias, a sub-address,
a group across two regions and a catch-all, through DeliveryService.classify on the
default SQLite stores.

    .venv/bin/python bench/addresses.py [--calls N]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from letterlock import config as config_mod
from letterlock.app import initialise, open_app
from letterlock.services.accounts.setup import InitOptions

PASSWORD = "correct horse battery"
CHEAP_KDF = {"LETTERLOCK_CRYPTO_ARGON2_MEMORY_KIB": "1024",
             "LETTERLOCK_CRYPTO_ARGON2_ITERATIONS": "1", "LETTERLOCK_LOG_LEVEL": "warning"}


async def main(calls: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config = config_mod.load(Path(tmp) / "home", env=CHEAP_KDF)
        await initialise(config, InitOptions())
        async with open_app(config) as app:
            await app.accounts.create("alice@example.test", "us-east", PASSWORD)
            await app.accounts.create("bob@example.test", "eu-dublin", PASSWORD)
            await app.addresses.add_alias("sales@example.test", "bob@example.test")
            await app.addresses.add_group("team@example.test",
                                          ["alice@example.test", "bob@example.test"])
            await app.addresses.set_catch_all("example.test", "bob@example.test")
            for rcpt in ("alice@example.test", "sales@example.test", "alice+x@example.test",
                         "team@example.test", "whoever@example.test"):
                start = time.perf_counter()
                for _ in range(calls):
                    found = await app.delivery.classify(rcpt)
                micros = (time.perf_counter() - start) / calls * 1e6
                print(f"{rcpt:24} {len(found.accounts)} account(s) {micros:8.1f} µs per RCPT")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    asyncio.run(main(parser.parse_args().calls))
