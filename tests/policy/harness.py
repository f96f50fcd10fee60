"""Helpers for decision tests: build a request and facts, and get LEGAL.md's decision
JSON either through the Python API or through ``letterlock legal evaluate --json``.

Both paths read the shipped policy files, so editing a policy shows up here."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from letterlock.cli.main import cli
from letterlock.policy import (
    PolicyEngine,
    default_at,
    load_jurisdictions,
    load_profile,
    operator_for,
    parse_facts,
    parse_request,
    parse_time,
)

L16 = "location-2016"
C18 = "cloud-act-2018"

BASE_REQUEST: dict[str, Any] = {
    "received_at": "2025-01-15T09:00:00Z",
    "served_at": "2025-01-15T09:00:00Z",
    "issuer": {"country": "US", "authority": "court", "name": "S.D.N.Y.",
               "judge_validated": True, "verified": True},
    "instrument": "us-warrant",
    "action": "produce",
    "categories": ["content"],
    "targets": ["bob@example.test"],
    "offence": {"max_penalty_years": 10, "listed": False, "country": "US"},
    "emergency": False,
    "gag": None,
    "renewal_of_served_at": None,
}


def make_request(**changes: Any) -> dict[str, Any]:
    """BASE_REQUEST with top-level changes; ``issuer`` and ``offence`` dicts merge."""
    out = copy.deepcopy(BASE_REQUEST)
    for key, value in changes.items():
        if key in ("issuer", "offence") and isinstance(value, dict) and out.get(key):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


def make_facts(**per_target: dict[str, Any]) -> dict[str, Any]:
    """``make_facts(bob={"location": "IE"})`` -> facts for bob@example.test."""
    out: dict[str, Any] = {}
    for local, overrides in per_target.items():
        entry = {"exists": True, "location": "US", "us_person": False, "residence": None,
                 "hosted_tenant": False, "conflict_with": [], "key_custody": "sealed"}
        entry.update(overrides)
        out[f"{local}@example.test"] = entry
    return out


Decide = Callable[..., dict[str, Any]]


def decide_api(profile: str, request: dict[str, Any], facts: dict[str, Any] | None = None,
               operator: str = "US", at: str | None = None) -> dict[str, Any]:
    parsed = parse_request(request)
    parsed_facts = parse_facts(facts or {})
    jurisdictions = load_jurisdictions()
    engine = PolicyEngine(load_profile(profile), jurisdictions)
    regions = frozenset(f.location for f in parsed_facts.values() if f.location)
    when = parse_time(at, "at") if at else default_at(parsed)
    decision = engine.evaluate(parsed, parsed_facts, operator_for(jurisdictions, operator,
                                                                  regions), when)
    return decision.to_json()


def make_decide_cli(tmp_path: Path) -> Decide:
    def decide_cli(profile: str, request: dict[str, Any], facts: dict[str, Any] | None = None,
                   operator: str = "US", at: str | None = None) -> dict[str, Any]:
        req_file = tmp_path / "request.json"
        req_file.write_text(json.dumps(request))
        args = ["--home", str(tmp_path / "home"), "legal", "evaluate",
                "--request", str(req_file), "--profile", profile,
                "--operator-country", operator, "--json"]
        if facts is not None:
            facts_file = tmp_path / "facts.json"
            facts_file.write_text(json.dumps(facts))
            args += ["--facts", str(facts_file)]
        if at is not None:
            args += ["--at", at]
        result = CliRunner().invoke(cli, args, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        data: dict[str, Any] = json.loads(result.stdout)
        return data
    return decide_cli



def outcome(decision: dict[str, Any], category: str,
            target: str = "bob@example.test") -> dict[str, Any]:
    finding: dict[str, Any] = decision["targets"][target][category]
    return finding
