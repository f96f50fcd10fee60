"""After a restore the directory (address -> region, in HOME/control) and the restored
cell agree (issue 15 point 4): the directory says where an account lives, the audit
log says what was deleted since the backup, and neither is rewound."""

from __future__ import annotations

from pathlib import Path

import pytest

from letterlock.app import App, initialise, open_app
from letterlock.errors import InvalidInput
from letterlock.services.accounts.setup import InitOptions
from letterlock.services.operations.backup import BackupService
from support.env import PASSWORD, make_config


def service(app: App) -> BackupService:
    return BackupService(app.cells, app.control, app.legal, app.audit, app.peers,
                         app.config.home)


async def test_restore_keeps_moves_deletions_and_lost_entries_of_the_directory(
        tmp_path: Path) -> None:
    config = make_config(tmp_path / "home")
    await initialise(config, InitOptions())
    backup = tmp_path / "backup"
    async with open_app(config) as app:
        for name in ("alice", "dave", "erin", "frank"):
            await app.accounts.create(f"{name}@example.test", "us-east", PASSWORD)
        result = await service(app).backup("us-east", backup)
        assert result.manifest.counts["accounts"] == 4

        await app.accounts.move("alice@example.test", "eu-dublin")  # moved away since
        await app.accounts.delete("dave@example.test")  # its owner wanted it gone
        await app.accounts.create("carol@example.test", "us-east", PASSWORD)  # new since
        await app.control.unassign("erin@example.test")  # an entry the directory lost

        restored = await service(app).restore("us-east", backup, force=True)
        assert restored.moved_away == ("alice@example.test",)
        assert restored.deleted_since == ("dave@example.test",)
        assert restored.lost == ("carol@example.test",)
        assert restored.assigned == ("erin@example.test",)
        assert restored.accounts == 2

        directory = dict(await app.control.list_assignments())
        assert directory == {"alice@example.test": "eu-dublin",
                             "erin@example.test": "us-east",
                             "frank@example.test": "us-east"}
        cell = app.cells.get("us-east")
        assert sorted(a.address for a in await cell.store.list_accounts()) == [
            "erin@example.test", "frank@example.test"]
        # The moved account lives on, whole, in its new region.
        session = await app.accounts.authenticate("alice@example.test", PASSWORD)
        assert session.ref.region == "eu-dublin"


async def test_backup_refuses_a_directory_inside_home(tmp_path: Path) -> None:
    config = make_config(tmp_path / "home")
    await initialise(config, InitOptions())
    async with open_app(config) as app:
        with pytest.raises(InvalidInput, match="inside HOME"):
            await service(app).backup("us-east", config.home / "regions" / "bk")
    assert not (config.home / "regions" / "bk").exists()
