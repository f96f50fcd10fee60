"""Having the audit log's checkpoints cosigned by witnesses (c2sp.org/tlog-witness).

The witnesses are listed in ``HOME/control/witnesses``, one a line::

    # URL of the witness (its submission prefix)   its cosignature/v1 verifier key
    https://witness.example.net   witness.example.net+1a2b3c4d+BGQ...

The server submits the current checkpoint to each (at start, then every
``INTERVAL_S`` seconds while the tree grows) with a consistency proof from the size the
witness last cosigned; the cosignatures come back with ``/log/tlog/checkpoint``. Each
outcome is one log line (``audit:witness:cosigned`` / ``audit:witness:refused``).
``letterlock log witness`` does one round by hand.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import httpx

from letterlock.audit import checkpoint, witness
from letterlock.audit.keys import load_private_key
from letterlock.audit.log import open_reader
from letterlock.audit.tiles import TileServer, origin_for
from letterlock.errors import ConfigError, LetterlockError
from letterlock.services.operations.log_events import LogEvent, event

WITNESSES_FILE = "witnesses"
INTERVAL_S = 60.0


@dataclass(frozen=True)
class WitnessEntry:
    url: str
    key: str

    @property
    def name(self) -> str:
        return self.key.split("+", 1)[0]


@dataclass(frozen=True)
class Outcome:
    witness: str
    size: int
    cosigned: bool
    reason: str = ""


def read_witnesses(path: Path) -> list[WitnessEntry]:
    """The witnesses configured in ``path`` (none if it does not exist)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    out = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[0].startswith(("http://", "https://")):
            raise ConfigError(f"{path.name} line {number}: expected 'URL KEY'")
        try:
            verifier = checkpoint.parse_verifier_key(parts[1])
        except checkpoint.NoteError as exc:
            raise ConfigError(f"{path.name} line {number}: {exc}") from exc
        if verifier.key_type != checkpoint.COSIGNATURE_V1:
            raise ConfigError(f"{path.name} line {number}: a witness key is a "
                              "cosignature/v1 key (type 0x04)")
        out.append(WitnessEntry(parts[0], parts[1]))
    return out


def submit_round(audit_dir: Path, origin: str, witnesses: list[WitnessEntry],
                 *, only_new: bool = True) -> list[Outcome]:
    """Submit the current checkpoint to every witness (blocking). ``only_new`` skips
    a witness that already cosigned this tree."""
    if not witnesses:
        return []
    outcomes = []
    with open_reader(audit_dir) as log:
        server = TileServer(log, load_private_key(audit_dir), origin)
        note = server.checkpoint()
        size = log.head().tree_size
        already = witness.cosigned_checkpoint(audit_dir, note)
        for entry in witnesses:
            if only_new and f"\u2014 {entry.name} " in already[len(note):]:
                continue
            try:
                witness.submit(log, note, entry.url, entry.key)
            except (LetterlockError, checkpoint.NoteError, httpx.HTTPError) as exc:
                reason = str(exc) or type(exc).__name__
                event(LogEvent.LOG_WITNESS_REFUSED, witness=entry.name, size=size,
                      reason=reason[:200])
                outcomes.append(Outcome(entry.name, size, False, reason))
                continue
            event(LogEvent.LOG_WITNESS_COSIGNED, witness=entry.name, size=size)
            outcomes.append(Outcome(entry.name, size, True))
    return outcomes


async def submit_round_async(control_dir: Path, hostname: str) -> list[Outcome]:
    """One round with the witnesses of ``control_dir/witnesses`` (for the server)."""
    witnesses = read_witnesses(control_dir / WITNESSES_FILE)
    return await asyncio.to_thread(submit_round, control_dir / "audit",
                                   origin_for(hostname), witnesses)
