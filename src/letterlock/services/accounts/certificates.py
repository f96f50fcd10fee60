"""TLS: the configured certificate, or a self-signed one made at first start."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def make_self_signed(cert_path: Path, key_path: Path, hostname: str) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=825))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName(hostname), x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def in_use(cert: str, key: str, tls_dir: Path) -> tuple[Path, Path, bool]:
    """(certificate, key, self-signed?) the server uses: the configured files, or
    the self-signed pair in ``tls_dir`` when either is not configured."""
    if cert and key:
        return Path(cert), Path(key), False
    return tls_dir / "selfsigned.pem", tls_dir / "selfsigned.key", True


def server_context(cert: str, key: str, tls_dir: Path, hostname: str) -> ssl.SSLContext:
    """A server SSL context from the configured files, or from a self-signed pair kept
    in ``tls_dir`` (made on first use)."""
    cert_path, key_path, self_signed = in_use(cert, key, tls_dir)
    if self_signed and (not cert_path.exists() or not key_path.exists()):
        make_self_signed(cert_path, key_path, hostname)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_path, key_path)
    return context
