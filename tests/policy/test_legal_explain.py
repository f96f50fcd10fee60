"""Policies and codes in plain words (services/legal/explain.py): a policy is explained
by the comment written above it in its Cedar file, also in an operator's own policy
directory; one without a comment borrows its row's; an override and an unknown id
say what they are; every shipped policy has words."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from letterlock.policy import load_profile
from letterlock.policy.rules import FLAGS, NOTICES, OUTCOMES, PROFILES_DIR, REASONS
from letterlock.services.legal import explain


def test_every_code_has_words() -> None:
    assert list(explain.REASONS) == list(REASONS)
    assert list(explain.OUTCOMES) == list(OUTCOMES)
    assert set(explain.FLAGS) == set(FLAGS) and set(explain.NOTICES) == set(NOTICES)


@pytest.mark.parametrize("profile", ["location-2016", "cloud-act-2018"])
def test_every_shipped_policy_has_words_of_its_own(profile: str) -> None:
    words = explain.PolicyExplainer(profile)
    for pid, rule in load_profile(profile).rules.items():
        said = words.policy(pid)
        assert said.kind == rule.kind and len(said.text) > 10, said
        assert not said.text[:1].isdigit(), said  # the row number is not repeated


def test_an_operators_own_comment_explains_its_policy(tmp_path: Path) -> None:
    mine = tmp_path / "ours"
    shutil.copytree(PROFILES_DIR / "location-2016", mine)
    rows = mine / "rows.cedar"
    text = rows.read_text()
    old = next(line for line in text.splitlines() if line.startswith("// 12."))
    rows.write_text(text.replace(old, "// 12. Our counsel: the issuer's own country "
                                      "holds the data,\n//     so we answer it directly."))
    words = explain.PolicyExplainer(mine)
    said = words.policy("L16-12-issuer-territory")
    assert said.text == ("Our counsel: the issuer's own country holds the data, so we "
                         "answer it directly.")
    assert (said.row, said.outcome) == (12, "disclose")


def test_borrowed_override_and_unknown_words() -> None:
    words = explain.PolicyExplainer("cloud-act-2018")
    # C18-10-emergency is written right after C18-10-emergency-content, no comment
    assert words.policy("C18-10-emergency").text == \
        words.policy("C18-10-emergency-content").text
    assert words.policy("override:lee").kind == "override"
    assert "lee overrode" in words.policy("override:lee").text
    assert words.policy("X-99-gone").kind == "unknown"
    # the configured profile first; the other shipped one too (older matters cite it)
    assert words.policy("L16-12-issuer-territory").kind == "row"
