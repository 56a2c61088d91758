"""A real agent API on loopback TLS for tests: certificates, the server, and clients."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from tentacle_manager.agent.api.routes import AgentFacts
from tentacle_manager.agent.api.server import AgentApiServer, Listen
from tentacle_manager.agent.api.tls import ServerIdentity
from tentacle_manager.agent.api.trust import Role, TrustedClient, TrustList
from tentacle_manager.agent.scripts import ScriptService
from tentacle_manager.client.agent_client import HttpsAgent
from tentacle_manager.client.tls import ClientIdentity
from tentacle_manager.contracts import utc_now
from tentacle_manager.instances.certificates import (
    Identity,
    generate_certificate,
    write_tls_files,
)
from tests.certificate_support import hand_made

PASSPHRASE = b"test passphrase"


def expired_copy(identity: Identity) -> Identity:
    """The same key under a certificate that expired yesterday."""
    return hand_made(
        "Octopus Tentacle",
        key=identity.private_key,
        valid_from=timedelta(days=-30),
        valid_for=timedelta(days=29),
    )


@dataclass(frozen=True)
class Pki:
    """Every party of the tests: the agent, its admin, a trusted server, and two outsiders."""

    agent: Identity
    admin: Identity
    server: Identity
    stranger: Identity
    expired: Identity

    @classmethod
    def create(cls) -> Pki:
        admin = generate_certificate()
        return cls(
            agent=generate_certificate(),
            admin=admin,
            server=generate_certificate(),
            stranger=generate_certificate(),
            expired=expired_copy(admin),
        )

    def trust(self) -> TrustList:
        return TrustList(
            [
                TrustedClient(self.admin.certificate, Role.ADMIN),
                TrustedClient(self.server.certificate, Role.SERVER),
                TrustedClient(self.expired.certificate, Role.SERVER),
            ]
        )


def client_identity(identity: Identity, directory: Path, name: str) -> ClientIdentity:
    cert, key = write_tls_files(identity, directory, name, PASSPHRASE)
    return ClientIdentity(cert, key, PASSPHRASE)


@asynccontextmanager
async def running_agent(
    service: ScriptService, pki: Pki, directory: Path, **options: int
) -> AsyncIterator[str]:
    """Serve `service` on a free loopback port; yields the agent's https address."""
    cert, key = write_tls_files(pki.agent, directory, "agent", PASSPHRASE)
    server = AgentApiServer(
        service,
        ServerIdentity(cert, key, PASSPHRASE),
        pki.trust(),
        AgentFacts(instance="Tentacle", started=utc_now()),
        **options,
    )
    [(_, port), *_] = await server.start(Listen("127.0.0.1", 0))
    try:
        yield f"https://127.0.0.1:{port}"
    finally:
        await server.stop()


def agent_client(address: str, pki: Pki, who: Identity, directory: Path, name: str) -> HttpsAgent:
    return HttpsAgent(address, client_identity(who, directory, name), pki.agent.thumbprint)
