"""Certificates the product refuses to make (small keys, expired ones), built by hand for tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from tentacle_manager.instances.certificates import Identity, PrivateKey


def hand_made(
    common_name: str,
    *,
    key: PrivateKey | None = None,
    key_size: int = 2048,
    valid_from: timedelta = timedelta(days=-1),
    valid_for: timedelta = timedelta(days=30),
) -> Identity:
    """A self-signed identity valid from now + `valid_from` for `valid_for`."""
    key = key or rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    start = datetime.now(UTC) + valid_from
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + valid_for)
        .sign(key, hashes.SHA256())
    )
    return Identity(certificate, key)
