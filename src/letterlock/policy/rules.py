"""Policy profiles: a directory of Cedar policy files plus a Cedar schema.

A profile directory holds ``*.cedar`` files (read in name order) and one
``*.cedarschema`` file. The shipped profiles live in ``letterlock/policy/profiles``;
an operator may point at a directory of their own. Each policy is one of:

- a **row** (``@row``): decides an outcome for a (target, category); a row marked
  ``@conclusive("true")`` ends the table when it matches: the rows below it presuppose
  what it denies (e.g. an account that holds data), so they are neither deciding nor
  cited;
- a **flag** rule (``@flag``): attaches a flag to a finding;
- a **notice** rule (``@notice`` without ``@row``): says when the user is told.

:func:`validate` checks a directory against its schema and the annotation vocabulary
and reports problems with file and line; :func:`load_profile` refuses a profile with
problems (ConfigError).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cedarpy

from letterlock.errors import ConfigError

PROFILES_DIR = Path(__file__).resolve().parent / "profiles"
SHIPPED_PROFILES = ("location-2016", "cloud-act-2018")

OUTCOMES = (
    "disclose", "preserve", "no-data", "reject", "redirect-mlat", "redirect-to-customer",
    "challenge", "hold-enforcing-state", "query-issuer", "escalate",
)
REASONS = (
    "R03", "R04", "R05", "R06", "R07", "R08", "R10", "R11", "R12", "R13", "R14", "R15",
    "R16", "R17",
)
FLAGS = ("gdpr-art48", "challenge-gag", "national-security-band")
NOTICES = ("before-disclosure", "at-gag-expiry", "after-emergency", "on-authority-request",
           "none")
_KNOWN_ANNOTATIONS = frozenset({
    "id", "row", "outcome", "reasons", "deadlines", "notice", "flag", "outcomes", "fallback",
    "conclusive",
})
_DEADLINE = re.compile(r"^([a-z][a-z0-9-]*)(?:=(\d+)([dh]))?$")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a policy directory, located as precisely as Cedar allows."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


@dataclass(frozen=True)
class DeadlineSpec:
    """``kind`` alone takes its length from the instrument data; ``kind=Nd`` is inline."""

    kind: str
    days: int | None = None
    hours: int | None = None


@dataclass(frozen=True)
class Rule:
    id: str
    kind: str  # "row" | "flag" | "notice"
    order: int  # position among all policies of the profile
    file: str
    line: int
    row: int | None = None
    outcome: str | None = None
    reasons: tuple[str, ...] = ()
    deadlines: tuple[DeadlineSpec, ...] = ()
    notice: str | None = None
    flag: str | None = None
    outcomes: tuple[str, ...] = ()
    fallback: bool = False
    conclusive: bool = False


@dataclass(frozen=True, eq=False)
class Profile:
    """A loaded, validated profile ready for evaluation."""

    name: str
    directory: Path
    rules: dict[str, Rule]  # by @id
    policy_set: cedarpy.PolicySet
    schema: cedarpy.Schema

    def rows(self) -> list[Rule]:
        return sorted((r for r in self.rules.values() if r.kind == "row"),
                      key=lambda r: (r.row or 0, r.order))


# --- splitting files into statements -----------------------------------------------


@dataclass(frozen=True)
class _Statement:
    text: str
    line: int  # 1-based line where the statement starts (its first annotation)


def _statements(source: str) -> Iterator[_Statement]:
    """Split Cedar source at top-level ``;``, skipping strings and comments, so that
    each policy can be traced back to the line it starts on."""
    i, n, line = 0, len(source), 1
    start: int | None = None
    start_line = 1
    depth = 0
    while i < n:
        ch = source[i]
        if ch == "\n":
            line += 1
            i += 1
            continue
        if ch == "/" and source.startswith("//", i):
            while i < n and source[i] != "\n":
                i += 1
            continue
        if ch.isspace():
            i += 1
            continue
        if start is None:
            start, start_line = i, line
        if ch == '"':
            i += 1
            while i < n and source[i] != '"':
                if source[i] == "\\":
                    i += 1
                elif source[i] == "\n":
                    line += 1
                i += 1
            i += 1
            continue
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == ";" and depth <= 0:
            yield _Statement(source[start:i + 1], start_line)
            start, depth = None, 0
        i += 1
    if start is not None:
        yield _Statement(source[start:], start_line)


# --- annotations ----------------------------------------------------------------------


def _split_list(value: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in value.split(",") if p.strip())


def _rule_from(annotations: dict[str, str], order: int, file: str, line: int,
               problems: list[Problem]) -> Rule | None:
    def bad(message: str) -> None:
        problems.append(Problem(file, line, message))

    for key in sorted(set(annotations) - _KNOWN_ANNOTATIONS):
        bad(f"unknown annotation @{key}")
    pid = annotations.get("id", "")
    if not pid:
        bad("policy has no @id")
        return None
    deadlines: list[DeadlineSpec] = []
    for item in _split_list(annotations.get("deadlines", "")):
        m = _DEADLINE.match(item)
        if not m:
            bad(f"{pid}: @deadlines entry {item!r} is not KIND or KIND=N(d|h)")
            continue
        kind, amount, unit = m.groups()
        deadlines.append(DeadlineSpec(
            kind,
            days=int(amount) if unit == "d" else None,
            hours=int(amount) if unit == "h" else None,
        ))
    notice = annotations.get("notice")
    if notice is not None and notice not in NOTICES:
        bad(f"{pid}: @notice {notice!r} is not one of {', '.join(NOTICES)}")
    if "row" in annotations:
        try:
            row = int(annotations["row"])
        except ValueError:
            bad(f"{pid}: @row {annotations['row']!r} is not a number")
            return None
        outcome = annotations.get("outcome")
        if outcome not in OUTCOMES:
            bad(f"{pid}: @outcome {outcome!r} is not one of {', '.join(OUTCOMES)}")
            return None
        reasons = _split_list(annotations.get("reasons", ""))
        for code in reasons:
            if code not in REASONS:
                bad(f"{pid}: @reasons {code!r} is not a reason code")
        return Rule(id=pid, kind="row", order=order, file=file, line=line, row=row,
                    outcome=outcome, reasons=reasons, deadlines=tuple(deadlines),
                    notice=notice, fallback=annotations.get("fallback") == "true",
                    conclusive=annotations.get("conclusive") == "true")
    if "conclusive" in annotations:
        bad(f"{pid}: @conclusive belongs on a @row policy")
    if "flag" in annotations:
        flag = annotations["flag"]
        if flag not in FLAGS:
            bad(f"{pid}: @flag {flag!r} is not one of {', '.join(FLAGS)}")
        outcomes = _split_list(annotations.get("outcomes", ""))
        for o in outcomes:
            if o not in OUTCOMES:
                bad(f"{pid}: @outcomes {o!r} is not an outcome")
        return Rule(id=pid, kind="flag", order=order, file=file, line=line, flag=flag,
                    outcomes=outcomes)
    if notice is not None:
        return Rule(id=pid, kind="notice", order=order, file=file, line=line, notice=notice)
    bad(f"{pid}: a policy needs @row (with @outcome), @flag or @notice")
    return None


def _annotations(statement: str) -> dict[str, str]:
    doc: dict[str, Any] = json.loads(cedarpy.policies_to_json_str(statement))
    policies = list(doc.get("staticPolicies", {}).values())
    if len(policies) != 1:
        raise ValueError("expected exactly one policy (templates are not supported)")
    annotations = policies[0].get("annotations", {})
    return {str(k): str(v) for k, v in annotations.items()}


# --- loading and validating -----------------------------------------------------------


def resolve_profile_dir(name_or_dir: str | Path) -> Path:
    """A shipped profile name, or a path to an operator's directory."""
    text = str(name_or_dir)
    if text in SHIPPED_PROFILES:
        return PROFILES_DIR / text
    path = Path(text)
    if path.is_dir():
        return path
    raise ConfigError(
        f"profile {text!r}: not a shipped profile ({', '.join(SHIPPED_PROFILES)}) "
        "nor a directory")


@dataclass(frozen=True)
class _Parsed:
    rules: list[Rule]
    sources: list[str]
    schema_text: str
    problems: list[Problem]


def _parse_dir(directory: Path) -> _Parsed:
    problems: list[Problem] = []
    schemas = sorted(directory.glob("*.cedarschema"))
    schema_text = ""
    schema: cedarpy.Schema | None = None
    if len(schemas) != 1:
        problems.append(Problem(str(directory), 0,
                                f"expected exactly one *.cedarschema file, found {len(schemas)}"))
    else:
        schema_text = schemas[0].read_text(encoding="utf-8")
        try:
            schema = cedarpy.Schema.from_str(schema_text)
        except ValueError as exc:
            problems.append(Problem(str(schemas[0]), 1, f"schema: {exc}"))

    files = sorted(directory.glob("*.cedar"))
    if not files:
        problems.append(Problem(str(directory), 0, "no *.cedar policy files"))
    rules: list[Rule] = []
    sources: list[str] = []
    seen: dict[str, Rule] = {}
    order = 0
    for path in files:
        try:
            source = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(Problem(str(path), 0, f"cannot read: {exc}"))
            continue
        for statement in _statements(source):
            where = str(path)
            try:
                annotations = _annotations(statement.text)
            except ValueError as exc:
                problems.append(Problem(where, statement.line, f"parse error: {exc}"))
                continue
            if schema is not None:
                result = cedarpy.validate_policies(statement.text, schema)
                for err in result.errors:
                    name = annotations.get("id", "policy")
                    message = str(err.error).replace("policy `policy0`", f"policy `{name}`")
                    problems.append(Problem(where, statement.line, message))
            rule = _rule_from(annotations, order, where, statement.line, problems)
            order += 1
            if rule is None:
                continue
            if rule.id in seen:
                first = seen[rule.id]
                problems.append(Problem(where, statement.line,
                                        f"duplicate @id {rule.id!r} "
                                        f"(first at {first.file}:{first.line})"))
                continue
            seen[rule.id] = rule
            rules.append(rule)
            sources.append(statement.text)
    if not any(r.kind == "row" for r in rules) and files:
        problems.append(Problem(str(directory), 0, "no @row policies"))
    return _Parsed(rules, sources, schema_text, problems)


def validate(directory: str | Path) -> list[Problem]:
    """Every problem in a policy directory (empty when it is sound)."""
    path = Path(directory)
    if not path.is_dir():
        return [Problem(str(path), 0, "not a directory")]
    return _parse_dir(path).problems


def load_profile(name_or_dir: str | Path) -> Profile:
    """Load a shipped profile by name, or an operator's policy directory."""
    directory = resolve_profile_dir(name_or_dir)
    parsed = _parse_dir(directory)
    if parsed.problems:
        shown = "; ".join(str(p) for p in parsed.problems[:3])
        more = len(parsed.problems) - 3
        raise ConfigError(f"policy profile {directory} is invalid: {shown}"
                          + (f" (and {more} more)" if more > 0 else ""))
    try:
        policy_set = cedarpy.PolicySet.from_str("\n".join(parsed.sources))
        schema = cedarpy.Schema.from_str(parsed.schema_text)
    except ValueError as exc:
        raise ConfigError(f"policy profile {directory}: {exc}") from exc
    name = str(name_or_dir) if str(name_or_dir) in SHIPPED_PROFILES else directory.name
    return Profile(name=name, directory=directory,
                   rules={r.id: r for r in parsed.rules},
                   policy_set=policy_set, schema=schema)
