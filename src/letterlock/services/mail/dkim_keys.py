"""Per-domain DKIM keys (RFC 6376) and the DNS records an operator publishes.

``domain add`` makes a key with :func:`create_key`; the outbound queue signs with
:meth:`DkimKeys.sign`; ``domain show`` prints :func:`dns_records`. Keys live under
``HOME/control/dkim/<domain>/<selector>.pem`` (mode 0600) with ``current`` naming the
selector in use, so a key can be rotated by adding a selector.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from letterlock.errors import AlreadyExists, CryptoError, InvalidMessage, UnknownDomain
from letterlock.services.accounts.addresses import normalise_domain
from letterlock.storage.durable import write_atomically

KEY_BITS = 2048
SIGNED_HEADERS = (b"From", b"Sender", b"Reply-To", b"Subject", b"Date", b"Message-ID", b"To",
                  b"Cc", b"MIME-Version", b"Content-Type", b"Content-Transfer-Encoding",
                  b"In-Reply-To", b"References")


@dataclass(frozen=True)
class DkimKey:
    domain: str
    selector: str
    private_pem: bytes

    def public_b64(self) -> str:
        key = serialization.load_pem_private_key(self.private_pem, password=None)
        der = key.public_key().public_bytes(serialization.Encoding.DER,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
        return base64.b64encode(der).decode("ascii")

    def txt_value(self) -> str:
        return f"v=DKIM1; k=rsa; p={self.public_b64()}"


@dataclass(frozen=True)
class DnsRecord:
    name: str
    type: str
    value: str
    purpose: str

    def zone_line(self) -> str:
        value = self.value
        if self.type == "TXT":
            # Split into <=255-octet character-strings (RFC 1035 3.3.14).
            value = " ".join(f'"{value[i:i + 255]}"' for i in range(0, len(value), 255))
        return f"{self.name}. 3600 IN {self.type} {value}"


def _dir(control_dir: Path, domain: str) -> Path:
    return control_dir / "dkim" / normalise_domain(domain)


def create_key(control_dir: Path, domain: str, *, selector: str | None = None,
               bits: int = KEY_BITS) -> DkimKey:
    """Make a new signing key for ``domain`` and make it current. Raises AlreadyExists
    if the selector is taken. Blocking (key generation, fsync): call off the loop."""
    domain = normalise_domain(domain)
    selector = selector or "ll" + datetime.now(UTC).strftime("%Y%m")
    root = _dir(control_dir, domain)
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = root / f"{selector}.pem"
    if path.exists():
        raise AlreadyExists(f"DKIM selector {selector} exists for {domain}")
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    write_atomically(path, pem, 0o600)
    write_atomically(root / "current", selector.encode("ascii") + b"\n", 0o600)
    return DkimKey(domain, selector, pem)


def ensure_key(control_dir: Path, domain: str) -> DkimKey:
    """The current key of ``domain``, made first if there is none."""
    existing = load_key(control_dir, domain)
    return existing if existing is not None else create_key(control_dir, domain)


def load_key(control_dir: Path, domain: str) -> DkimKey | None:
    root = _dir(control_dir, domain)
    try:
        selector = (root / "current").read_text("ascii").strip()
        pem = (root / f"{selector}.pem").read_bytes()
    except FileNotFoundError:
        return None
    return DkimKey(normalise_domain(domain), selector, pem)


def dns_records(domain: str, hostname: str, key: DkimKey | None) -> list[DnsRecord]:
    """What to publish for ``domain``: MX pointing at this server, SPF allowing it,
    the DKIM public key and a starting DMARC policy."""
    domain = normalise_domain(domain)
    records = [
        DnsRecord(domain, "MX", f"10 {hostname}.", "mail for the domain comes here"),
        DnsRecord(domain, "TXT", "v=spf1 mx -all", "SPF: only the MX hosts send its mail"),
    ]
    if key is not None:
        records.append(DnsRecord(f"{key.selector}._domainkey.{domain}", "TXT", key.txt_value(),
                                 "DKIM public key"))
    records.append(DnsRecord(f"_dmarc.{domain}", "TXT",
                             f"v=DMARC1; p=none; rua=mailto:postmaster@{domain}",
                             "DMARC: start with p=none, tighten once reports look right"))
    return records


class DkimKeys:
    """Signing keys of every hosted domain, read from ``HOME/control/dkim``."""

    def __init__(self, control_dir: Path) -> None:
        self._control = control_dir

    def key_for(self, domain: str) -> DkimKey | None:
        try:
            return load_key(self._control, domain)
        except (OSError, ValueError):
            return None

    def sign(self, message: bytes, domain: str) -> bytes:
        """``message`` with a DKIM-Signature for ``domain`` prepended; unchanged when the
        domain has no key. CPU-bound: call off the event loop. Raises InvalidMessage
        when the message itself cannot be signed (a malformed header section, no
        From:), CryptoError when the key is at fault."""
        key = self.key_for(domain)
        if key is None:
            return message
        present = {line.split(b":", 1)[0].strip().lower()
                   for line in message.split(b"\r\n\r\n", 1)[0].split(b"\r\n") if b":" in line}
        headers = [h for h in SIGNED_HEADERS if h.lower() in present] or [b"From"]
        try:
            signature = dkim.sign(message, key.selector.encode("ascii"),
                                  key.domain.encode("ascii"), key.private_pem,
                                  include_headers=headers)
        except (dkim.MessageFormatError, dkim.ParameterError) as exc:
            raise InvalidMessage(f"cannot be DKIM-signed: {exc}") from exc
        except dkim.DKIMException as exc:
            raise CryptoError(f"DKIM signing failed for {domain}: {exc}") from exc
        return bytes(signature) + message

    def require(self, domain: str) -> DkimKey:
        key = self.key_for(domain)
        if key is None:
            raise UnknownDomain(f"no DKIM key for {domain}")
        return key
