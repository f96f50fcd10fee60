"""Every parser fuzz target (harness.py) over its corpus and a short budget of
mutations, as CI runs it: no crash, no input over a second. The long runs quoted in
the closing notes use run.py with the same targets."""

from __future__ import annotations

import os

import pytest
from harness import TARGETS, Mutator, corpus, run

BUDGET = int(os.environ.get("LETTERLOCK_FUZZ_INPUTS", "3000"))


@pytest.mark.parametrize("name", list(TARGETS))
def test_target_survives_its_corpus_and_mutations(name: str) -> None:
    assert corpus(name), f"tests/fuzz/corpus/{name}/ is empty"
    report = run(TARGETS[name], BUDGET, seed=20261205)
    assert report.inputs == BUDGET
    assert not report.crashes, report.crashes[:3]
    assert not report.hangs, [(t, d[:200]) for t, d in report.hangs[:3]]


def test_a_crash_is_caught_and_reported() -> None:
    target = TARGETS["json"]
    broken = type(target)("broken", lambda data: data.decode("ascii"), (), target.tokens)
    report = run(broken, 200, seed=1)
    assert report.crashes and report.crashes[0][0].startswith("UnicodeDecodeError")


def test_mutations_are_repeatable_and_vary() -> None:
    first = list(Mutator([b"abc"], [b"X"], seed=3).inputs(50))
    assert first == list(Mutator([b"abc"], [b"X"], seed=3).inputs(50))
    assert len(set(first)) > 25
