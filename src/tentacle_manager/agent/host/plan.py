"""Turning an instance's configuration into what a running agent needs."""

from __future__ import annotations

import logging
import os

from tentacle_manager.agent.api.server import Listen
from tentacle_manager.agent.api.tls import ServerIdentity
from tentacle_manager.agent.api.trust import Role, TrustedClient, TrustList
from tentacle_manager.agent.host.run import AgentPlan
from tentacle_manager.agent.scripts import ScriptServiceSettings
from tentacle_manager.instances.certificates import generate_certificate
from tentacle_manager.instances.instance import Instance

log = logging.getLogger(__name__)


def plan_for(instance: Instance) -> AgentPlan:
    config = instance.config()
    layout = instance.layout()
    layout.ensure()
    if instance.identity() is None:  # as Tentacle's agent does on its first start
        identity = generate_certificate()
        instance.install_identity(identity)
        log.info("Generated the agent's certificate %s", identity.thumbprint)
    tls = instance.agent_tls_files()
    trusted = instance.trusted_certificates()
    for missing in trusted.missing:
        log.warning(
            "Trusted thumbprint %s has no certificate on file, so no client can prove it holds "
            "it; run `tentacle configure --trust=<its certificate file>`",
            missing,
        )
    clients = [TrustedClient(c, Role.SERVER) for c in trusted.servers]
    if trusted.admin is not None:
        clients.append(TrustedClient(trusted.admin, Role.ADMIN))
    return AgentPlan(
        instance=instance.name or str(instance.config_path),
        home=layout.home,
        listen=None if config.no_listen else Listen(config.listen_ip or "", config.port),
        identity=ServerIdentity(tls.certificate, tls.private_key, tls.passphrase),
        trust=TrustList(clients),
        settings=ScriptServiceSettings.from_environment(os.environ),
    )
