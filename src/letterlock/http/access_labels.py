"""Plain words for the details the audit log keeps with an event, as the privacy
center shows them to the account's owner: a label for each key, values a person can
read, and nothing that means something only on the server (a file path)."""

from __future__ import annotations

from collections.abc import Iterable

LABELS = {
    "backup": "Backup",
    "blobs_released": "Stored items released",
    "country": "Country",
    "custody": "Key custody",
    "domain": "Domain",
    "folders": "Folders",
    "format": "Format",
    "from": "Moved from region",
    "instrument": "Kind of legal order",
    "messages": "Messages",
    "operator": "Operator",
    "outcome": "Outcome",
    "overridden": "Policy recommendation overridden",
    "profile": "Legal policy applied",
    "region": "Region",
    "reveals": "Reveals log entry",
    "to": "Moved to region",
    "until": "Until",
}
HIDDEN = frozenset({"package", "path", "blob", "blob_id"})
"""Server-side locations and storage ids: nothing the owner could use or check."""
_VALUES = {"true": "yes", "false": "no", "sealed": "sealed by the server",
           "e2e": "end-to-end (your own OpenPGP key)", "indefinite": "until further notice"}


def readable(details: Iterable[tuple[object, object]]) -> list[tuple[str, str]]:
    """(label, value) pairs for the page, in the log's order."""
    out = []
    for key, value in details:
        name = str(key)
        if name in HIDDEN:
            continue
        label = LABELS.get(name, name.replace("_", " ").capitalize())
        text = str(value)
        out.append((label, _VALUES.get(text, text)))
    return out
