"""A local certificate authority and one server certificate for the local cloud.

Every endpoint of the local cloud speaks HTTPS (the Azure SDKs refuse bearer tokens over plain http),
so ``azsim up`` makes a CA and a server certificate for ``127.0.0.1`` / ``localhost`` under its
workdir. Clients trust the CA through ``REQUESTS_CA_BUNDLE`` / ``SSL_CERT_FILE``; Azurite (Node)
trusts it through ``NODE_EXTRA_CA_CERTS`` for the copy-source checks it makes to itself.
Existing files are reused while they are valid, so a restarted cloud keeps the same CA.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_CA_NAME = "azsim local CA"
_VALID_DAYS = 365
# Regenerate a little before expiry so a long-lived workdir never serves an expired certificate.
_RENEW_MARGIN = dt.timedelta(days=7)


@dataclass(frozen=True)
class CertPaths:
    """Absolute paths of the PEM files written by :func:`ensure_certs`."""

    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path

    def server_context(self) -> ssl.SSLContext:
        """An ``SSLContext`` for an HTTPS server presenting the local server certificate."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(self.server_cert), str(self.server_key))
        return ctx

    def client_context(self) -> ssl.SSLContext:
        """An ``SSLContext`` for clients that trust only the local CA."""
        return ssl.create_default_context(cafile=str(self.ca_cert))


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _write_public(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _still_valid(paths: CertPaths) -> bool:
    try:
        ca = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
        server = x509.load_pem_x509_certificate(paths.server_cert.read_bytes())
        serialization.load_pem_private_key(paths.server_key.read_bytes(), password=None)
        serialization.load_pem_private_key(paths.ca_key.read_bytes(), password=None)
    except (OSError, ValueError):
        return False
    horizon = dt.datetime.now(dt.UTC) + _RENEW_MARGIN
    if ca.not_valid_after_utc < horizon or server.not_valid_after_utc < horizon:
        return False
    if server.issuer != ca.subject:
        return False
    try:
        sans = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    return ipaddress.ip_address("127.0.0.1") in sans.get_values_for_type(x509.IPAddress)


def ensure_certs(directory: Path) -> CertPaths:
    """Create (or reuse, if still valid) the CA and the server certificate under ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    directory = directory.resolve()
    paths = CertPaths(
        ca_cert=directory / "ca.pem",
        ca_key=directory / "ca.key",
        server_cert=directory / "server.pem",
        server_key=directory / "server.key",
    )
    if _still_valid(paths):
        return paths

    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    until = now + dt.timedelta(days=_VALID_DAYS)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, _CA_NAME)])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_subject)
        .issuer_name(ca_subject)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(until)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_subject)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(until)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )

    pem = serialization.Encoding.PEM
    pkcs8 = serialization.PrivateFormat.PKCS8
    nocrypt = serialization.NoEncryption()
    _write_private(paths.ca_key, ca_key.private_bytes(pem, pkcs8, nocrypt))
    _write_private(paths.server_key, server_key.private_bytes(pem, pkcs8, nocrypt))
    _write_public(paths.ca_cert, ca_cert.public_bytes(pem))
    _write_public(paths.server_cert, server_cert.public_bytes(pem))
    return paths
