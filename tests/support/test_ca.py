"""A certificate authority for tests: a root the client side is told to trust, and
server certificates it issues for given names (real X.509, made with cryptography)."""

from __future__ import annotations

import datetime as dt
import ssl
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


class TestCa:
    __test__ = False  # not a pytest class

    def __init__(self, directory: Path, *, issuer: TestCa | None = None,
                 name: str = "letterlock test CA") -> None:
        """A root, or with ``issuer`` an intermediate CA that ``issuer`` signed."""
        self._dir = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = dt.datetime.now(dt.UTC)
        self._name = subject
        self.cert = (
            x509.CertificateBuilder().subject_name(subject)
            .issuer_name(issuer._name if issuer else subject)
            .public_key(self._key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None if issuer is None
                                                 else 0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True,
                                         False, False), critical=True)
            .sign(issuer._key if issuer else self._key, hashes.SHA256()))
        self.path = directory / "ca.pem"
        self.path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def client_context(self) -> ssl.SSLContext:
        """Verifies peers against this CA only (and their names)."""
        return ssl.create_default_context(cafile=str(self.path))

    def server_context(self, *names: str, expired: bool = False,
                       chain: Sequence[TestCa] = ()) -> ssl.SSLContext:
        """A server context whose certificate this CA issued for ``names``
        (``expired``: one whose validity ended yesterday), presented followed by
        the certificates of ``chain``."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC) - dt.timedelta(days=2 if expired else 0)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(self._name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]),
                           critical=False)
            .sign(self._key, hashes.SHA256()))
        cert_path, key_path = self._dir / f"{names[0]}.pem", self._dir / f"{names[0]}.key"
        cert_path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM)
                                        for c in [cert, *(ca.cert for ca in chain)]))
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert_path, key_path)
        return ctx
