"""A bare agent for the API benchmark: script service + API server, nothing else, in its own
process, so the client's and the agent's work do not share one event loop.

Usage: python -m benchmarks.api_agent HOME CERT_DIR   (prints "PORT <n>", stops on SIGTERM)
CERT_DIR holds agent.cert.pem, agent.key.pem and client.cert.pem; the key passphrase is in
the TENTACLE_BENCH_PASSPHRASE environment variable.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from cryptography import x509

from benchmarks.common import settings
from tentacle_manager.agent.api.routes import AgentFacts
from tentacle_manager.agent.api.server import AgentApiServer, Listen
from tentacle_manager.agent.api.tls import ServerIdentity
from tentacle_manager.agent.api.trust import Role, TrustedClient, TrustList
from tentacle_manager.agent.scripts import ScriptService
from tentacle_manager.contracts import utc_now


async def serve(home: Path, certificates: Path) -> None:
    passphrase = os.environ["TENTACLE_BENCH_PASSPHRASE"].encode()
    client = x509.load_pem_x509_certificate((certificates / "client.cert.pem").read_bytes())
    service = ScriptService(home, settings())
    await service.open()
    server = AgentApiServer(
        service,
        ServerIdentity(certificates / "agent.cert.pem", certificates / "agent.key.pem", passphrase),
        TrustList([TrustedClient(client, Role.ADMIN)]),
        AgentFacts(instance="bench", started=utc_now()),
    )
    [(_, port), *_] = await server.start(Listen("127.0.0.1", 0))
    print(f"PORT {port}", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.stop()
    await service.close()


if __name__ == "__main__":
    logging.getLogger("tentacle_manager").setLevel(logging.ERROR)
    asyncio.run(serve(Path(sys.argv[1]), Path(sys.argv[2])))
