"""Fixtures shared by the whole suite: a throwaway HOME with cheap Argon2 settings, and
the application built on it by the real composition root."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from letterlock import config as config_mod
from letterlock.app import App, initialise, open_app
from letterlock.services.accounts.setup import InitOptions
from support.env import make_config


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def config(home: Path) -> config_mod.Config:
    return make_config(home)


@pytest.fixture
async def app(config: config_mod.Config) -> AsyncIterator[App]:
    """An initialised application: domain example.test, regions us-east (US) and
    eu-dublin (IE)."""
    await initialise(config, InitOptions())
    async with open_app(config) as application:
        yield application
