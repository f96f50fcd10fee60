"""Small, dependency-free formatting of quantities, shared by the front-ends and the
services (it imports nothing from letterlock, so any layer may use it)."""

from __future__ import annotations

_BINARY_UNITS = (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10))


def human_size(value: int) -> str:
    """A byte count as people read it, in powers of 1024: ``1536`` -> ``1.5 KiB``,
    ``12`` -> ``12 bytes``."""
    for unit, factor in _BINARY_UNITS:
        if value >= factor:
            return f"{value / factor:.1f} {unit}"
    return f"{value} bytes"
