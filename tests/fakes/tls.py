"""Throwaway TLS material made at test time: a CA, a server certificate, an app certificate.

MSAL speaks only HTTPS, so the Microsoft fakes serve TLS with a certificate for 127.0.0.1
and localhost signed by a CA that exists only for the test session; clients trust it through
REQUESTS_CA_BUNDLE. An app certificate (RSA key + self-signed certificate, as uploaded to an
Entra app registration) lets the fake authority check MSAL's signed client assertions.
Nothing here is ever a real credential.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

VALIDITY = timedelta(days=2)


@dataclass(frozen=True)
class ThrowawayCA:
    ca_file: Path  # the CA certificate: what REQUESTS_CA_BUNDLE points at
    cert_file: Path  # server certificate for 127.0.0.1 and localhost
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


@dataclass(frozen=True)
class AppCertificate:
    pem_file: Path  # private key + certificate, as `openssl pkcs12 -nodes` writes them
    thumbprint: str  # SHA-1, hex upper-case, as the Entra admin center shows it
    certificate: x509.Certificate


def make_throwaway_ca(directory: Path) -> ThrowawayCA:
    """A CA and a server certificate it signed, written as PEM files under `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("alertpull throwaway test CA")
    ca_cert = (
        _builder(ca_name, ca_name, ca_key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_ca_key_usage(), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    server_cert = (
        _builder(_name("localhost"), ca_name, server_key.public_key())
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca = ThrowawayCA(directory / "ca.pem", directory / "server.pem", directory / "server-key.pem")
    ca.ca_file.write_bytes(_cert_pem(ca_cert))
    ca.cert_file.write_bytes(_cert_pem(server_cert))
    _write_private(ca.key_file, _key_pem(server_key))
    return ca


def make_app_certificate(directory: Path, name: str = "alertpull-test-app") -> AppCertificate:
    """An app registration's certificate credential: RSA (MSAL signs RS256 with it)."""
    directory.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = _name(name)
    cert = _builder(subject, subject, key.public_key()).sign(key, hashes.SHA256())
    pem_file = directory / f"{name}.pem"
    _write_private(pem_file, _key_pem(key) + _cert_pem(cert))
    thumbprint = cert.fingerprint(hashes.SHA1()).hex().upper()
    return AppCertificate(pem_file, thumbprint, cert)


def bundle_with_system_roots(ca: ThrowawayCA, path: Path) -> Path:
    """The throwaway CA plus the usual public roots (certifi's), so that setting
    REQUESTS_CA_BUNDLE for a fake does not break HTTPS to anything else in that process."""
    import certifi

    path.write_bytes(ca.ca_file.read_bytes() + Path(certifi.where()).read_bytes())
    return path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(subject: x509.Name, issuer: x509.Name, public_key: object) -> x509.CertificateBuilder:
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
    )


def _ca_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
        encipher_only=False, decipher_only=False,
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
