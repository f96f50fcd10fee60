"""Run the parser fuzz targets (tests/fuzz/harness.py) for a number of inputs each
and print what they found:

    .venv/bin/python tests/fuzz/run.py --inputs 1000000            # every target
    .venv/bin/python tests/fuzz/run.py imap mime --inputs 50000 --seed 7

An input that crashes a target or runs past a second is written to
tests/fuzz/findings/<target>/ (replay it by adding it to corpus/<target>/ and running
test_fuzz.py). Exit status 1 if anything was found.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

from harness import TARGETS, run

FINDINGS = Path(__file__).parent / "findings"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("targets", nargs="*", choices=[[], *TARGETS], default=[],
                        metavar="TARGET", help=f"some of {', '.join(TARGETS)} (default all)")
    parser.add_argument("--inputs", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    found = False
    print(f"{'target':<14}{'inputs':>10}{'seconds':>9}{'inputs/s':>10}{'slowest ms':>12}"
          f"{'crashes':>9}{'hangs':>7}{'accepted':>10}")
    for name in args.targets or list(TARGETS):
        def keep(kind: str, data: bytes, name: str = name) -> None:
            directory = FINDINGS / name
            directory.mkdir(parents=True, exist_ok=True)
            (directory / f"{kind}-{hashlib.sha256(data).hexdigest()[:16]}").write_bytes(data)

        report = run(TARGETS[name], args.inputs, args.seed, keep)
        rate = report.inputs / report.seconds if report.seconds else 0.0
        print(f"{name:<14}{report.inputs:>10,}{report.seconds:>9.1f}{rate:>10,.0f}"
              f"{report.slowest * 1000:>12.1f}{len(report.crashes):>9}{len(report.hangs):>7}"
              f"{report.accepted / max(1, report.inputs):>10.0%}",
              flush=True)
        for what, _data in report.crashes[:5]:
            print(f"  crash: {what}")
        found |= not report.ok
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
