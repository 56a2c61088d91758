"""new-certificate, import-certificate and show-thumbprint, run as a real program."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, pkcs12
from cryptography.x509.oid import NameOID

from tentacle_manager.instances.certificates import thumbprint
from tentacle_manager.instances.instance import Instance
from tentacle_manager.instances.registry import SelectedInstance
from tentacle_manager.instances.secrets import OVERRIDE_VARIABLE as SECRET_STORE_VARIABLE
from tests.certificate_support import hand_made
from tests.test_cli_instances import Cli, setting

THUMBPRINT_KEY = "Tentacle.CertificateThumbprint"
CERTIFICATE_KEY = "Tentacle.Certificate"
RESTART = "These changes require a restart of the Tentacle."


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


def announced_thumbprint(stdout: str, outcome: str) -> str:
    """new-certificate prints the outcome line, then the thumbprint on its own line."""
    lines = stdout.splitlines()
    index = lines.index(f"A new certificate has been generated and {outcome}. Thumbprint:")
    return lines[index + 1]


def small_key_pfx(password: bytes) -> tuple[str, str]:
    """A 1024-bit certificate as base64 PFX (Tentacle warns on these); and its thumbprint."""
    old = hand_made("Old Tentacle", key_size=1024, valid_for=timedelta(days=31))
    key, certificate = old.private_key, old.certificate
    pfx = pkcs12.serialize_key_and_certificates(
        None, key, certificate, None, BestAvailableEncryption(password)
    )
    return base64.b64encode(pfx).decode("ascii"), thumbprint(certificate)


def test_new_certificate_installs_a_tentacle_shaped_certificate_encrypted(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = cli.add_instance("X")

    created = cli.run("new-certificate", "--instance", "X")

    assert created.returncode == 0, created.stderr
    installed = announced_thumbprint(created.stdout, "installed")
    assert created.stdout.splitlines()[-1] == RESTART
    assert setting(config, THUMBPRINT_KEY) == installed
    stored = setting(config, CERTIFICATE_KEY) or ""
    assert stored.startswith("tm1:")
    with pytest.raises(ValueError):  # sealed, not the plain base64 PFX Tentacle keeps
        pkcs12.load_key_and_certificates(base64.b64decode(stored.removeprefix("tm1:")), None)
    monkeypatch.setenv(SECRET_STORE_VARIABLE, "file")
    instance = Instance(SelectedInstance("X", config), machine_home=cli.machine_home)
    identity = instance.identity()
    assert identity is not None and identity.thumbprint == installed
    certificate = identity.certificate
    expected_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Octopus Tentacle")])
    assert certificate.subject == certificate.issuer == expected_name
    assert isinstance(identity.private_key, rsa.RSAPrivateKey)
    assert identity.private_key.key_size == 2048
    assert isinstance(certificate.signature_hash_algorithm, hashes.SHA256)
    midnight = datetime.combine(datetime.now(UTC).date(), time(), UTC)
    assert certificate.not_valid_before_utc == midnight - timedelta(days=1)
    assert certificate.not_valid_after_utc.year == midnight.year + 100

    export = cli.root / "thumbprint.txt"
    text, as_json, exported, if_blank = cli.run_all(
        ["show-thumbprint", "--instance", "X"],
        ["show-thumbprint", "--instance", "X", "--format=JSON"],
        ["show-thumbprint", "--instance", "X", "-e", str(export)],
        ["new-certificate", "--instance", "X", "--if-blank"],
    )
    assert text.stdout == installed and text.stderr == ""
    assert as_json.stdout == f'{{"Thumbprint":"{installed}"}}'
    assert exported.stdout == "" and export.read_text() == installed
    assert if_blank.stdout == "A certificate already exists, no changes will be applied.\n"
    assert setting(config, THUMBPRINT_KEY) == installed


def test_show_thumbprint_without_a_certificate_prints_nothing_or_null(cli: Cli) -> None:
    cli.add_instance("X")

    text, as_json = cli.run_all(["show-thumbprint"], ["show-thumbprint", "--format", "json"])

    assert (text.returncode, text.stdout) == (0, "")
    assert (as_json.returncode, as_json.stdout) == (0, '{"Thumbprint":null}')


def test_exports_are_owner_only_refuse_other_modes_and_import_back(cli: Cli) -> None:
    config = cli.add_instance("X")
    base64_file, pfx_file = cli.root / "new.txt", cli.root / "new.pfx"

    both_blank, both_exports, no_password, pfx, text = cli.run_all(
        ["new-certificate", "--if-blank", "--export-pfx", str(pfx_file)],
        ["new-certificate", "-e", str(base64_file), "--export-pfx", str(pfx_file)],
        ["new-certificate", "--export-pfx", str(pfx_file)],
        ["new-certificate", "--export-pfx", str(pfx_file), "--pfx-password", "s3cret"],
        ["new-certificate", "--export-file", str(base64_file)],
    )

    assert both_blank.returncode == 1
    assert (
        "Invalid command: --if-blank and --export-pfx cannot be specified together"
        in both_blank.stderr
    )
    assert both_exports.returncode == 1
    assert "--export-file and --export-pfx cannot be specified together" in both_exports.stderr
    assert no_password.returncode == 1 and "--pfx-password" in no_password.stderr
    assert pfx.returncode == 0 and text.returncode == 0, pfx.stderr + text.stderr
    assert setting(config, THUMBPRINT_KEY) is None  # exports install nothing
    assert pfx_file.stat().st_mode & 0o777 == 0o600
    assert base64_file.stat().st_mode & 0o777 == 0o600
    _, pfx_certificate, _ = pkcs12.load_key_and_certificates(pfx_file.read_bytes(), b"s3cret")
    assert pfx_certificate is not None
    assert thumbprint(pfx_certificate) == announced_thumbprint(pfx.stdout, f"written to {pfx_file}")
    exported = base64_file.read_bytes()
    assert exported.startswith(b"\xef\xbb\xbf")  # UTF-8 with a BOM, as Tentacle writes it
    pkcs12.load_key_and_certificates(base64.b64decode(exported[3:]), None)

    imported = cli.run("import-certificate", "--from-file", str(base64_file))

    assert imported.returncode == 0, imported.stderr
    expected = announced_thumbprint(text.stdout, f"written to {base64_file}")
    assert f"Certificate with thumbprint {expected} imported successfully." in imported.stdout
    assert imported.stdout.splitlines()[-1] == RESTART
    assert setting(config, THUMBPRINT_KEY) == expected


def test_import_from_base64_warns_about_a_small_key(cli: Cli) -> None:
    config = cli.add_instance("X")
    pfx, expected = small_key_pfx(b"pw")

    imported = cli.run("import-certificate", "-b", pfx, "--pfx-password", "pw")

    assert imported.returncode == 0, imported.stderr
    assert "RSA key is 1024 bits; 2048 bits or more is recommended" in imported.stdout
    assert f"Certificate with thumbprint {expected} imported successfully." in imported.stdout
    assert setting(config, THUMBPRINT_KEY) == expected


def test_import_errors_name_the_source_and_change_nothing(cli: Cli) -> None:
    config = cli.add_instance("X")
    pfx, _ = small_key_pfx(b"right")
    before = config.read_bytes()

    none, two, registry, missing, wrong_password = cli.run_all(
        ["import-certificate"],
        ["import-certificate", "--from-file", "a.pfx", "--from-base64", pfx],
        ["import-certificate", "--from-registry"],
        ["import-certificate", "-f", "missing.pfx"],
        ["import-certificate", "-b", pfx, "--pw", "wrong"],
    )

    results = (none, two, registry, missing, wrong_password)
    assert [r.returncode for r in results] == [1] * 5
    assert none.stderr == "Please specify the certificate to import.\n"
    assert two.stderr.startswith(
        "Please specify only one of either from-registry or from-file or from-base64"
    )
    assert "--from-registry is only supported on Windows" in registry.stderr
    assert "Certificate 'missing.pfx' was not found." in missing.stderr
    assert wrong_password.stderr.startswith("--from-base64: ")
    assert "password is wrong" in wrong_password.stderr
    assert all("Traceback" not in r.stderr for r in results)
    assert config.read_bytes() == before
