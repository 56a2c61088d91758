"""The entry process of a script, whether this agent started it or re-adopted it."""

from __future__ import annotations

import asyncio
from typing import Protocol

from tentacle_manager.agent.process.launcher import Launched
from tentacle_manager.agent.process.tree import ScriptProcesses, is_alive

ADOPTED_POLL_INTERVAL = 0.2


class EntryProcess(Protocol):
    async def wait(self) -> int | None:
        """The exit status, or None when it cannot be known."""


class ChildEntry:
    def __init__(self, launched: Launched):
        self._launched = launched

    async def wait(self) -> int | None:
        return await self._launched.wait()


class AdoptedEntry:
    """A script started by an earlier agent process. It is not our child, so its exit is
    observed by polling and its exit status cannot be known."""

    def __init__(self, processes: ScriptProcesses):
        self._processes = processes

    async def wait(self) -> int | None:
        while (entry := self._processes.entry()) is not None and is_alive(entry):
            await asyncio.sleep(ADOPTED_POLL_INTERVAL)
        return None
