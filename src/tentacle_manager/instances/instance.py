"""One opened instance: its config, its secrets, its own certificate, and whom it trusts.

The certificate lives where Tentacle keeps it (`Tentacle.Certificate`, a base64 PFX), but
encrypted with AES-GCM under a key held by the OS keyring, or by an owner-only file outside
the home where no keyring exists. TLS needs files, so the agent's and the admin's keys are
written as PEM files encrypted with a passphrase from the same store: a private key never
sits in the home unencrypted.

Trust: `configure --trust` records a thumbprint in TrustedOctopusServers, as Tentacle does.
Verifying a peer takes its certificate, so `configure --trust=<certificate file>` also keeps
the certificate under `<home>/Trust/`; the admin certificate made with the instance is
trusted always.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from tentacle_manager.instances.certificates import (
    Identity,
    generate_certificate,
    thumbprint,
    write_tls_files,
)
from tentacle_manager.instances.errors import InstanceError
from tentacle_manager.instances.home import HomeLayout
from tentacle_manager.instances.registry import (
    SelectedInstance,
    index_file_name,
    machine_config_home,
)
from tentacle_manager.instances.secrets import SecretCipher, SecretStore, choose_store
from tentacle_manager.instances.tentacle_config import TentacleConfig, TentacleConfigFile

CONFIG_KEY_SECRET = "config-value-key"
TLS_PASSPHRASE_SECRET = "tls-key-passphrase"
AGENT_TLS_NAME = "agent"
ADMIN_TLS_NAME = "admin"
CERTIFICATES_FOLDER = "Certificates"
TRUST_FOLDER = "Trust"


@dataclass(frozen=True)
class TlsFiles:
    certificate: Path
    private_key: Path
    passphrase: bytes


@dataclass(frozen=True)
class TrustedCertificates:
    admin: x509.Certificate | None
    servers: list[x509.Certificate]
    missing: list[str]  # trusted thumbprints with no certificate on file


class Instance:
    def __init__(self, selected: SelectedInstance, machine_home: Path | None = None) -> None:
        self.name = selected.name
        self.config_path = selected.configuration_file_path
        self._machine_home = machine_home or machine_config_home()
        self.secrets: SecretStore = choose_store(self.secret_service, self.secret_fallback)
        self.cipher = SecretCipher(self.secrets, CONFIG_KEY_SECRET)
        self.config_file = TentacleConfigFile(self.config_path, self.cipher)

    @property
    def key(self) -> str:
        """A file-name-safe name for this instance's secrets."""
        if self.name:
            return index_file_name(self.name).removesuffix(".config")
        digest = hashlib.sha256(str(self.config_path).encode()).hexdigest()[:16]
        return f"config-{digest}"

    @property
    def secret_service(self) -> str:
        return f"TentacleManager/{self.key}"

    @property
    def secret_fallback(self) -> Path:
        """Outside the home on purpose: copying a home must not copy the key to its secrets."""
        return self._machine_home / "Tentacle" / "Secrets" / f"{self.key}.json"

    def config(self) -> TentacleConfig:
        return self.config_file.load()

    def layout(self) -> HomeLayout:
        home = self.config().home
        if home is None:
            raise InstanceError(
                f"The instance's configuration {self.config_path} has no Octopus.Home.",
                "Set it with `tentacle configure --home=<folder>`.",
            )
        return HomeLayout(home)

    # --- the agent's own certificate -------------------------------------------------------------

    def identity(self) -> Identity | None:
        stored = self.config().certificate()
        if stored is None:
            return None
        return Identity.from_pfx(base64.b64decode(stored.pfx_base64), None)

    def install_identity(self, identity: Identity) -> None:
        pfx = base64.b64encode(identity.to_pfx(None)).decode("ascii")
        with self.config_file.edit() as config:
            config.set_certificate(pfx, identity.thumbprint)

    def agent_tls_files(self) -> TlsFiles:
        """The agent's certificate as TLS files, made anew from the config each time."""
        identity = self.identity()
        if identity is None:
            raise InstanceError(
                "No certificate has been generated for this Tentacle.",
                "Run `tentacle new-certificate` first.",
            )
        return self._tls_files(identity, AGENT_TLS_NAME)

    # --- the local admin certificate ---------------------------------------------------------

    def admin_tls_files(self, create: bool = False) -> TlsFiles:
        """The admin client's files; the folder is readable only by whoever made the instance
        (root or the admin when system-wide)."""
        folder = self.layout().home / CERTIFICATES_FOLDER
        cert, key = folder / f"{ADMIN_TLS_NAME}.cert.pem", folder / f"{ADMIN_TLS_NAME}.key.pem"
        if not (cert.exists() and key.exists()):
            if not create:
                raise InstanceError(
                    f"The local admin certificate is missing from {folder}.",
                    "Run `tentacle create-instance` again as the user who created the instance; "
                    "it keeps the configuration and makes a new admin certificate.",
                )
            return self._tls_files(generate_certificate("Tentacle Manager admin"), ADMIN_TLS_NAME)
        return TlsFiles(cert, key, self._tls_passphrase())

    # --- trust -------------------------------------------------------------------------------

    def keep_trusted_certificate(self, certificate: x509.Certificate) -> str:
        """Store a peer's certificate so the agent can verify it; returns its thumbprint."""
        folder = self.layout().home / TRUST_FOLDER
        folder.mkdir(mode=0o755, parents=True, exist_ok=True)
        name = thumbprint(certificate)
        (folder / f"{name}.pem").write_bytes(certificate.public_bytes(Encoding.PEM))
        return name

    def trusted_certificates(self) -> TrustedCertificates:
        home = self.layout().home
        admin_file = home / CERTIFICATES_FOLDER / f"{ADMIN_TLS_NAME}.cert.pem"
        admin = (
            x509.load_pem_x509_certificate(admin_file.read_bytes()) if admin_file.exists() else None
        )
        servers, missing = [], []
        for server in self.config().trusted_servers:
            file = home / TRUST_FOLDER / f"{server.thumbprint}.pem"
            if file.exists():
                servers.append(x509.load_pem_x509_certificate(file.read_bytes()))
            else:
                missing.append(server.thumbprint)
        return TrustedCertificates(admin, servers, missing)

    # --- internals -----------------------------------------------------------------------------

    def _tls_passphrase(self) -> bytes:
        passphrase = self.secrets.get(TLS_PASSPHRASE_SECRET)
        if passphrase is None:
            passphrase = base64.b64encode(os.urandom(32)).decode("ascii")
            self.secrets.set(TLS_PASSPHRASE_SECRET, passphrase)
        return passphrase.encode("ascii")

    def _tls_files(self, identity: Identity, name: str) -> TlsFiles:
        passphrase = self._tls_passphrase()
        folder = self.layout().home / CERTIFICATES_FOLDER
        cert, key = write_tls_files(identity, folder, name, passphrase)
        return TlsFiles(cert, key, passphrase)
