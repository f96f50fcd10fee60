"""Legal-policy evaluation throughput: decisions per second and (target, category)
evaluations per second, for each shipped profile.

    .venv/bin/python bench/policy.py [--seconds 3]
"""

from __future__ import annotations

import argparse
import time

from letterlock.policy import (
    SHIPPED_PROFILES,
    PolicyEngine,
    default_at,
    load_jurisdictions,
    load_profile,
    operator_for,
    parse_facts,
    parse_request,
)

REQUESTS = {
    "1 target x 1 category": ({"received_at": "2025-01-15T09:00:00Z",
                               "issuer": {"country": "US", "authority": "court",
                                          "verified": True},
                               "instrument": "us-warrant", "categories": ["content"],
                               "targets": ["bob@example.test"]},
                              {"bob@example.test": {"location": "IE"}}),
    "10 targets x 4 categories": ({"received_at": "2025-01-15T09:00:00Z",
                                   "issuer": {"country": "GB", "authority": "court",
                                              "verified": True},
                                   "instrument": "uk-copo",
                                   "categories": ["subscriber", "identification", "traffic",
                                                  "content"],
                                   "targets": [f"u{i}@example.test" for i in range(10)]},
                                  {f"u{i}@example.test": {"location": "US" if i % 2 else "IE",
                                                          "us_person": i % 3 == 0}
                                   for i in range(10)}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0, help="time per measurement")
    args = parser.parse_args()
    jurisdictions = load_jurisdictions()
    start = time.perf_counter()
    engines = {name: PolicyEngine(load_profile(name), jurisdictions) for name in SHIPPED_PROFILES}
    print(f"load both profiles (parse + validate): {(time.perf_counter() - start) * 1000:.1f} ms")
    for name, engine in engines.items():
        for label, (req_data, facts_data) in REQUESTS.items():
            request = parse_request(req_data)
            facts = parse_facts(facts_data)
            operator = operator_for(jurisdictions, "US")
            at = default_at(request)
            pairs = len(request.targets) * len(request.categories)
            count = 0
            start = time.perf_counter()
            deadline = start + args.seconds
            while time.perf_counter() < deadline:
                engine.evaluate(request, facts, operator, at)
                count += 1
            elapsed = time.perf_counter() - start
            print(f"{name:15s} {label:26s} {count / elapsed:9.0f} decisions/s "
                  f"{count * pairs / elapsed:9.0f} evaluations/s "
                  f"({elapsed / count * 1e6:.0f} us/decision)")


if __name__ == "__main__":
    main()
