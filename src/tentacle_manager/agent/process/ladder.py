"""The cancel ladder: interrupt, wait, terminate, wait, kill the whole tree.

Timings default to the GitHub runner's (7.5 s after the interrupt, 2.5 s after terminate).
Every rung signals the whole tree as it is at that moment (re-scanned, so children started in
between are included), and every rung is written to the script log and kept as a timeline the
manager can show. Processes that outlive SIGKILL are reported, not waited on for ever: that is
where abandon takes over.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psutil

from tentacle_manager.agent.process.tree import (
    Rung,
    ScriptProcesses,
    Signaller,
    describe,
    is_alive,
    process_group,
)
from tentacle_manager.contracts import utc_now


@dataclass(frozen=True)
class LadderTimings:
    interrupt_grace: float = 7.5
    terminate_grace: float = 2.5
    kill_grace: float = 2.0


@dataclass(frozen=True)
class LadderStep:
    """One rung as it happened: what was signalled, and who was still alive afterwards."""

    rung: Rung
    at: str
    signalled: tuple[int, ...]
    alive_after: tuple[int, ...]
    waited: float


@dataclass
class LadderResult:
    steps: list[LadderStep] = field(default_factory=list)
    survivors: list[psutil.Process] = field(default_factory=list)


async def wait_until_dead(processes: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Poll (fast at first, then every 50 ms) until all are dead or `timeout` passes."""
    deadline = time.monotonic() + timeout
    interval = 0.002
    alive = [p for p in processes if is_alive(p)]
    while alive and time.monotonic() < deadline:
        await asyncio.sleep(min(interval, max(0.0, deadline - time.monotonic())))
        interval = min(interval * 2, 0.05)
        alive = [p for p in alive if is_alive(p)]
    return alive


async def find_tree(processes: ScriptProcesses) -> list[psutil.Process]:
    return await asyncio.get_running_loop().run_in_executor(None, processes.find)


async def run_ladder(
    processes: ScriptProcesses,
    signaller: Signaller,
    timings: LadderTimings,
    log: Callable[[str], None],
    on_step: Callable[[LadderStep], None] = lambda step: None,
) -> LadderResult:
    """Climb the rungs until every process of the script has gone or SIGKILL has failed.

    Each rung signals the process group first (one syscall, so a cooperative script stops
    within milliseconds), then scans for the processes that left the group and signals those.
    """
    result = LadderResult()
    graces = {
        Rung.INTERRUPT: timings.interrupt_grace,
        Rung.TERMINATE: timings.terminate_grace,
        Rung.KILL: timings.kill_grace,
    }
    known = processes.quick_find()
    for rung, grace in graces.items():
        members = {p.pid for p in known if process_group(p.pid) == processes.entry_pid}
        if not signaller.signal_group(processes, rung):
            members = set()
        targets = _union(known, await find_tree(processes))
        if not any(is_alive(p) for p in targets) and not members:
            known = []
            break
        reached = signaller.send_outside_group(targets, processes, rung, members)
        log(f"Sent {rung.signal_name} to {len(reached)} process(es): {describe(reached)}")
        started = time.monotonic()
        alive = await wait_until_dead(targets, grace)
        known = _union(alive, await find_tree(processes))
        step = LadderStep(
            rung=rung,
            at=utc_now().isoformat(),
            signalled=tuple(p.pid for p in reached),
            alive_after=tuple(p.pid for p in known),
            waited=round(time.monotonic() - started, 3),
        )
        result.steps.append(step)
        on_step(step)
        if not known:
            log(f"All processes of the script exited after {rung.signal_name}")
            return result
        log(
            f"{len(known)} process(es) still alive {step.waited:g} s after {rung.signal_name}: "
            f"{describe(known)}"
        )
    if known:
        log(
            f"{len(known)} process(es) survived SIGKILL and cannot be killed; abandoning the "
            "script frees its isolation mutex"
        )
    result.survivors = known
    return result


def _union(first: list[psutil.Process], second: list[psutil.Process]) -> list[psutil.Process]:
    merged = {p.pid: p for p in first}
    for process in second:
        merged.setdefault(process.pid, process)
    return list(merged.values())
