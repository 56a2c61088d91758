"""A Tentacle's identity: its self-signed certificate and private key, their formats and files.

Certificates follow Tentacle's CertificateGenerator exactly (CN=Octopus Tentacle, RSA 2048,
SHA-256, a random serial, valid from yesterday's UTC midnight for 100 years, no extensions),
because servers that trust a Tentacle compare thumbprints and expect that shape. The private
key only leaves memory inside a PFX or an encrypted PEM: never in clear.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from tentacle_manager.files.atomic import (
    PendingFile,
    make_private_directory,
    write_atomically,
)
from tentacle_manager.instances.errors import InstanceError

DEFAULT_COMMON_NAME = "Octopus Tentacle"
MINIMUM_KEY_SIZE = 2048
MAXIMUM_KEY_SIZE = 16384
VALIDITY_YEARS = 100
_MAXIMUM_COMMON_NAME = 64  # ub-common-name in RFC 5280
_MAXIMUM_PASSPHRASE = 1023  # OpenSSL's PEM password buffer, which ssl.load_cert_chain uses
_THUMBPRINT = re.compile(r"[0-9A-Fa-f]{40}")
_THUMBPRINT_SEPARATORS = re.compile(r"[\s:]")
_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


class CertificateError(InstanceError):
    """A certificate, key, password or file is unusable; the message says which and why."""


def thumbprint(certificate: x509.Certificate) -> str:
    """SHA-1 of the DER certificate in upper-case hex: .NET's X509Certificate2.Thumbprint."""
    return certificate.fingerprint(hashes.SHA1()).hex().upper()


def thumbprint_of_der(der: bytes) -> str:
    """The thumbprint of a certificate as TLS hands it over, without parsing it."""
    return hashlib.sha1(der, usedforsecurity=False).hexdigest().upper()


def normalise_thumbprint(text: str) -> str:
    """Accept a thumbprint as people paste it (any case, spaced or colon-separated)."""
    compact = _THUMBPRINT_SEPARATORS.sub("", text) if isinstance(text, str) else ""
    if not _THUMBPRINT.fullmatch(compact):
        raise CertificateError(
            f"Thumbprint {text!r} is not valid: it must be 40 hexadecimal characters (a SHA-1 "
            "hash), optionally separated by spaces or colons.",
            field="thumbprint",
        )
    return compact.upper()


@dataclass(frozen=True)
class Identity:
    """A certificate with the private key that matches it: what a Tentacle proves itself with."""

    certificate: x509.Certificate
    private_key: PrivateKey

    def __post_init__(self) -> None:
        if not isinstance(self.private_key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise CertificateError(
                f"The private key is a {type(self.private_key).__name__}: it must be RSA or EC.",
                field="private_key",
            )
        if _public_der(self.private_key.public_key()) != _public_der(self.certificate.public_key()):
            raise CertificateError(
                "The private key does not belong to the certificate: their public keys differ.",
                "Use the key that was exported together with this certificate.",
                field="private_key",
            )

    @property
    def thumbprint(self) -> str:
        return thumbprint(self.certificate)

    @property
    def not_valid_after(self) -> datetime:
        return self.certificate.not_valid_after_utc

    @property
    def warnings(self) -> tuple[str, ...]:
        """Things to tell the user that do not stop the import (Tentacle warns on short keys)."""
        if isinstance(self.private_key, rsa.RSAPrivateKey) and (
            self.private_key.key_size < MINIMUM_KEY_SIZE
        ):
            return (
                f"The certificate's RSA key is {self.private_key.key_size} bits; "
                f"{MINIMUM_KEY_SIZE} bits or more is recommended.",
            )
        return ()

    def to_pfx(self, password: bytes | None) -> bytes:
        """PKCS#12 with the key; None gives the unprotected PFX Tentacle keeps in its config."""
        encryption: serialization.KeySerializationEncryption = serialization.NoEncryption()
        if password is not None:
            encryption = serialization.BestAvailableEncryption(_secret_bytes(password, "PFX"))
        return pkcs12.serialize_key_and_certificates(
            None, self.private_key, self.certificate, None, encryption
        )

    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def private_key_pem(self, passphrase: bytes) -> bytes:
        """PKCS#8 PEM, always encrypted: there is deliberately no way to get the key in clear."""
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(_secret_bytes(passphrase, "private key")),
        )

    @classmethod
    def from_pfx(cls, data: bytes, password: bytes | None) -> Identity:
        """Read a PFX; an unprotected one is read whatever password is given, as it needs none."""
        for candidate in dict.fromkeys([password, None, b""]):
            try:
                key, certificate, _ = pkcs12.load_key_and_certificates(data, candidate)
            except ValueError:
                continue
            return cls._from_parts(certificate, key, "PFX")
        if not data.startswith(b"\x30"):
            raise CertificateError("The data is not a PFX (PKCS#12) file.", field="certificate")
        raise CertificateError(
            "The PFX could not be read: the password is wrong or missing, or the file is damaged.",
            "Give the password the PFX was exported with.",
            field="password",
        )

    @classmethod
    def from_pem(cls, data: bytes, password: bytes | None) -> Identity:
        """Read one PEM holding the certificate and its private key (the key may be encrypted)."""
        try:
            certificate = x509.load_pem_x509_certificates(data)[0]
        except ValueError as error:
            raise CertificateError(
                "The PEM data holds no readable certificate.", field="certificate"
            ) from error
        if b"PRIVATE KEY-----" not in data:
            return cls._from_parts(certificate, None, "PEM")
        return cls._from_parts(certificate, _load_pem_key(data, password), "PEM")

    @classmethod
    def from_base64(cls, text: str, password: bytes | None) -> Identity:
        """Read a base64 PFX, as given to --from-base64 or written by new-certificate -e."""
        compact = "".join(text.removeprefix("\ufeff").split())
        if not compact:
            raise CertificateError("The base64 certificate is empty.", field="certificate")
        try:
            data = base64.b64decode(compact, validate=True)
        except binascii.Error as error:
            raise CertificateError(
                f"The base64 certificate is not valid base64 ({error}).", field="certificate"
            ) from error
        return cls.from_pfx(data, password)

    @classmethod
    def _from_parts(
        cls,
        certificate: x509.Certificate | None,
        key: PrivateKeyTypes | None,
        kind: str,
    ) -> Identity:
        if key is None:
            raise CertificateError(
                f"The {kind} holds no private key: Tentacle needs the certificate together with "
                "its private key.",
                "Export it again including the private key.",
                field="certificate",
            )
        if certificate is None:
            raise CertificateError(
                f"The {kind} holds no certificate for its private key.", field="certificate"
            )
        return cls(certificate, key)  # type: ignore[arg-type]  # __post_init__ checks the type


def _public_der(key: PublicKeyTypes) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _load_pem_key(data: bytes, password: bytes | None) -> PrivateKeyTypes:
    """Read the key; a password given for a key in clear is not needed, so not an error."""
    for candidate in dict.fromkeys([password, None]):
        try:
            return serialization.load_pem_private_key(data, candidate)
        except TypeError:  # a password was missing, or given for a key in clear
            continue
        except ValueError as error:
            raise CertificateError(
                "The PEM private key could not be read: the password is wrong or the key is "
                "damaged.",
                field="password",
            ) from error
    raise CertificateError("The PEM private key is encrypted: give its password.", field="password")


def _secret_bytes(value: bytes, what: str) -> bytes:
    if not isinstance(value, bytes) or not 0 < len(value) <= _MAXIMUM_PASSPHRASE:
        raise CertificateError(
            f"The {what} password is not valid: it must be 1 to {_MAXIMUM_PASSPHRASE} bytes.",
            "Use no password at all rather than an empty one.",
            field="password",
        )
    return value


def load_identity_file(path: Path, password: bytes | None) -> Identity:
    """Read a certificate file as import-certificate --from-file does.

    A .pfx is PKCS#12; any other file is PEM if it has PEM armour, else base64 text of a
    PFX, else a binary PFX (Tentacle tries base64 first and PFX on a format error).
    """
    path = Path(path)
    if not path.is_file():
        raise CertificateError(f"Certificate '{path}' was not found.", field="file")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise CertificateError(
            f"Certificate '{path}' could not be read: {error.strerror}.", field="file"
        ) from error
    try:
        return _identity_from_bytes(data, password, path.suffix.lower() == ".pfx")
    except CertificateError as error:
        raise CertificateError(
            f"Certificate '{path}' could not be imported: {error.message}",
            error.remedy,
            field=error.field,
        ) from error


def _identity_from_bytes(data: bytes, password: bytes | None, is_pfx: bool) -> Identity:
    if is_pfx:
        return Identity.from_pfx(data, password)
    if b"-----BEGIN" in data:
        return Identity.from_pem(data, password)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return Identity.from_pfx(data, password)
    return Identity.from_base64(text, password)


def generate_certificate(
    common_name: str = DEFAULT_COMMON_NAME, key_size: int = MINIMUM_KEY_SIZE
) -> Identity:
    """A new self-signed identity shaped exactly like one from Tentacle's new-certificate."""
    _check_common_name(common_name)
    _check_key_size(key_size)
    key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    midnight = datetime.combine(datetime.now(UTC).date(), time(), UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(secrets.randbelow(2**63 - 1) + 1)
        .not_valid_before(midnight - timedelta(days=1))
        .not_valid_after(_add_years(midnight, VALIDITY_YEARS))
        .sign(key, hashes.SHA256())
    )
    return Identity(certificate, key)


def _add_years(moment: datetime, years: int) -> datetime:
    """Like .NET's AddYears: 29 February becomes 28 February in a year that has none."""
    try:
        return moment.replace(year=moment.year + years)
    except ValueError:
        return moment.replace(year=moment.year + years, day=28)


def _check_common_name(common_name: str) -> None:
    if not isinstance(common_name, str) or not 0 < len(common_name.strip()) <= _MAXIMUM_COMMON_NAME:
        raise CertificateError(
            f"Common name {common_name!r} is not valid: it must be 1 to "
            f"{_MAXIMUM_COMMON_NAME} characters and not blank.",
            field="common_name",
        )


def _check_key_size(key_size: int) -> None:
    if (
        not isinstance(key_size, int)
        or isinstance(key_size, bool)
        or not MINIMUM_KEY_SIZE <= key_size <= MAXIMUM_KEY_SIZE
    ):
        raise CertificateError(
            f"Key size {key_size!r} is not valid: an RSA key must be {MINIMUM_KEY_SIZE} to "
            f"{MAXIMUM_KEY_SIZE} bits; smaller keys can be broken.",
            field="key_size",
        )


def write_tls_files(
    identity: Identity, directory: Path, name: str, passphrase: bytes
) -> tuple[Path, Path]:
    """Write `<name>.cert.pem` (0644) and `<name>.key.pem` (0600, encrypted) for ssl contexts.

    The pair is written as one change: both files are staged before either replaces the old
    one, so a failure leaves the previous pair in place rather than a key that fits no cert.
    """
    if not isinstance(name, str) or not _FILE_NAME.fullmatch(name):
        raise CertificateError(
            f"TLS file name {name!r} is not valid: it must be 1 to 100 letters, digits, '.', '_' "
            "or '-', starting with a letter or digit (no path separators).",
            field="name",
        )
    key_pem = identity.private_key_pem(passphrase)
    directory = Path(directory)
    make_private_directory(directory)
    cert_path = directory / f"{name}.cert.pem"
    key_path = directory / f"{name}.key.pem"
    write_atomically(
        PendingFile(key_path, key_pem, 0o600),
        PendingFile(cert_path, identity.certificate_pem(), 0o644),
    )
    return cert_path, key_path
