"""A decision in plain words, for the legal console: what each outcome, R-code, flag,
notice and deadline means, and what each cited policy says.

The meanings of the closed vocabularies (policy/rules.py) are written here once, in
the words of docs/legal-formats.md (a test keeps the two the same). A policy is
explained by the comment its author wrote above it in its Cedar file (the shipped
profiles describe every row that way; an operator's own policies are explained the
same way), with its row and outcome; a policy without a comment of its own borrows the
comment of the row it belongs to.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from letterlock.errors import ConfigError
from letterlock.policy import Decision, Profile, load_profile
from letterlock.policy.rules import SHIPPED_PROFILES, Rule

REASONS = {
    "R03": "the instrument cannot reach this category",
    "R04": "operator not subject to the issuer's jurisdiction",
    "R05": "data stored outside the issuer's territory",
    "R06": "disclosure would conflict with foreign law (e.g. GDPR art. 48)",
    "R07": "overbroad or no specific account identifiers",
    "R08": "authenticity not verified",
    "R10": "no international agreement in force for this request",
    "R11": "target protected by the agreement (e.g. a US person under a UK order)",
    "R12": "offence below the threshold for this category",
    "R13": "instrument not yet applicable on that date",
    "R14": "enforcing state objected",
    "R15": "issuing authority not competent for this category",
    "R16": "real-time interception is outside this system",
    "R17": "no such account",
}
"""What each reason code means (docs/legal-formats.md, Reasons)."""

OUTCOMES = {
    "disclose": "hand over (a signed production package)",
    "preserve": "keep in place (a hold: expunged mail stays, sealed)",
    "no-data": "no such account",
    "reject": "refuse",
    "redirect-mlat": "the issuer must go through a mutual legal assistance request",
    "redirect-to-customer": "ask the hosted customer that owns the domain",
    "challenge": "file a motion to quash (deadline challenge)",
    "hold-enforcing-state": "an EU order: wait for the enforcing state's objection window",
    "query-issuer": "ask the issuer (e.g. whether the offence is listed)",
    "escalate": "counsel decides",
}
"""What each outcome means (docs/legal-formats.md, Outcomes)."""

FLAGS = {
    "gdpr-art48": "disclosure abroad without an agreement, data in the EU (GDPR art. 48): "
                  "review before anything goes out",
    "challenge-gag": "an indefinite non-disclosure order: consider challenging it",
    "national-security-band": "reported in the transparency report only in bands",
}

NOTICES = {
    "before-disclosure": "the account holder is told before anything is handed over",
    "at-gag-expiry": "the account holder is told when the non-disclosure order ends",
    "after-emergency": "the account holder is told once the emergency is over",
    "on-authority-request": "an EU order is kept confidential: the account holder is "
                            "told only when the issuing authority asks",
    "none": "the account holder is not told (only preserving)",
}

DEADLINES = {
    "production": "hand over what was decided",
    "challenge": "file a challenge (motion to quash)",
    "preservation-expiry": "the preservation hold ends",
    "enforcing-state-objection": "the enforcing state's window to object (wait it out)",
    "user-notice": "tell the account holder",
}

_ROW_NUMBER = re.compile(r"^\d+(\s*\([^)]*\))?\.\s*")


@dataclass(frozen=True)
class PolicyWords:
    id: str
    text: str
    """What the policy says, in its author's words (or a description built from its
    annotations)."""
    kind: str
    """row, flag, notice, override, or unknown (not in any loaded profile)."""
    row: int | None = None
    outcome: str | None = None


def _comment_above(lines: list[str], line: int) -> str:
    """The ``//`` comment block that ends right above 1-based ``line``."""
    out: list[str] = []
    i = line - 2
    while i >= 0 and lines[i].lstrip().startswith("//"):
        out.append(lines[i].lstrip()[2:].strip())
        i -= 1
    return " ".join(reversed(out)).strip()


class PolicyExplainer:
    """Plain words for the policies of the configured profile (and of the shipped
    ones, which matters decided under another profile cite)."""

    def __init__(self, configured: str | Path) -> None:
        profiles: list[Profile] = []
        for source in (configured, *SHIPPED_PROFILES):
            try:
                profiles.append(load_profile(source))
            except ConfigError:
                continue
        self._words: dict[str, PolicyWords] = {}
        cache: dict[str, list[str]] = {}
        for profile in profiles:
            row_text: dict[int, str] = {}
            for rule in sorted(profile.rules.values(), key=lambda r: r.order):
                if rule.id in self._words:
                    continue
                text = self._comment(rule, cache)
                if rule.row is not None:
                    text = text or row_text.get(rule.row, "")
                    row_text.setdefault(rule.row, text)
                self._words[rule.id] = PolicyWords(rule.id, text or _described(rule),
                                                   rule.kind, rule.row, rule.outcome)

    @staticmethod
    def _comment(rule: Rule, cache: dict[str, list[str]]) -> str:
        if rule.file not in cache:
            try:
                cache[rule.file] = Path(rule.file).read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError):
                cache[rule.file] = []
        return _ROW_NUMBER.sub("", _comment_above(cache[rule.file], rule.line))

    def policy(self, policy_id: str) -> PolicyWords:
        if policy_id.startswith("override:"):
            who = policy_id.removeprefix("override:")
            return PolicyWords(policy_id, f"a human decision: {who} overrode the policy's "
                                          "outcome", "override")
        found = self._words.get(policy_id)
        if found is not None:
            return found
        return PolicyWords(policy_id, "not a policy of the profiles loaded now (the matter "
                                      "was decided under policies since changed)", "unknown")

    def cited(self, decision: Decision) -> list[PolicyWords]:
        """Every policy ``decision`` cites, once each, in the order first cited."""
        seen: dict[str, PolicyWords] = {}
        for _, _, finding in decision.findings():
            for pid in finding.policies:
                if pid not in seen:
                    seen[pid] = self.policy(pid)
        return list(seen.values())


def _described(rule: Rule) -> str:
    if rule.kind == "row":
        return f"row {rule.row}: {rule.outcome}"
    if rule.kind == "flag":
        return f"adds the flag {rule.flag}: {FLAGS.get(rule.flag or '', '')}".rstrip(": ")
    return f"user notice {rule.notice}: {NOTICES.get(rule.notice or '', '')}".rstrip(": ")


def reasons_in(decision: Decision) -> list[tuple[str, str]]:
    """The R-codes ``decision`` gives, once each in order of code, with their meaning."""
    codes = sorted({r for _, _, f in decision.findings() for r in f.reasons})
    return [(c, REASONS.get(c, "a reason code this version does not know")) for c in codes]
