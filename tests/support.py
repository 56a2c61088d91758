"""Helpers for tests: real services, real processes, and polling with generous bounds."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

import psutil

from tentacle_manager.agent.process.tree import Rung, Signaller, processes_of_home
from tentacle_manager.agent.scripts import ScriptService, ScriptServiceSettings
from tentacle_manager.contracts import (
    ProcessState,
    ScriptIsolationLevel,
    ScriptStatusRequest,
    ScriptStatusResponse,
    StartScriptCommand,
    ticket,
)

FAST = dict(
    interrupt_grace=1.0,
    terminate_grace=1.0,
    kill_grace=1.0,
    output_holder_grace=1.0,
    minimum_free_disk_bytes=0,
)


def fast_settings(**overrides: Any) -> ScriptServiceSettings:
    return ScriptServiceSettings.create(**{**FAST, **overrides})


def kill_strays(home: Path) -> None:
    """Kill every process started by a service over `home`."""
    Signaller().send(processes_of_home(home), Rung.KILL)


def start_command(
    name: str,
    body: str,
    *,
    task: str | None = None,
    isolation: ScriptIsolationLevel = ScriptIsolationLevel.FULL_ISOLATION,
    mutex: str | None = None,
    timeout: timedelta = timedelta(0),
    wait: timedelta | None = None,
    **fields: Any,
) -> StartScriptCommand:
    return StartScriptCommand(
        script_ticket=ticket(name),
        task_id=task or f"ServerTasks-{name}",
        script_body=body,
        isolation=isolation,
        isolation_mutex_name=mutex,
        script_isolation_mutex_timeout=timeout,
        duration_to_wait_for_script_to_finish=wait,
        **fields,
    )


class StatusSource(Protocol):
    """A script service, or any client of one."""

    async def get_status(self, request: ScriptStatusRequest) -> ScriptStatusResponse: ...


async def wait_for_status(
    service: StatusSource,
    name: str,
    predicate: Callable[[ScriptStatusResponse], bool],
    timeout: float = 15.0,
) -> ScriptStatusResponse:
    """Poll get_status until `predicate` holds; fails the test with the last status."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        status = await service.get_status(ScriptStatusRequest(ticket=ticket(name)))
        if predicate(status):
            return status
        if asyncio.get_running_loop().time() > deadline:
            texts = [record.text for record in status.logs]
            raise AssertionError(f"timed out waiting on {name}: {status.state!r} {texts}")
        await asyncio.sleep(0.01)


async def wait_complete(
    service: StatusSource, name: str, timeout: float = 15.0
) -> ScriptStatusResponse:
    return await wait_for_status(service, name, lambda s: s.state is ProcessState.COMPLETE, timeout)


async def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


def texts(status: ScriptStatusResponse) -> list[str]:
    return [record.text for record in status.logs]


def wait_for_file(path: Path, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} did not appear")
        time.sleep(0.01)


def pid_alive(pid: int) -> bool:
    try:
        process = psutil.Process(pid)
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


ServiceFactory = Callable[..., Awaitable[ScriptService]]
