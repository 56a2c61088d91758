"""The entry process of a script, whether this agent started it or re-adopted it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
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
    """A script started by an earlier agent process: not our child, so its exit is polled and
    its status read from what the bash exit trap recorded."""

    def __init__(self, process: psutil.Process, recorded_exit: Callable[[], int | None]):
        self._process = process
        self._recorded_exit = recorded_exit

    async def wait(self) -> int | None:
        while is_alive(self._process):
            await asyncio.sleep(ADOPTED_POLL_INTERVAL)
        return self._recorded_exit()
