"""Submitting the log's checkpoints to witnesses (c2sp.org/tlog-witness).

A witness keeps, per log, the last checkpoint it cosigned and cosigns a newer one
only with a consistency proof from it: a log that showed two different trees to two
parties cannot get both cosigned. The request (``POST <witness>/add-checkpoint``) is::

    old <size the witness last cosigned, 0 at first>
    <consistency proof from that size, one base64 hash a line>
    <blank line>
    <the signed checkpoint note>

and a 200 answer holds the witness's cosignature lines (``cosignature/v1``). A 409
with ``Content-Type: text/x.tlog.size`` gives the size the witness knows; the
submission is then made again from that size, once.

Cosignatures received are kept in ``witnessed.json`` beside the log and served with
the checkpoint they sign (``cosigned_checkpoint``), so clients that require a quorum
of witnesses can check them.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from letterlock.audit import checkpoint
from letterlock.audit.store import MerkleLog
from letterlock.errors import LetterlockError

WITNESSED_FILE = "witnessed.json"
SIZE_TYPE = "text/x.tlog.size"


class WitnessError(LetterlockError):
    """A witness refused the checkpoint, or answered something that does not verify."""


@dataclass(frozen=True)
class Cosigned:
    witness: str
    size: int
    timestamp: int
    line: str  # the cosignature line, as received and verified


def request_body(old_size: int, proof: list[bytes], note: str) -> bytes:
    lines = [f"old {old_size}"] + [base64.b64encode(h).decode("ascii") for h in proof]
    return ("\n".join(lines) + "\n\n" + note).encode("utf-8")


def _state(directory: Path) -> dict[str, Any]:
    try:
        doc = json.loads((directory / WITNESSED_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        return {}  # a damaged file only costs a 409 round trip next time
    return doc if isinstance(doc, dict) else {}


def _save(directory: Path, doc: dict[str, Any]) -> None:
    path = directory / WITNESSED_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, sort_keys=True, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def submit(log: MerkleLog, note: str, url: str, witness_key: str, *,
           timeout: float = 10.0) -> Cosigned:
    """Have the witness at ``url`` cosign ``note`` (the log's current checkpoint);
    returns the verified cosignature, also kept in ``witnessed.json``."""
    verifier = checkpoint.parse_verifier_key(witness_key)
    if verifier.key_type != checkpoint.COSIGNATURE_V1:
        raise WitnessError("a witness key is a cosignature/v1 key (type 0x04)")
    cp = checkpoint.parse_checkpoint(checkpoint.parse_note(note).text)
    state = _state(log.directory)
    known = state.get(verifier.name, {})
    old = int(known.get("size", 0)) if known.get("origin") == cp.origin else 0
    endpoint = url.rstrip("/") + "/add-checkpoint"
    with httpx.Client(timeout=timeout) as client:
        for _attempt in range(2):
            old = min(old, cp.size)
            proof = log.consistency_proof(old, cp.size) if old else []
            resp = client.post(endpoint, content=request_body(old, proof, note))
            if resp.status_code == 409 and resp.headers.get("content-type") == SIZE_TYPE:
                text = resp.text
                if not text.endswith("\n") or not text[:-1].isdigit():
                    raise WitnessError(f"witness {verifier.name} sent a malformed size")
                old = int(text[:-1])
                if old > cp.size:
                    raise WitnessError(
                        f"witness {verifier.name} has cosigned size {old}, larger than this "
                        f"log ({cp.size}): it saw a tree this log does not have")
                continue
            break
    if resp.status_code != 200:
        raise WitnessError(f"witness {verifier.name} refused the checkpoint: HTTP "
                           f"{resp.status_code} {resp.text.strip()[:200]}")
    cosigned = _verify_answer(cp, note, resp.text, verifier)
    state[verifier.name] = {"origin": cp.origin, "size": cp.size,
                            "timestamp": cosigned.timestamp, "line": cosigned.line,
                            "root": base64.b64encode(cp.root).decode("ascii")}
    _save(log.directory, state)
    return cosigned


def _verify_answer(cp: checkpoint.Checkpoint, note: str, answer: str,
                   verifier: checkpoint.Verifier) -> Cosigned:
    lines = [ln + "\n" for ln in answer.split("\n") if ln]
    text = checkpoint.parse_note(note).text
    for line in lines:
        try:
            parsed = checkpoint.open_note(text + "\n" + line, verifier)
        except checkpoint.NoteError:
            continue
        stamp = checkpoint.cosignature_time(parsed, verifier)
        return Cosigned(verifier.name, cp.size, stamp, line)
    raise WitnessError(f"witness {verifier.name} answered without a valid cosignature "
                       f"of the checkpoint")


def cosigned_checkpoint(directory: Path, note: str) -> str:
    """``note`` with the cosignatures kept for exactly its tree appended."""
    cp = checkpoint.parse_checkpoint(checkpoint.parse_note(note).text)
    root = base64.b64encode(cp.root).decode("ascii")
    extra = [
        str(entry["line"]) for _, entry in sorted(_state(directory).items())
        if isinstance(entry, dict) and entry.get("origin") == cp.origin
        and entry.get("size") == cp.size and entry.get("root") == root
    ]
    return note + "".join(extra)
