"""axe-core, the accessibility engine browsers' own audit tools use, for the page tests.

It is JavaScript published on npm and packaged by neither Debian nor PyPI in a form
we can use without a browser-automation stack, so the pinned release tarball is
fetched once from the npm registry, checked against its SHA-256, and kept in a cache
directory (``XDG_CACHE_HOME`` or ~/.cache) on first use. A machine that has neither
the cached copy nor network skips the accessibility checks, saying why.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import urllib.request
from pathlib import Path

VERSION = "4.10.2"
URL = f"https://registry.npmjs.org/axe-core/-/axe-core-{VERSION}.tgz"
SHA256 = "9ea2d2d6917da998122bdacfd3b473e31ead53f4b87146c716a12edf89158100"


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "letterlock-tests"


def tarball() -> Path:
    """The release tarball, fetched and verified if it is not cached yet. Raises
    OSError when it cannot be fetched, ValueError when what came is not it."""
    path = cache_dir() / f"axe-core-{VERSION}.tgz"
    if path.exists() and hashlib.sha256(path.read_bytes()).hexdigest() == SHA256:
        return path
    with urllib.request.urlopen(URL, timeout=30) as response:
        data = response.read()
    if hashlib.sha256(data).hexdigest() != SHA256:
        raise ValueError(f"{URL} does not have the pinned SHA-256")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part")
    tmp.write_bytes(data)
    tmp.replace(path)
    return path


def source() -> str:
    """axe.min.js."""
    with tarfile.open(fileobj=io.BytesIO(tarball().read_bytes()), mode="r:gz") as tar:
        member = tar.extractfile("package/axe.min.js")
        assert member is not None
        return member.read().decode("utf-8")
