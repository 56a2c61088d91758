"""Who may call the agent: trusted client certificates and the role each one has.

Trust is by certificate, named by its Tentacle-style thumbprint. The TLS layer verifies that a
client holds the private key of one of these exact certificates (each is its own trust anchor),
so an expired certificate or one merely claiming a trusted name is refused by OpenSSL itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from tentacle_manager.instances.certificates import thumbprint, thumbprint_of_der


class Role(StrEnum):
    ADMIN = "admin"  # the local admin certificate created with the instance
    SERVER = "server"  # a remote orchestrator added with `configure --trust`


@dataclass(frozen=True)
class TrustedClient:
    certificate: x509.Certificate
    role: Role

    @property
    def thumbprint(self) -> str:
        return thumbprint(self.certificate)


class TrustList:
    """The trusted clients, looked up by the thumbprint of the certificate a caller presented."""

    def __init__(self, clients: Iterable[TrustedClient]) -> None:
        self._by_thumbprint = {client.thumbprint: client for client in clients}

    def role_of(self, der: bytes | None) -> Role | None:
        if der is None:
            return None
        client = self._by_thumbprint.get(thumbprint_of_der(der))
        return client.role if client else None

    @property
    def thumbprints(self) -> list[str]:
        return sorted(self._by_thumbprint)

    def anchors_pem(self) -> str:
        """Every trusted certificate as PEM, for SSLContext.load_verify_locations(cadata=...)."""
        return "".join(
            client.certificate.public_bytes(Encoding.PEM).decode("ascii")
            for client in self._by_thumbprint.values()
        )

    def __len__(self) -> int:
        return len(self._by_thumbprint)
