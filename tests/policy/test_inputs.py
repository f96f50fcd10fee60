"""Malformed requests and facts are refused with a message naming the field, by the
API (InvalidInput) and by the command line (one line on stderr, non-zero exit)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from letterlock.cli.main import cli
from letterlock.errors import InvalidInput
from letterlock.policy import parse_facts, parse_request

from .harness import BASE_REQUEST, make_facts, make_request

BAD_REQUESTS: list[tuple[dict[str, Any], str]] = [
    ({k: v for k, v in BASE_REQUEST.items() if k != "received_at"}, "received_at"),
    (make_request(received_at="15/01/2025"), "received_at"),
    (make_request(served_at=12), "served_at"),
    (make_request(issuer={"country": "USA"}), "issuer.country"),
    (make_request(issuer={"authority": "sheriff"}), "issuer.authority"),
    (make_request(issuer={"verified": "yes"}), "issuer.verified"),
    (make_request(issuer="FBI"), "issuer"),
    (make_request(instrument="letter"), "instrument"),
    (make_request(action="delete"), "action"),
    (make_request(categories=[]), "categories"),
    (make_request(categories=["content", "mood"]), "categories[1]"),
    (make_request(categories="content"), "categories"),
    (make_request(targets=["bob"]), "targets[0]"),
    (make_request(offence={"max_penalty_years": -1}), "offence.max_penalty_years"),
    (make_request(offence={"country": "Italy"}), "offence.country"),
    (make_request(gag={"until": "someday"}), "gag.until"),
    (make_request(gag={"indefinite": False}), "gag"),
    (make_request(gag="forever"), "gag"),
    (make_request(emergency="no"), "emergency"),
    (make_request(renewal_of_served_at="2030-01-01"), "renewal_of_served_at"),
    (make_request(surprise=1), "surprise"),
]


@pytest.mark.parametrize(("data", "field"), BAD_REQUESTS,
                         ids=[f for _, f in BAD_REQUESTS])
def test_bad_request_names_the_field(data: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_request(data)
    assert str(info.value).startswith(f"{field}:"), str(info.value)


BAD_FACTS: list[tuple[Any, str]] = [
    ([], "facts"),
    ({"bob": {}}, "facts.bob"),
    (make_facts(bob={"location": "Ireland"}), "facts.bob@example.test.location"),
    (make_facts(bob={"location": None}), "facts.bob@example.test.location"),
    (make_facts(bob={"us_person": "no"}), "facts.bob@example.test.us_person"),
    (make_facts(bob={"conflict_with": "IE"}), "facts.bob@example.test.conflict_with"),
    (make_facts(bob={"key_custody": "escrow"}), "facts.bob@example.test.key_custody"),
    (make_facts(bob={"owner": "x"}), "facts.bob@example.test.owner"),
]


@pytest.mark.parametrize(("data", "field"), BAD_FACTS, ids=[f for _, f in BAD_FACTS])
def test_bad_facts_name_the_field(data: Any, field: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_facts(data)
    assert str(info.value).startswith(f"{field}:") or str(info.value).startswith(field), \
        str(info.value)


def test_request_round_trips_through_json() -> None:
    req = parse_request(make_request(gag={"until": "2026-01-15"}, selector="query"))
    assert parse_request(req.to_json()) == req


def test_unknown_us_person_counts_as_false() -> None:
    facts = parse_facts(make_facts(bob={"us_person": None}))
    assert facts["bob@example.test"].us_person is False


def _run(tmp_path: Path, request: Any, *extra: str, raw: str | None = None) -> Any:
    path = tmp_path / "req.json"
    path.write_text(raw if raw is not None else json.dumps(request))
    return CliRunner().invoke(cli, ["--home", str(tmp_path / "home"), "legal", "evaluate",
                                    "--request", str(path), *extra])


def _one_line_error(result: Any, needle: str) -> None:
    assert result.exit_code != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert needle in lines[0]
    assert result.stdout == ""


def test_cli_bad_field_is_one_line(tmp_path: Path) -> None:
    _one_line_error(_run(tmp_path, make_request(issuer={"country": "USA"})), "issuer.country")


def test_cli_invalid_json_names_the_line(tmp_path: Path) -> None:
    _one_line_error(_run(tmp_path, None, raw='{\n "received_at": ,\n}'), "line 2")


def test_cli_missing_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["legal", "evaluate", "--request",
                                      str(tmp_path / "nope.json")])
    _one_line_error(result, "nope.json")


def test_cli_bad_facts(tmp_path: Path) -> None:
    facts = tmp_path / "facts.json"
    facts.write_text(json.dumps(make_facts(bob={"location": "Mars"})))
    _one_line_error(_run(tmp_path, make_request(), "--facts", str(facts)),
                    "facts.bob@example.test.location")


def test_cli_bad_operator_country_and_date(tmp_path: Path) -> None:
    _one_line_error(_run(tmp_path, make_request(), "--operator-country", "USA"),
                    "--operator-country")
    _one_line_error(_run(tmp_path, make_request(), "--at", "tomorrow"), "--at")


def test_cli_unknown_profile(tmp_path: Path) -> None:
    _one_line_error(_run(tmp_path, make_request(), "--profile", "lenient"), "lenient")


def test_cli_table_output(tmp_path: Path) -> None:
    facts = tmp_path / "facts.json"
    facts.write_text(json.dumps(make_facts(bob={"location": "IE"})))
    result = _run(tmp_path, make_request(), "--facts", str(facts))
    assert result.exit_code == 0
    assert "redirect-mlat" in result.stdout
    assert "L16-13-data-abroad" in result.stdout.replace("\n", "").replace("│", "") \
        or "L16-13" in result.stdout
    assert "user notice: before-disclosure" in result.stdout
