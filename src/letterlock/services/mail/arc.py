"""ARC (RFC 8617): the chain of seals that forwarders (mailing lists, redirectors) add
so that a receiver can see what the message looked like to them before they changed
it, and which of them vouched for it.

The chain is verified with dkimpy's ``arc_verify``. Its DNS function is synchronous,
so the keys every seal and message signature names are fetched first, asynchronously
and at most :data:`MAX_KEYS` of them, and handed over from memory; dkimpy then runs
in a thread.

Trust is local policy (RFC 8617 section 7.2): a valid chain only counts when the
newest seal is by a domain the operator listed (``smtp.arc_trusted_sealers``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass

import dkim

from letterlock.mime.headers import split_fields
from letterlock.mime.structure import header_end
from letterlock.services.mail import spf

log = logging.getLogger("letterlock.inbound")

MAX_KEYS = 20
"""Distinct keys fetched for one chain (two per ARC set: about ten hops)."""
_ARC_FIELDS = ("arc-seal", "arc-message-signature")

TagParser = Callable[[bytes], dict[str, str]]
"""A header field value's tag=value list (inbound_auth's ``_tags``)."""


@dataclass(frozen=True)
class ArcVerdict:
    result: str
    """RFC 8601 ``arc`` result: none, pass or fail."""
    sealer: str = ""
    """The domain of the newest ARC-Seal (``d=``), when the chain has one."""
    instance: int = 0
    """The newest instance (``i=``): how many ARC-aware hops the message passed."""

    def text(self) -> str:
        if self.result == "none":
            return "arc=none"
        sealer = f" as.d={self.sealer}" if self.sealer else ""
        return f"arc={self.result} (i={self.instance}{sealer})"

    def trusted(self, sealers: Collection[str]) -> bool:
        """A valid chain sealed last by one of ``sealers``."""
        return self.result == "pass" and self.sealer in sealers


def has_chain(header: bytes) -> bool:
    return b"arc-seal" in header.lower()


def _key_names(header: bytes, tags: dict[bytes, tuple[str, str]]) -> list[str]:
    names = []
    for f in split_fields(header):
        if f.key in _ARC_FIELDS:
            s, d = tags.get(f.raw, ("", ""))
            if s and d and spf.valid_domain(d):
                name = f"{s}._domainkey.{d}"
                if name not in names:
                    names.append(name)
    return names[:MAX_KEYS]


async def verify(message: bytes, lookup: spf.Lookup,
                 tag_parser: TagParser) -> ArcVerdict:
    """The chain's verdict. A message without ARC fields gets ``none``; DNS failures
    leave keys missing, which fails the chain (a later retry is not asked for:
    nothing is refused on ARC grounds alone)."""
    header = message[:header_end(message)]
    if not has_chain(header):
        return ArcVerdict("none")
    tags = {f.raw: _s_and_d(tag_parser(f.value)) for f in split_fields(header)
            if f.key in _ARC_FIELDS}
    keys: dict[str, bytes] = {}
    for name in _key_names(header, tags):
        try:
            records = await lookup(name, "TXT")
        except spf.SpfError:
            continue
        if records:
            keys[name.lower()] = records[0].encode("utf-8")
    return await asyncio.to_thread(_verify, message, keys)


def _s_and_d(tags: dict[str, str]) -> tuple[str, str]:
    return tags.get("s", ""), tags.get("d", "").lower()


def _verify(message: bytes, keys: dict[str, bytes]) -> ArcVerdict:
    def dnsfunc(name: bytes | str, timeout: float = 5.0) -> bytes | None:
        text = name.decode("ascii", "replace") if isinstance(name, bytes) else name
        return keys.get(text.rstrip(".").lower())

    try:
        cv, results, reason = dkim.arc_verify(message, dnsfunc=dnsfunc)
    except Exception:  # a malformed chain must never fail a delivery
        log.info("ARC chain not checkable", exc_info=True)
        return ArcVerdict("fail")
    newest = results[0] if results else {}
    sealer = newest.get("as-domain", b"")
    instance = int(newest.get("instance", 0) or 0)
    sealer_text = sealer.decode("ascii", "replace").lower() if isinstance(sealer, bytes) \
        else str(sealer).lower()
    if cv == dkim.CV_Pass:
        return ArcVerdict("pass", sealer_text, instance)
    if cv == dkim.CV_None and not results:
        return ArcVerdict("none")
    log.debug("ARC chain failed: %s", reason)
    return ArcVerdict("fail", sealer_text, instance)
