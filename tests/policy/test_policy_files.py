"""The policy files are the rules: validation reports problems with file and line,
an operator's own directory is used when given, and an edit changes decisions."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from letterlock.cli.main import cli
from letterlock.errors import ConfigError
from letterlock.policy import SHIPPED_PROFILES, load_profile, validate
from letterlock.policy.rules import PROFILES_DIR

from .harness import L16, decide_api, make_decide_cli, make_facts, make_request, outcome


def _copy_profile(tmp_path: Path, name: str = L16) -> Path:
    target = tmp_path / "my-policy"
    shutil.copytree(PROFILES_DIR / name, target)
    return target


def _remove_policy(directory: Path, policy_id: str) -> None:
    """Delete one policy (from its first annotation to its closing semicolon)."""
    rows = directory / "rows.cedar"
    text = rows.read_text()
    start = text.index(f'@id("{policy_id}")')
    end = text.index(";", text.index("permit", start)) + 1
    rows.write_text(text[:start] + text[end:])


def _line_of(path: Path, needle: str) -> int:
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if needle in line:
            return number
    raise AssertionError(needle)


@pytest.mark.parametrize("name", SHIPPED_PROFILES)
def test_shipped_profiles_validate(name: str) -> None:
    assert validate(PROFILES_DIR / name) == []
    profile = load_profile(name)
    rows = {r.row for r in profile.rows()}
    assert rows == set(range(1, 21)), "every LEGAL.md row has a policy"
    prefix = "L16" if name == L16 else "C18"
    assert all(re.fullmatch(rf"{prefix}-(\d\d|F|N)-[a-z0-9-]+", pid) for pid in profile.rules)


def test_profiles_share_one_schema() -> None:
    a, b = (PROFILES_DIR / n / "schema.cedarschema" for n in SHIPPED_PROFILES)
    assert a.read_text() == b.read_text()


def test_validate_cli_ok() -> None:
    result = CliRunner().invoke(cli, ["legal", "validate"])
    assert result.exit_code == 0, result.output
    assert result.stdout.count("ok: ") == 2


def test_type_error_is_reported_with_file_and_line(tmp_path: Path) -> None:
    directory = _copy_profile(tmp_path)
    rows = directory / "rows.cedar"
    rows.write_text(rows.read_text().replace("!principal.verified", "!principal.trusted"))
    line = _line_of(rows, '@id("L16-01-unverified")')
    problems = validate(directory)
    assert len(problems) == 1
    assert problems[0].file == str(rows)
    assert problems[0].line == line
    assert "trusted" in problems[0].message and "L16-01-unverified" in problems[0].message

    result = CliRunner().invoke(cli, ["legal", "validate", str(directory)])
    assert result.exit_code == 1
    assert f"{rows}:{line}:" in result.stderr


def test_parse_error_is_reported_with_line(tmp_path: Path) -> None:
    directory = _copy_profile(tmp_path)
    rows = directory / "rows.cedar"
    rows.write_text(rows.read_text().replace("when { !resource.known };",
                                             "when { !resource.known && };"))
    problems = validate(directory)
    assert [p.line for p in problems] == [_line_of(rows, '@id("L16-04-facts-unknown")')]
    assert "parse error" in problems[0].message


def test_vocabulary_and_duplicates_are_checked(tmp_path: Path) -> None:
    directory = _copy_profile(tmp_path)
    rows = directory / "rows.cedar"
    text = rows.read_text().replace('@outcome("no-data")', '@outcome("shrug")')
    text = text.replace('@reasons("R16")', '@reasons("R99")')
    text = text.replace('@id("L16-19-foreign-issuer")', '@id("L16-18-no-establishment")')
    rows.write_text(text)
    messages = [p.message for p in validate(directory)]
    assert any("shrug" in m for m in messages)
    assert any("R99" in m for m in messages)
    assert any("duplicate @id 'L16-18-no-establishment'" in m for m in messages)
    with pytest.raises(ConfigError):
        load_profile(directory)


def test_missing_schema_is_reported(tmp_path: Path) -> None:
    directory = _copy_profile(tmp_path)
    (directory / "schema.cedarschema").unlink()
    assert any("cedarschema" in p.message for p in validate(directory))


def test_row_20_escalates_when_nothing_matches(tmp_path: Path) -> None:
    # In the shipped profiles some row always matches a known account; take row 13
    # away and the US warrant for Irish data falls through to the last row.
    directory = _copy_profile(tmp_path)
    _remove_policy(directory, "L16-13-data-abroad")
    facts = make_facts(bob={"location": "IE"})
    for decide in (decide_api, make_decide_cli(tmp_path)):
        f = outcome(decide(str(directory), make_request(), facts), "content")
        assert f["outcome"] == "escalate"
        assert f["policies"] == ["L16-20-escalate"]


def test_editing_a_policy_changes_the_decision(tmp_path: Path) -> None:
    directory = _copy_profile(tmp_path)
    rows = directory / "rows.cedar"
    text = rows.read_text()
    start = text.index('@id("L16-13-data-abroad")')
    edited = text[:start] + text[start:].replace('@outcome("redirect-mlat")',
                                                 '@outcome("escalate")', 1)
    rows.write_text(edited)
    facts = make_facts(bob={"location": "IE"})
    assert outcome(decide_api(L16, make_request(), facts), "content")["outcome"] \
        == "redirect-mlat"
    assert outcome(decide_api(str(directory), make_request(), facts), "content")["outcome"] \
        == "escalate"


def test_configured_policy_dir_is_used_by_the_cli(tmp_path: Path) -> None:
    directory = _copy_profile(tmp_path)
    _remove_policy(directory, "L16-13-data-abroad")
    req = tmp_path / "req.json"
    req.write_text(json.dumps(make_request()))
    facts = tmp_path / "facts.json"
    facts.write_text(json.dumps(make_facts(bob={"location": "IE"})))
    result = CliRunner().invoke(
        cli, ["--home", str(tmp_path / "home"), "legal", "evaluate", "--request", str(req),
              "--facts", str(facts), "--json"],
        env={"LETTERLOCK_LEGAL_POLICY_DIR": str(directory)})
    assert result.exit_code == 0, result.output
    decision = json.loads(result.stdout)
    assert outcome(decision, "content")["policies"] == ["L16-20-escalate"]
    assert decision["profile"] == "my-policy"
