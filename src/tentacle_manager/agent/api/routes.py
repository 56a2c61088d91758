"""The API's routes: ScriptServiceV2 verbs under /api/scripts, admin verbs under /api/admin.

Bodies and answers are the wire contracts of `tentacle_manager.contracts`. See docs/api.md.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from datetime import datetime

from aiohttp import web
from pydantic import ValidationError

from tentacle_manager import __version__
from tentacle_manager.agent.api.callers import admin_only
from tentacle_manager.agent.api.friendly_page import friendly_page
from tentacle_manager.agent.scripts import ScriptService
from tentacle_manager.contracts import (
    AbandonScriptCommand,
    AgentHealth,
    CancelScriptCommand,
    CompleteScriptCommand,
    Contract,
    ContractError,
    ContractT,
    LogLevelSetting,
    MutexEvent,
    MutexSnapshot,
    ScriptList,
    ScriptPhase,
    ScriptStatusRequest,
    StartScriptCommand,
    parse,
    ticket,
    validation_problems,
)

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 15.0
LIVENESS_SECONDS = 0.5  # how soon a stream notices that its caller left or the agent stops
PACKAGE_LOGGER = "tentacle_manager"


@dataclass(frozen=True)
class AgentFacts:
    """What health reports besides the service's own state."""

    instance: str
    started: datetime


SERVICE = web.AppKey("service", ScriptService)
FACTS = web.AppKey("facts", AgentFacts)
STOPPING = web.AppKey("stopping", asyncio.Event)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", friendly_page)
    app.router.add_get("/api/capabilities", capabilities)
    app.router.add_post("/api/scripts/start", start_script)
    app.router.add_post("/api/scripts/status", get_status)
    app.router.add_post("/api/scripts/cancel", cancel_script)
    app.router.add_post("/api/scripts/abandon", abandon_script)
    app.router.add_post("/api/scripts/complete", complete_script)
    app.router.add_get("/api/admin/scripts", list_scripts)
    app.router.add_get("/api/admin/scripts/{ticket}/processes", script_processes)
    app.router.add_post("/api/admin/quarantine/retry", retry_quarantine)
    app.router.add_get("/api/admin/mutexes", mutexes)
    app.router.add_get("/api/admin/mutexes/events", mutex_events)
    app.router.add_get("/api/admin/health", health)
    app.router.add_get("/api/admin/log-level", get_log_level)
    app.router.add_put("/api/admin/log-level", set_log_level)


def _json(body: Contract) -> web.Response:
    return web.Response(text=body.to_json(), content_type="application/json")


async def _body(request: web.Request, model: type[ContractT]) -> ContractT:
    return parse(model, await request.read())


# --- ScriptServiceV2 ---------------------------------------------------------------------------


async def capabilities(request: web.Request) -> web.Response:
    return _json(request.app[SERVICE].capabilities())


async def start_script(request: web.Request) -> web.Response:
    command = await _body(request, StartScriptCommand)
    return _json(await request.app[SERVICE].start_script(command))


async def get_status(request: web.Request) -> web.Response:
    status_request = await _body(request, ScriptStatusRequest)
    return _json(await request.app[SERVICE].get_status(status_request))


async def cancel_script(request: web.Request) -> web.Response:
    command = await _body(request, CancelScriptCommand)
    return _json(await request.app[SERVICE].cancel_script(command))


async def abandon_script(request: web.Request) -> web.Response:
    command = await _body(request, AbandonScriptCommand)
    return _json(await request.app[SERVICE].abandon_script(command))


async def complete_script(request: web.Request) -> web.Response:
    command = await _body(request, CompleteScriptCommand)
    await request.app[SERVICE].complete_script(command)
    return web.json_response({})


# --- admin -------------------------------------------------------------------------------------


async def list_scripts(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    return _json(ScriptList(scripts=service.list_scripts(), quarantined=service.quarantined()))


async def script_processes(request: web.Request) -> web.Response:
    try:
        script = ticket(request.match_info["ticket"])
    except ValidationError as error:
        rules = validation_problems(error, "ticket").values()
        raise ContractError({"ticket": "; ".join(rules)}) from None
    tree = await request.app[SERVICE].process_tree(script)
    if tree is None:
        raise web.HTTPNotFound(reason=f"No script with ticket {script.task_id} is known.")
    return _json(tree)


@admin_only
async def retry_quarantine(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    service.retry_quarantine()
    return _json(ScriptList(scripts=[], quarantined=service.quarantined()))


async def mutexes(request: web.Request) -> web.Response:
    return _json(MutexSnapshot(mutexes=request.app[SERVICE].isolation.snapshot()))


async def mutex_events(request: web.Request) -> web.StreamResponse:
    """The snapshot, then every change as one JSON object per line, until the caller leaves or
    the agent stops. A blank line every HEARTBEAT_SECONDS keeps proxies from timing it out."""
    service = request.app[SERVICE]
    stopping = request.app[STOPPING]
    events: asyncio.Queue[MutexEvent] = asyncio.Queue()
    unsubscribe = service.isolation.subscribe(events.put_nowait)
    response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    try:
        await response.prepare(request)
        snapshot = MutexSnapshot(mutexes=service.isolation.snapshot())
        await response.write(snapshot.to_json().encode() + b"\n")
        quiet = 0.0
        while not stopping.is_set() and not _caller_left(request):
            try:
                async with asyncio.timeout(LIVENESS_SECONDS):  # wait_for can lose a cancel
                    event = await events.get()
            except TimeoutError:
                quiet += LIVENESS_SECONDS
                if quiet >= HEARTBEAT_SECONDS:
                    quiet = 0.0
                    await response.write(b"\n")
                continue
            await response.write(event.to_json().encode() + b"\n")
    except ConnectionResetError:
        pass
    finally:
        unsubscribe()
    return response


def _caller_left(request: web.Request) -> bool:
    return request.transport is None or request.transport.is_closing()


async def health(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    facts = request.app[FACTS]
    scripts = service.list_scripts()
    running = sum(s.phase in (ScriptPhase.RUNNING, ScriptPhase.CANCELLING) for s in scripts)
    return _json(
        AgentHealth(
            version=__version__,
            instance=facts.instance,
            pid=os.getpid(),
            started=facts.started,
            accepting_scripts=service.accepting,
            scripts_running=running,
            scripts_known=len(scripts),
            log_level=_log_level(),
        )
    )


async def get_log_level(request: web.Request) -> web.Response:
    return _json(LogLevelSetting(level=_log_level()))


@admin_only
async def set_log_level(request: web.Request) -> web.Response:
    setting = await _body(request, LogLevelSetting)
    level = logging.getLevelName(setting.level) if setting.level != "TRACE" else 5
    logging.getLogger(PACKAGE_LOGGER).setLevel(level)
    log.info("Log level set to %s", setting.level)
    return _json(LogLevelSetting(level=_log_level()))


def _log_level() -> str:
    level = logging.getLogger(PACKAGE_LOGGER).getEffectiveLevel()
    return "TRACE" if level < logging.DEBUG else logging.getLevelName(level)
