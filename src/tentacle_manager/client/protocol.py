"""The script-service verbs every agent client speaks, wherever the agent runs.

The executor and the task runner are written against this protocol only, so the same code
drives an agent in this process, one over mutual TLS on loopback, or one across the network.
"""

from __future__ import annotations

from typing import Protocol

from tentacle_manager.contracts import (
    AbandonScriptCommand,
    CancelScriptCommand,
    CapabilitiesResponse,
    CompleteScriptCommand,
    ScriptStatusRequest,
    ScriptStatusResponse,
    StartScriptCommand,
)


class ScriptServiceClient(Protocol):
    """ScriptServiceV2 as seen by a caller. Every method may raise `AgentUnavailableError`."""

    async def capabilities(self) -> CapabilitiesResponse: ...

    async def start_script(self, command: StartScriptCommand) -> ScriptStatusResponse: ...

    async def get_status(self, request: ScriptStatusRequest) -> ScriptStatusResponse: ...

    async def cancel_script(self, command: CancelScriptCommand) -> ScriptStatusResponse: ...

    async def abandon_script(self, command: AbandonScriptCommand) -> ScriptStatusResponse: ...

    async def complete_script(self, command: CompleteScriptCommand) -> None: ...


class AgentUnavailableError(ConnectionError):
    """The agent could not be reached or did not answer; the call may be retried."""
