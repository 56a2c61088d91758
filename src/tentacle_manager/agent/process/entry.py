"""The entry process of a script, whether this agent started it or re-adopted it."""

from __future__ import annotations

import asyncio
from typing import Protocol

import psutil

from tentacle_manager.agent.process.launcher import Launched, exit_status
from tentacle_manager.agent.process.tree import is_alive

ADOPTED_POLL_INTERVAL = 0.2


class EntryProcess(Protocol):
    async def wait(self) -> int | None:
        """The exit status, or None when it cannot be known."""


class ChildEntry:
    def __init__(self, launched: Launched):
        self._launched = launched

    async def wait(self) -> int | None:
        return exit_status(await self._launched.process.wait())


class AdoptedEntry:
    """A script started by an earlier agent process. It is not our child, so its exit is
    observed by polling and its exit status cannot be known."""

    def __init__(self, process: psutil.Process):
        self._process = process

    async def wait(self) -> int | None:
        while is_alive(self._process):
            await asyncio.sleep(ADOPTED_POLL_INTERVAL)
        return None
