"""Certificates: Tentacle's shape, thumbprints, PFX/PEM/base64 round trips and TLS key files."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import ssl
import stat
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from tentacle_manager.instances.certificates import (
    CertificateError,
    Identity,
    generate_certificate,
    load_identity_file,
    normalise_thumbprint,
    thumbprint,
    write_tls_files,
)
from tests.certificate_support import hand_made


@pytest.fixture(scope="module")
def identity() -> Identity:
    return generate_certificate()


@pytest.fixture(scope="module")
def other_identity() -> Identity:
    return generate_certificate("Octopus Server")


@pytest.fixture(scope="module")
def weak_identity() -> Identity:
    """A 1024-bit identity such as an old import might bring; built by hand, as we refuse it."""
    return hand_made("weak", key_size=1024, valid_for=timedelta(days=2))


def _key_numbers(identity: Identity) -> object:
    return identity.private_key.private_numbers()


# --- generation -----------------------------------------------------------------------------


def test_generated_certificate_has_tentacles_shape(identity: Identity) -> None:
    before = datetime.now(UTC).date()
    certificate = identity.certificate
    after = datetime.now(UTC).date()

    expected_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Octopus Tentacle")])
    assert certificate.subject == expected_name
    assert certificate.issuer == expected_name
    assert isinstance(identity.private_key, rsa.RSAPrivateKey)
    assert identity.private_key.key_size == 2048
    assert isinstance(certificate.signature_hash_algorithm, hashes.SHA256)
    assert certificate.signature_algorithm_oid == x509.SignatureAlgorithmOID.RSA_WITH_SHA256
    assert len(certificate.extensions) == 0
    assert certificate.version is x509.Version.v3
    assert 1 <= certificate.serial_number <= 2**63 - 1
    certificate.verify_directly_issued_by(certificate)

    midnights = {datetime.combine(day, time(), UTC) for day in (before, after)}
    assert certificate.not_valid_before_utc in {m - timedelta(days=1) for m in midnights}
    midnight = certificate.not_valid_before_utc + timedelta(days=1)
    assert certificate.not_valid_after_utc == midnight.replace(year=midnight.year + 100)
    assert identity.not_valid_after == certificate.not_valid_after_utc
    assert identity.warnings == ()


def test_generated_certificates_differ(identity: Identity, other_identity: Identity) -> None:
    assert identity.certificate.serial_number != other_identity.certificate.serial_number
    assert identity.thumbprint != other_identity.thumbprint
    assert other_identity.certificate.subject.rfc4514_string() == "CN=Octopus Server"


@pytest.mark.parametrize("key_size", [1024, 2047, 0, -2048, 32768, True, "2048", 2048.0])
def test_generation_rejects_weak_or_odd_key_sizes(key_size: object) -> None:
    with pytest.raises(
        CertificateError, match=r"Key size .* is not valid: an RSA key must be 2048"
    ):
        generate_certificate(key_size=key_size)  # type: ignore[arg-type]


@pytest.mark.parametrize("common_name", ["", "   ", "x" * 65, None])
def test_generation_rejects_bad_common_names(common_name: object) -> None:
    with pytest.raises(CertificateError, match=r"Common name .* is not valid: it must be 1 to 64"):
        generate_certificate(common_name)  # type: ignore[arg-type]


# --- thumbprints ----------------------------------------------------------------------------


def test_thumbprint_is_upper_hex_sha1_of_der(identity: Identity) -> None:
    der = identity.certificate.public_bytes(serialization.Encoding.DER)
    assert thumbprint(identity.certificate) == hashlib.sha1(der).hexdigest().upper()
    assert re.fullmatch(r"[0-9A-F]{40}", identity.thumbprint)


@pytest.mark.parametrize(
    "text",
    [
        "e97abc12f6512679b2ca608846a369a9b4847ad5",
        "E9:7A:BC:12:F6:51:26:79:B2:CA:60:88:46:A3:69:A9:B4:84:7A:D5",
        " e9 7a bc 12 f6 51 26 79 b2 ca 60 88 46 a3 69 a9 b4 84 7a d5 ",
    ],
)
def test_normalise_thumbprint_accepts_pasted_forms(text: str) -> None:
    assert normalise_thumbprint(text) == "E97ABC12F6512679B2CA608846A369A9B4847AD5"


@pytest.mark.parametrize(
    "text", ["", "ABC", "E97ABC12F6512679B2CA608846A369A9B4847AD", "G" * 40, "A" * 41, "A-" * 20]
)
def test_normalise_thumbprint_rejects_non_thumbprints(text: str) -> None:
    with pytest.raises(CertificateError, match="must be 40 hexadecimal characters") as caught:
        normalise_thumbprint(text)
    assert caught.value.field == "thumbprint"


def test_normalise_thumbprint_rejects_non_text() -> None:
    with pytest.raises(CertificateError, match="Thumbprint None is not valid"):
        normalise_thumbprint(None)  # type: ignore[arg-type]


# --- PFX, PEM, base64 -------------------------------------------------------------------------


@pytest.mark.parametrize("password", [None, b"s3cret"])
def test_pfx_round_trip(identity: Identity, password: bytes | None) -> None:
    loaded = Identity.from_pfx(identity.to_pfx(password), password)
    assert loaded.thumbprint == identity.thumbprint
    assert _key_numbers(loaded) == _key_numbers(identity)


def test_unprotected_pfx_loads_whatever_the_password(identity: Identity) -> None:
    assert Identity.from_pfx(identity.to_pfx(None), b"not needed").thumbprint == identity.thumbprint


@pytest.mark.parametrize("password", [b"wrong", None])
def test_pfx_with_wrong_or_missing_password_is_refused(
    identity: Identity, password: bytes | None
) -> None:
    with pytest.raises(CertificateError, match="the password is wrong or missing"):
        Identity.from_pfx(identity.to_pfx(b"right"), password)


def test_non_pfx_data_is_refused() -> None:
    with pytest.raises(CertificateError, match=r"not a PFX \(PKCS#12\) file"):
        Identity.from_pfx(b"hello", None)


def test_pfx_without_private_key_is_refused(identity: Identity) -> None:
    keyless = pkcs12.serialize_key_and_certificates(
        None, None, identity.certificate, None, serialization.NoEncryption()
    )
    with pytest.raises(CertificateError, match="The PFX holds no private key"):
        Identity.from_pfx(keyless, None)


def test_pfx_without_certificate_is_refused(identity: Identity) -> None:
    certless = pkcs12.serialize_key_and_certificates(
        None, identity.private_key, None, None, serialization.NoEncryption()
    )
    with pytest.raises(CertificateError, match="The PFX holds no certificate for its private key"):
        Identity.from_pfx(certless, None)


def test_empty_or_non_bytes_passwords_are_refused(identity: Identity) -> None:
    with pytest.raises(CertificateError, match="PFX password is not valid: it must be 1 to"):
        identity.to_pfx(b"")
    with pytest.raises(CertificateError, match="private key password is not valid"):
        identity.private_key_pem(b"")
    with pytest.raises(CertificateError, match="private key password is not valid"):
        identity.private_key_pem("text")  # type: ignore[arg-type]
    with pytest.raises(CertificateError, match="private key password is not valid"):
        identity.private_key_pem(b"x" * 1024)


def test_pem_round_trip_with_encrypted_key(identity: Identity) -> None:
    pem = identity.certificate_pem() + identity.private_key_pem(b"pass")
    loaded = Identity.from_pem(pem, b"pass")
    assert loaded.thumbprint == identity.thumbprint
    assert _key_numbers(loaded) == _key_numbers(identity)


def test_private_key_pem_is_always_encrypted(identity: Identity) -> None:
    pem = identity.private_key_pem(b"pass")
    assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    with pytest.raises(TypeError):
        serialization.load_pem_private_key(pem, None)


def test_pem_key_order_does_not_matter_and_clear_keys_load(identity: Identity) -> None:
    clear_key = identity.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    pem = clear_key + identity.certificate_pem()
    assert Identity.from_pem(pem, None).thumbprint == identity.thumbprint
    assert Identity.from_pem(pem, b"unneeded").thumbprint == identity.thumbprint


def test_pem_with_encrypted_key_needs_the_right_password(identity: Identity) -> None:
    pem = identity.certificate_pem() + identity.private_key_pem(b"pass")
    with pytest.raises(CertificateError, match="private key is encrypted: give its password"):
        Identity.from_pem(pem, None)
    with pytest.raises(CertificateError, match="the password is wrong"):
        Identity.from_pem(pem, b"wrong")


def test_pem_without_key_or_certificate_is_refused(identity: Identity) -> None:
    with pytest.raises(CertificateError, match="The PEM holds no private key"):
        Identity.from_pem(identity.certificate_pem(), None)
    with pytest.raises(CertificateError, match="holds no readable certificate"):
        Identity.from_pem(identity.private_key_pem(b"pass"), b"pass")


def test_key_of_another_certificate_is_refused(
    identity: Identity, other_identity: Identity
) -> None:
    with pytest.raises(CertificateError, match="does not belong to the certificate"):
        Identity(identity.certificate, other_identity.private_key)
    pem = identity.certificate_pem() + other_identity.private_key_pem(b"p")
    with pytest.raises(CertificateError, match="does not belong to the certificate"):
        Identity.from_pem(pem, b"p")


def test_base64_round_trip_tolerates_bom_and_line_breaks(identity: Identity) -> None:
    text = base64.encodebytes(identity.to_pfx(None)).decode()
    assert "\n" in text.strip()
    assert Identity.from_base64("\ufeff" + text, None).thumbprint == identity.thumbprint


@pytest.mark.parametrize(
    ("text", "message"),
    [("", "base64 certificate is empty"), ("not*base64", "not valid base64")],
)
def test_bad_base64_is_refused(text: str, message: str) -> None:
    with pytest.raises(CertificateError, match=message):
        Identity.from_base64(text, None)


def test_short_rsa_keys_load_with_a_warning(weak_identity: Identity) -> None:
    loaded = Identity.from_pfx(weak_identity.to_pfx(None), None)
    assert loaded.warnings == (
        "The certificate's RSA key is 1024 bits; 2048 bits or more is recommended.",
    )


# --- import-certificate --from-file ---------------------------------------------------------


def test_load_identity_file_reads_every_supported_form(identity: Identity, tmp_path: Path) -> None:
    forms = {
        "cert.pfx": identity.to_pfx(b"pw"),
        "CERT.PFX": identity.to_pfx(b"pw"),
        "cert.p12": identity.to_pfx(b"pw"),
        "cert.txt": "\ufeff".encode() + base64.b64encode(identity.to_pfx(b"pw")),
        "cert.pem": identity.certificate_pem() + identity.private_key_pem(b"pw"),
    }
    for name, data in forms.items():
        (tmp_path / name).write_bytes(data)
        assert load_identity_file(tmp_path / name, b"pw").thumbprint == identity.thumbprint, name


def test_load_identity_file_reports_a_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pfx"
    with pytest.raises(CertificateError) as caught:
        load_identity_file(missing, None)
    assert str(caught.value) == f"Certificate '{missing}' was not found."


def test_load_identity_file_names_the_file_in_errors(identity: Identity, tmp_path: Path) -> None:
    path = tmp_path / "cert.pfx"
    path.write_bytes(identity.to_pfx(b"right"))
    with pytest.raises(
        CertificateError, match=rf"Certificate '{re.escape(str(path))}' could not"
    ) as caught:
        load_identity_file(path, b"wrong")
    assert caught.value.field == "password"
    assert caught.value.remedy == "Give the password the PFX was exported with."
    text = tmp_path / "cert.txt"
    text.write_text("this is not a certificate")
    with pytest.raises(CertificateError, match="not valid base64"):
        load_identity_file(text, None)


# --- TLS files ------------------------------------------------------------------------------


def test_write_tls_files_modes_and_encrypted_key(identity: Identity, tmp_path: Path) -> None:
    directory = tmp_path / "tls"
    cert_path, key_path = write_tls_files(identity, directory, "agent", b"passphrase")

    assert (cert_path, key_path) == (directory / "agent.cert.pem", directory / "agent.key.pem")
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(cert_path.stat().st_mode) == 0o644
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    key_text = key_path.read_bytes()
    assert key_text.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert b"BEGIN PRIVATE KEY" not in key_text and b"BEGIN RSA PRIVATE KEY" not in key_text
    assert sorted(p.name for p in directory.iterdir()) == ["agent.cert.pem", "agent.key.pem"]

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path, password=b"passphrase")
    with pytest.raises(ssl.SSLError):
        context.load_cert_chain(cert_path, key_path, password=b"wrong")


def test_write_tls_files_replaces_the_pair(
    identity: Identity, other_identity: Identity, tmp_path: Path
) -> None:
    write_tls_files(identity, tmp_path, "agent", b"one")
    cert_path, key_path = write_tls_files(other_identity, tmp_path, "agent", b"two")
    assert Identity.from_pem(cert_path.read_bytes() + key_path.read_bytes(), b"two").thumbprint == (
        other_identity.thumbprint
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["agent.cert.pem", "agent.key.pem"]


@pytest.mark.parametrize("name", ["", "../agent", "a/b", ".hidden", "x" * 101, None])
def test_write_tls_files_rejects_bad_names(
    identity: Identity, tmp_path: Path, name: object
) -> None:
    with pytest.raises(CertificateError, match=r"TLS file name .* is not valid"):
        write_tls_files(identity, tmp_path / "tls", name, b"pw")  # type: ignore[arg-type]
    assert not (tmp_path / "tls").exists()


def test_write_tls_files_with_bad_passphrase_changes_nothing(
    identity: Identity, other_identity: Identity, tmp_path: Path
) -> None:
    cert_path, key_path = write_tls_files(identity, tmp_path, "agent", b"one")
    before = (cert_path.read_bytes(), key_path.read_bytes())
    with pytest.raises(CertificateError, match="password is not valid"):
        write_tls_files(other_identity, tmp_path, "agent", b"")
    assert (cert_path.read_bytes(), key_path.read_bytes()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["agent.cert.pem", "agent.key.pem"]


async def test_generated_certificates_are_their_own_trust_anchors_in_mutual_tls(
    identity: Identity, other_identity: Identity, tmp_path: Path
) -> None:
    """A Tentacle and a server that trust each other's self-signed certificate can talk."""
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(*write_tls_files(identity, tmp_path, "agent", b"a"), password=b"a")
    server.load_verify_locations(cadata=other_identity.certificate_pem().decode())
    server.verify_mode = ssl.CERT_REQUIRED
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.load_cert_chain(
        *write_tls_files(other_identity, tmp_path, "server", b"s"), password=b"s"
    )
    client.load_verify_locations(cadata=identity.certificate_pem().decode())
    client.check_hostname = False

    seen: list[str] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        seen.append(hashlib.sha1(peer).hexdigest().upper())
        writer.write(await reader.readline())
        await writer.drain()
        writer.close()

    listener = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=server)
    port = listener.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client)
        writer.write(b"ping\n")
        assert await reader.readline() == b"ping\n"
        peer = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        writer.close()
    finally:
        listener.close()
        await listener.wait_closed()
    assert hashlib.sha1(peer).hexdigest().upper() == identity.thumbprint
    assert seen == [other_identity.thumbprint]
