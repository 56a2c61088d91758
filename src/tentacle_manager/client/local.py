"""The client of this machine's agent: the instance's admin certificate, the agent's own
thumbprint, and the loopback address it listens on."""

from __future__ import annotations

from tentacle_manager.client.agent_client import HttpsAgent
from tentacle_manager.client.tls import ClientIdentity
from tentacle_manager.instances.errors import InstanceError
from tentacle_manager.instances.instance import Instance

ANY_ADDRESS = {"", "0.0.0.0", "::"}


def local_agent(instance: Instance) -> HttpsAgent:
    config = instance.config()
    if config.no_listen:
        raise InstanceError(
            "This Tentacle does not listen on a port (NoListen), so it cannot be reached.",
            "Run `tentacle configure --noListen=false` and restart the agent.",
        )
    thumbprint = config.certificate_thumbprint
    if thumbprint is None:
        raise InstanceError(
            "No certificate has been generated for this Tentacle.",
            "Run `tentacle new-certificate`, then start the agent.",
        )
    host = config.listen_ip or ""
    host = "127.0.0.1" if host in ANY_ADDRESS else host
    address = f"https://[{host}]:{config.port}" if ":" in host else f"https://{host}:{config.port}"
    files = instance.admin_tls_files()
    return HttpsAgent(
        address, ClientIdentity(files.certificate, files.private_key, files.passphrase), thumbprint
    )
