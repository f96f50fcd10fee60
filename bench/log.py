"""Audit log benchmark: appends per second and proof sizes/times on a large log.

    .venv/bin/python bench/log.py [--events 1000000] [--dir DIR] [--no-verify]

Builds the log in a temporary directory (or DIR) with the real file store (fsync on),
then prints figures. Runs in a few minutes for 1,000,000 events on a small machine.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from letterlock.audit.check import verify_log
from letterlock.audit.events import AuditEvent, EventType
from letterlock.audit.sink import AuditLog
from letterlock.audit.store import MerkleLog, init_log
from letterlock.audit.verify import (
    canonical_json,
    check_consistency,
    check_inclusion,
    leaf_hash,
)

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def event(i: int) -> AuditEvent:
    return AuditEvent(
        EventType.LEGAL_PRODUCTION_EXECUTED if i % 7 == 0 else EventType.ADMIN_ACCOUNT_CREATED,
        actor="operator",
        at=T0 + timedelta(seconds=i),
        account=f"user{i % 50_000}@example.test",
        matter=f"M-{i % 1000:04d}" if i % 7 == 0 else None,
        details=(("region", "eu-dublin"), ("n", str(i))),
    )


def line(label: str, value: str) -> None:
    print(f"  {label:<44} {value}")


def bench_batched(directory: Path, total: int, batch: int) -> None:
    print(f"build: {total:,} events in batches of {batch} (one fsync group per batch)")
    t = time.perf_counter()
    with MerkleLog(directory) as log:
        for start in range(0, total, batch):
            log.append([event(i) for i in range(start, min(total, start + batch))])
            if start and start % 200_000 == 0:
                done = time.perf_counter() - t
                print(f"    {start:>9,} events, {start / done:,.0f}/s")
    elapsed = time.perf_counter() - t
    line("appends/s (batched, incl. event encoding)", f"{total / elapsed:,.0f}")
    line("build time", f"{elapsed:.1f} s")
    size = sum(p.stat().st_size for p in directory.iterdir() if p.is_file())
    line("bytes on disk per event (events+hashes)", f"{size / total:.0f}")


def bench_single(directory: Path, count: int) -> None:
    print(f"single appends: {count:,} events, one at a time (fsync + signed head each)")
    with MerkleLog(directory) as log:
        t = time.perf_counter()
        for i in range(count):
            log.append([event(i)])
        elapsed = time.perf_counter() - t
    line("appends/s (sequential, one per fsync)", f"{count / elapsed:,.0f}")
    line("latency per append", f"{elapsed / count * 1e3:.2f} ms")


def bench_concurrent(directory: Path, count: int, writers: int) -> None:
    print(f"async sink: {count:,} events from {writers} concurrent writers (group commit)")

    class Counting(MerkleLog):
        batches = 0

        def append(self, events):  # type: ignore[no-untyped-def]
            Counting.batches += 1
            return super().append(events)

    async def run() -> float:
        sink = AuditLog(Counting(directory))
        per = count // writers

        async def writer(w: int) -> None:
            for i in range(per):
                await sink.record(event(w * per + i))

        t = time.perf_counter()
        await asyncio.gather(*(writer(w) for w in range(writers)))
        elapsed = time.perf_counter() - t
        await sink.close()
        return elapsed

    elapsed = asyncio.run(run())
    line("appends/s (each record() durable on return)", f"{count / elapsed:,.0f}")
    line("events per fsync group (mean)", f"{count / max(1, Counting.batches):.1f}")


def bench_proofs(directory: Path, samples: int) -> None:
    with MerkleLog(directory, writable=False) as log:
        size = log.size
        root = log.root()
        print(f"proofs on a log of {size:,} events ({samples} random samples each)")
        rng = random.Random(7)
        gen, ver, lengths, bundle_bytes = [], [], [], []
        for _ in range(samples):
            i = rng.randrange(size)
            t = time.perf_counter()
            path = log.inclusion_proof(i)
            gen.append(time.perf_counter() - t)
            digest = leaf_hash(log.leaf(i))
            t = time.perf_counter()
            check_inclusion(i, size, digest, path, root)
            ver.append(time.perf_counter() - t)
            lengths.append(len(path))
        for i in rng.sample(range(size), 20):
            bundle_bytes.append(len(canonical_json(log.inclusion_bundle(i))))
        line(
            "inclusion proof length",
            f"{min(lengths)}-{max(lengths)} hashes ({max(lengths) * 32} bytes)",
        )
        line(
            "inclusion proof JSON bundle (with head)",
            f"~{statistics.mean(bundle_bytes):,.0f} bytes",
        )
        line("inclusion proof generation", f"{statistics.median(gen) * 1e6:,.0f} us median")
        line("inclusion proof verification", f"{statistics.median(ver) * 1e6:,.0f} us median")
        gen, ver, lengths = [], [], []
        for _ in range(samples):
            first = rng.randrange(1, size)
            t = time.perf_counter()
            path = log.consistency_proof(first)
            gen.append(time.perf_counter() - t)
            old_root = log.root(first)
            t = time.perf_counter()
            check_consistency(first, size, old_root, root, path)
            ver.append(time.perf_counter() - t)
            lengths.append(len(path))
        line(
            "consistency proof length",
            f"{min(lengths)}-{max(lengths)} hashes ({max(lengths) * 32} bytes)",
        )
        line("consistency proof generation", f"{statistics.median(gen) * 1e6:,.0f} us median")
        line("consistency proof verification", f"{statistics.median(ver) * 1e6:,.0f} us median")
    t = time.perf_counter()
    MerkleLog(directory).close()
    line("reopen for writing (recovery check)", f"{(time.perf_counter() - t) * 1e3:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--no-verify", action="store_true", help="skip the full recheck")
    args = parser.parse_args()
    base = args.dir or Path(tempfile.mkdtemp(prefix="letterlock-bench-log-"))
    try:
        big = base / "big"
        init_log(big)
        bench_batched(big, args.events, args.batch)
        small = base / "single"
        init_log(small)
        bench_single(small, 2000)
        conc = base / "concurrent"
        init_log(conc)
        bench_concurrent(conc, 20_000, 200)
        bench_proofs(big, 1000)
        if not args.no_verify:
            t = time.perf_counter()
            report = verify_log(big)
            elapsed = time.perf_counter() - t
            print("full verification (recompute everything)")
            line("result", "intact" if report.intact else f"NOT intact: {report.findings}")
            line("time", f"{elapsed:.1f} s ({report.events / elapsed:,.0f} events/s)")
    finally:
        if args.dir is None:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
