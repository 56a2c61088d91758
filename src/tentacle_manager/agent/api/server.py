"""The API server: aiohttp behind the TLS gate, serving one script service."""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import dataclass

from aiohttp import web

from tentacle_manager.agent.api.callers import TRUST, require_trusted_caller
from tentacle_manager.agent.api.errors import errors_as_json
from tentacle_manager.agent.api.gate import TlsGate
from tentacle_manager.agent.api.routes import FACTS, SERVICE, STOPPING, AgentFacts, add_routes
from tentacle_manager.agent.api.tls import ServerIdentity, server_context
from tentacle_manager.agent.api.trust import TrustList
from tentacle_manager.agent.scripts import ScriptService

log = logging.getLogger(__name__)

# A StartScriptCommand carries its script files inline; 32 MiB is far more than any real
# script and far less than what would hurt the agent.
DEFAULT_MAX_BODY = 32 * 1024 * 1024
# How long requests in flight may finish when the agent stops. A start request still waiting
# for its script is then cut short; the script keeps running and the next agent adopts it.
SHUTDOWN_SECONDS = 5.0


@dataclass(frozen=True)
class Listen:
    """Where to listen. An empty host means every address (IPv6 dual-stack where available)."""

    host: str
    port: int


class AgentApiServer:
    def __init__(
        self,
        service: ScriptService,
        identity: ServerIdentity,
        trust: TrustList,
        facts: AgentFacts,
        max_body: int = DEFAULT_MAX_BODY,
    ) -> None:
        self._context = server_context(identity, trust)
        self._trust = trust
        app = web.Application(
            middlewares=[errors_as_json, require_trusted_caller], client_max_size=max_body
        )
        app[SERVICE] = service
        app[FACTS] = facts
        app[TRUST] = trust
        app[STOPPING] = self._stopping = asyncio.Event()
        add_routes(app)
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_SECONDS
        )
        self._server: asyncio.Server | None = None

    async def start(self, listen: Listen) -> list[tuple[str, int]]:
        """Listen and return the bound addresses (the port is chosen when `listen.port` is 0)."""
        await self._runner.setup()
        http = self._runner.server
        assert http is not None
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: TlsGate(self._context, self._trust, http),
            host=listen.host or None,
            port=listen.port,
            family=socket.AF_UNSPEC,
            reuse_address=True,
        )
        bound = [sock.getsockname()[:2] for sock in self._server.sockets]
        log.info("Agent listening on: %s", ", ".join(f"{h}:{p}" for h, p in bound))
        return bound

    async def stop(self) -> None:
        """Stop listening, close open connections, and let in-flight requests end."""
        self._stopping.set()
        server, self._server = self._server, None
        if server is not None:
            server.close()
        await self._runner.cleanup()
        if server is not None:
            await server.wait_closed()
