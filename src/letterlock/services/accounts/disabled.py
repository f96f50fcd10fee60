"""Disabled accounts: their logins are refused (IMAP, SMTP submission, the privacy
center, every check through ``AccountService.authenticate``) while their mail keeps
arriving and stays sealed as before.

The list is one small JSON file, ``HOME/control/disabled-accounts.json``, shared by
every process of the server: a check stats it and reads it again only when it changed,
so a disable made by the console or the command line holds in every worker at its
next login check. Written whole to a temporary file, flushed, then renamed.
"""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, datetime
from pathlib import Path

FILE = "disabled-accounts.json"


class DisabledAccounts:
    def __init__(self, control_dir: Path) -> None:
        self._path = control_dir / FILE
        self._lock = threading.Lock()
        self._seen: tuple[int, int] | None = None
        self._entries: dict[str, dict[str, str]] = {}

    def _load(self) -> dict[str, dict[str, str]]:
        try:
            st = self._path.stat()
        except FileNotFoundError:
            self._seen, self._entries = None, {}
            return self._entries
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp != self._seen:
            doc = json.loads(self._path.read_text("utf-8") or "{}")
            self._entries = {str(k): dict(v) for k, v in doc.get("accounts", {}).items()}
            self._seen = stamp
        return self._entries

    def refuses(self, address: str) -> bool:
        """Whether logins of ``address`` (normalised) are refused. Blocking: one stat."""
        with self._lock:
            return address in self._load()

    def entries(self) -> dict[str, dict[str, str]]:
        """address -> {"since": ISO time, "by": actor}."""
        with self._lock:
            return dict(self._load())

    def set(self, address: str, disabled: bool, actor: str) -> bool:
        """Disable or enable ``address``; False when it already was. Blocking."""
        with self._lock:
            entries = dict(self._load())
            if (address in entries) == disabled:
                return False
            if disabled:
                entries[address] = {"since": datetime.now(UTC).isoformat(timespec="seconds"),
                                    "by": actor}
            else:
                del entries[address]
            tmp = self._path.with_suffix(".tmp")
            with open(tmp, "w", encoding="utf-8") as out:
                json.dump({"v": 1, "accounts": entries}, out, indent=1, sort_keys=True)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self._path)
            self._seen = None
            return True
