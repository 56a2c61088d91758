"""The life of a running agent: serve until told to stop, then leave scripts re-adoptable.

Stopping refuses new scripts first, lets requests in flight finish for a moment, and closes
the script service without touching script processes: the next agent over the same home
adopts them, so an agent restart or upgrade never kills a deployment.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path

from tentacle_manager import __version__
from tentacle_manager.agent.api.routes import AgentFacts
from tentacle_manager.agent.api.server import AgentApiServer, Listen
from tentacle_manager.agent.api.tls import ServerIdentity
from tentacle_manager.agent.api.trust import TrustList
from tentacle_manager.agent.host import heartbeat
from tentacle_manager.agent.scripts import ScriptService, ScriptServiceSettings
from tentacle_manager.contracts import ScriptPhase, utc_now

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AgentPlan:
    """Everything an agent needs, resolved from its instance before it starts."""

    instance: str
    home: Path
    listen: Listen | None  # None: NoListen
    identity: ServerIdentity
    trust: TrustList
    settings: ScriptServiceSettings


async def serve(plan: AgentPlan, stop: asyncio.Event, ready: asyncio.Event | None = None) -> None:
    log.info(
        "Tentacle Manager agent %s, instance %s, home %s", __version__, plan.instance, plan.home
    )
    service = ScriptService(plan.home, plan.settings)
    await service.open()
    server = AgentApiServer(
        service, plan.identity, plan.trust, AgentFacts(instance=plan.instance, started=utc_now())
    )
    beating = asyncio.get_running_loop().create_task(heartbeat.beat(plan.home))
    try:
        if plan.listen is None:
            log.info("Agent will not listen on any TCP ports")
        else:
            await server.start(plan.listen)
        log.info("Trusted client certificates: %s", ", ".join(plan.trust.thumbprints) or "none")
        if ready is not None:
            ready.set()
        await stop.wait()
        running = [
            s.ticket.task_id
            for s in service.list_scripts()
            if s.phase in (ScriptPhase.RUNNING, ScriptPhase.CANCELLING, ScriptPhase.QUEUED)
        ]
        log.info(
            "Stopping: refusing new scripts; %d script(s) keep running and will be adopted by "
            "the next agent%s",
            len(running),
            f" ({', '.join(running)})" if running else "",
        )
    finally:
        service.stop_accepting()
        await server.stop()
        beating.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beating
        await service.close()
    log.info("Agent stopped")
