"""The ``decide`` fixture: every decision test runs through the Python API and
through ``letterlock legal evaluate --json``."""

from __future__ import annotations

from pathlib import Path

import pytest

from .harness import Decide, decide_api, make_decide_cli


@pytest.fixture(params=["api", "cli"])
def decide(request: pytest.FixtureRequest, tmp_path: Path) -> Decide:
    """Evaluate through the Python API and, in a second run, through the CLI."""
    if request.param == "api":
        return decide_api
    return make_decide_cli(tmp_path)
