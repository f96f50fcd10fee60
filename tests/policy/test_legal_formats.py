"""The legal formats' reference stays true: the OpenAPI schema's Request, Facts,
Decision and Matter validate what the API really takes and returns, and
docs/legal-formats.md lists every field, instrument (with its reach), outcome,
reason, flag and shipped policy id the code knows."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from letterlock.app import App
from letterlock.policy import load_jurisdictions, load_profile, parse_request
from letterlock.policy.decision import TRANSPARENCY_BUCKETS
from letterlock.policy.model import _FACT_KEYS, _REQUEST_KEYS, CATEGORIES, INSTRUMENTS
from letterlock.policy.rules import FLAGS, NOTICES, OUTCOMES, REASONS, SHIPPED_PROFILES
from letterlock.services.legal.matters import STATES

from .harness import make_request
from .matter_support import PASSWORD
from .test_legal_api import _auth, client

__all__ = ["client"]

DOC = Path(__file__).resolve().parents[2] / "docs" / "legal-formats.md"
BOB = "bob@example.test"

# -- a small JSON Schema checker (the subset the OpenAPI document uses) -----------------

_TYPES: dict[str, Any] = {"object": dict, "array": list, "string": str, "boolean": bool,
                          "null": type(None)}


def problems(value: Any, schema: dict[str, Any], components: dict[str, Any],
             where: str = "$") -> list[str]:
    out: list[str] = []
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        out += problems(value, components[name], components, where)
    if "anyOf" in schema:
        tries = [problems(value, s, components, where) for s in schema["anyOf"]]
        if all(tries):
            out.append(f"{where}: matches none of anyOf ({tries})")
    kind = schema.get("type")
    if kind is not None:
        if kind == "integer":
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif kind == "number":
            ok = isinstance(value, int | float) and not isinstance(value, bool)
        else:
            ok = isinstance(value, _TYPES[kind]) and not (
                kind != "boolean" and isinstance(value, bool))
        if not ok:
            return [*out, f"{where}: expected {kind}, got {value!r}"]
    if "enum" in schema and value not in schema["enum"]:
        out.append(f"{where}: {value!r} not in {schema['enum']}")
    if "pattern" in schema and isinstance(value, str) and \
            not re.search(schema["pattern"], value):
        out.append(f"{where}: {value!r} does not match {schema['pattern']}")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for key in schema.get("required", []):
            if key not in value:
                out.append(f"{where}: {key} missing")
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            if key in props:
                out += problems(item, props[key], components, f"{where}.{key}")
            elif extra is False:
                out.append(f"{where}.{key}: not in the schema")
            elif isinstance(extra, dict):
                out += problems(item, extra, components, f"{where}.{key}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            out += problems(item, schema["items"], components, f"{where}[{i}]")
    return out


# -- (a) the schema validates real traffic --------------------------------------------


async def test_openapi_schemas_validate_real_requests_and_responses(
        app: App, client: httpx.AsyncClient) -> None:
    await app.accounts.create(BOB, "eu-dublin", PASSWORD)
    schema = (await client.get("/openapi.json")).json()
    components = schema["components"]["schemas"]
    assert {"Request", "Facts", "Decision", "Matter"} <= set(components)
    legal = schema["paths"]["/api/legal/matters"]
    body_schema = legal["post"]["requestBody"]["content"]["application/json"]["schema"]
    matter_ref = {"$ref": "#/components/schemas/Matter"}
    assert legal["post"]["responses"]["201"]["content"]["application/json"]["schema"] \
        == matter_ref
    shown = schema["paths"]["/api/legal/matters/{matter_id}"]["get"]["responses"]["200"]
    assert shown["content"]["application/json"]["schema"] == matter_ref

    bodies = [
        {"request": make_request(categories=["content", "traffic"]),
         "facts": {BOB: {"residence": "IE", "us_person": False, "conflict_with": ["IE"]}}},
        {"request": make_request(instrument="us-nsl", categories=["subscriber"],
                                 issuer={"authority": "intelligence"},
                                 date_range={"from": "2024-01-01", "to": None})},
        {"request": make_request(gag={"indefinite": True}, targets=[], selector="query")},
    ]
    matters = []
    for body in bodies:
        assert problems(body, body_schema, components) == []
        filed = await client.post("/api/legal/matters", json=body, headers=_auth("t-legal"))
        assert filed.status_code == 201, filed.text
        matters.append(filed.json())
    decided = await client.post(f"/api/legal/matters/{matters[1]['id']}/decision",
                                json={"accept": True}, headers=_auth("t-legal"))
    assert decided.status_code == 200, decided.text
    matters.append(decided.json())
    for matter in matters:
        assert problems(matter, matter_ref, components) == [], matter["id"]
    listed = (await client.get("/api/legal/matters", headers=_auth("t-audit"))).json()
    assert problems(listed, {"$ref": "#/components/schemas/MatterList"}, components) == []

    # The checker can fail: a wrong outcome, an unknown field, a bad request body.
    bad = {**matters[0], "recommendation": {
        **matters[0]["recommendation"],
        "targets": {BOB: {"content": {"outcome": "maybe", "reasons": [], "policies": [],
                                      "flags": []}}}}}
    assert any("maybe" in p for p in problems(bad, matter_ref, components))
    assert problems({**matters[0], "secret": 1}, matter_ref, components)
    assert problems({"request": {**make_request(), "instrument": "letter"}}, body_schema,
                    components)
    assert problems({"request": make_request(), "facts": {BOB: {"colour": "red"}}},
                    body_schema, components)


# -- (b) the document lists what the code knows -------------------------------------------


def _section(title: str) -> str:
    text = DOC.read_text("utf-8")
    found = re.search(rf"^#+ {re.escape(title)}\n(.*?)(?=^#+ |\Z)", text, re.M | re.S)
    assert found, f"docs/legal-formats.md has no section {title}"
    return found.group(1)


def _table(title: str) -> dict[str, list[str]]:
    """First-column names (in backticks) of the section's table -> the other cells."""
    rows = {}
    for line in _section(title).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| `") and cells:
            rows[cells[0].strip("`")] = cells[1:]
    return rows


def _flatten(data: dict[str, Any], prefix: str = "", deep: bool = True) -> set[str]:
    out = set()
    for key, value in data.items():
        out.add(prefix + key)
        if deep and isinstance(value, dict):
            out |= _flatten(value, f"{prefix}{key}.")
        if deep and isinstance(value, list) and value and isinstance(value[0], dict):
            out |= _flatten(value[0], f"{prefix}{key}[].")
    return out


def test_every_request_field_is_documented() -> None:
    full = parse_request(make_request(selector="query", gag={"until": "2026-01-01"},
                                      date_range={"from": "2025-01-01", "to": "2025-02-01"},
                                      id="M-1", renewal_of_served_at="2025-01-01"))
    fields = _flatten(full.to_json()) | {"gag.indefinite"} | set(_REQUEST_KEYS)
    assert set(_table("Request")) == fields


def test_every_facts_field_is_documented() -> None:
    assert set(_table("Facts")) == set(_FACT_KEYS)


async def test_every_decision_and_matter_field_is_documented(
        app: App, client: httpx.AsyncClient) -> None:
    await app.accounts.create(BOB, "us-east", PASSWORD)
    filed = await client.post("/api/legal/matters", headers=_auth("t-legal"),
                              json={"request": make_request(instrument="us-preservation",
                                                            action="preserve")})
    decided = (await client.post(f"/api/legal/matters/{filed.json()['id']}/decision",
                                 json={"accept": True}, headers=_auth("t-legal"))).json()
    assert decided["holds"] and decided["deadlines"], "a preservation has both"
    decision = decided["decision"]
    expected = _flatten({k: v for k, v in decision.items() if k != "targets"}) | {"targets"}
    assert set(_table("Decision")) == expected
    assert set(_table("Finding")) == set(decision["targets"][BOB]["content"])
    notice = {"address": BOB, "due_at": None, "sent_at": None}
    matter = {k: v for k, v in decided.items()
              if k not in ("request", "facts", "recommendation", "decision")}
    expected = _flatten({**matter, "notices": [notice]}) | {
        "request", "facts", "recommendation", "decision"}
    assert set(_table("Matter")) == expected


def test_vocabularies_are_documented() -> None:
    assert list(_table("Outcomes")) == list(OUTCOMES)
    assert list(_table("Reasons")) == list(REASONS)
    text = DOC.read_text("utf-8")
    for word in (*FLAGS, *NOTICES, *TRANSPARENCY_BUCKETS, *STATES):
        assert f"`{word}`" in text, word


def test_instruments_and_their_reach_match_the_data() -> None:
    table = _table("Instruments")
    assert list(table) == list(INSTRUMENTS)
    j = load_jurisdictions()
    for name, cells in table.items():
        for action, cell in zip(("produce", "preserve"), cells, strict=False):
            documented = set() if cell == "—" else {c.strip() for c in cell.split(",")}
            assert documented == set(j.reach(name, action)), (name, action)
            assert documented <= set(CATEGORIES)


@pytest.mark.parametrize("profile", SHIPPED_PROFILES)
def test_every_shipped_policy_id_is_documented(profile: str) -> None:
    table = _table("Policy ids")
    column = 1 if profile == "location-2016" else 2
    for rule in load_profile(profile).rules.values():
        suffix = rule.id.split("-", 1)[1]
        assert suffix in table, rule.id
        cell = table[suffix][column]
        said = rule.outcome if rule.kind == "row" else rule.flag or rule.notice
        assert said and said in cell, (rule.id, cell)
