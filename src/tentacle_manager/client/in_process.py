"""A client for a script service running in this process: the embedded default, and the
reference the HTTPS client is measured against."""

from __future__ import annotations

from tentacle_manager.agent.scripts import ScriptService
from tentacle_manager.contracts import (
    AbandonScriptCommand,
    CancelScriptCommand,
    CapabilitiesResponse,
    CompleteScriptCommand,
    ScriptStatusRequest,
    ScriptStatusResponse,
    StartScriptCommand,
)


class InProcessAgent:
    """Speaks `ScriptServiceClient` by calling the service directly."""

    def __init__(self, service: ScriptService) -> None:
        self.service = service

    async def capabilities(self) -> CapabilitiesResponse:
        return self.service.capabilities()

    async def start_script(self, command: StartScriptCommand) -> ScriptStatusResponse:
        return await self.service.start_script(command)

    async def get_status(self, request: ScriptStatusRequest) -> ScriptStatusResponse:
        return await self.service.get_status(request)

    async def cancel_script(self, command: CancelScriptCommand) -> ScriptStatusResponse:
        return await self.service.cancel_script(command)

    async def abandon_script(self, command: AbandonScriptCommand) -> ScriptStatusResponse:
        return await self.service.abandon_script(command)

    async def complete_script(self, command: CompleteScriptCommand) -> None:
        await self.service.complete_script(command)
