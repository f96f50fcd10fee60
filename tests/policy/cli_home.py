"""The ``letterlock`` command on a fresh HOME, for the matter-file and letter tests:
``run`` answers (exit status, stdout, stderr), ``ok`` asserts success."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from letterlock.cli.main import cli


class CliHome:
    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("LETTERLOCK_CRYPTO_ARGON2_MEMORY_KIB", "1024")
        monkeypatch.setenv("LETTERLOCK_CRYPTO_ARGON2_ITERATIONS", "1")
        self.home = str(tmp_path / "home")
        self._runner = CliRunner()

    def run(self, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
        result = self._runner.invoke(cli, ["--home", self.home, *args], input=stdin)
        return result.exit_code, str(result.stdout), str(result.stderr)

    def ok(self, *args: str, stdin: str | None = None) -> str:
        code, out, err = self.run(*args, stdin=stdin)
        assert code == 0, (args, out, err)
        return out
