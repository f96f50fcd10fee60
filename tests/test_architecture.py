"""The architecture stays visible: dependencies point one way (front-ends -> services
-> storage), and crypto, policy, audit, mime and sieve are leaf libraries."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "letterlock"
FRONT_ENDS = {"cli", "smtp", "imap", "http", "server", "app", "workers", "worker",
              "managesieve", "__main__"}
LEAVES = {"crypto", "policy", "audit", "mime", "sieve"}


def imported_packages(path: Path) -> set[str]:
    """Top-level letterlock sub-packages imported by ``path`` (at any depth)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "letterlock" and len(parts) > 1:
                out.add(parts[1])
    return out


def modules_of(package: str) -> list[Path]:
    target = SRC / package
    return sorted(target.rglob("*.py")) if target.is_dir() else [SRC / f"{package}.py"]


@pytest.mark.parametrize("leaf", sorted(LEAVES))
def test_leaf_libraries_import_only_errors_and_leaves(leaf: str) -> None:
    for path in modules_of(leaf):
        bad = imported_packages(path) - LEAVES - {"errors"}
        assert not bad, f"{path.relative_to(SRC)} imports {sorted(bad)}"


@pytest.mark.parametrize("package", ["services", "storage"])
def test_services_and_storage_never_import_front_ends(package: str) -> None:
    for path in modules_of(package):
        bad = imported_packages(path) & FRONT_ENDS
        assert not bad, f"{path.relative_to(SRC)} imports {sorted(bad)}"


def test_storage_does_not_import_services() -> None:
    for path in modules_of("storage"):
        assert "services" not in imported_packages(path), path


def test_test_module_names_are_unique() -> None:
    # pytest's default (prepend) import mode needs unique basenames across tests/.
    names = [p.name for p in Path(__file__).parent.rglob("test_*.py")]
    assert sorted({n for n in names if names.count(n) > 1}) == []


def test_every_event_type_has_words_in_the_privacy_center() -> None:
    from letterlock.audit.events import EventType
    from letterlock.http.account_pages import EVENT_WORDS

    owner_facing = {e.value for e in EventType} - {
        "admin:region:added", "admin:region:backed-up", "admin:region:restored",
        "admin:domain:added", "admin:operator:added",
        "admin:operator:removed", "admin:operator:password-set",
        "log:tree:recovered"}
    assert owner_facing <= set(EVENT_WORDS)
