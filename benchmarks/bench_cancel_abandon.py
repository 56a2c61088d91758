"""Cancel latency of a cooperative script, and how fast abandon frees the isolation mutex.

Cancel: a bash script that traps SIGINT (`trap 'exit 130' INT`, then a loop of `sleep 0.01`,
which is in the script's process group so the interrupt reaches it) is started, and once it has
printed "ready" cancel_script() is called; the latency runs until get_status (polled every 1 ms)
shows Complete. The exit code must be 130, i.e. the script ended through its own trap.
Baseline: the same script started with asyncio directly (own session), then os.killpg(SIGINT)
and waiting for it to exit.

Abandon: with the test-only kill switch (`disable_process_kill`) the script cannot be stopped.
A second FullIsolation script is queued on the same mutex. The time from the abandon_script()
call to the RELEASED event of the stuck script (an isolation listener records perf_counter
times), and from that to the waiter's ACQUIRED event, are measured. Baseline: the same hand-over
with IsolationRegistry alone (the holder releases as soon as an asyncio.Event is set).

Targets: cancel median <= 50 ms; abandon frees the mutex <= 20 ms (median) after the call;
hand-over to the queued waiter <= 5 ms (median).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from datetime import timedelta
from pathlib import Path

from benchmarks.common import (
    Profiler,
    Report,
    kill_group,
    main,
    median,
    ms,
    open_service,
    percentile,
    summary,
    temp_home,
    wait_complete,
    wait_for_text,
)
from tentacle_manager.agent.isolation import IsolationRegistry, MutexWaitOutcome
from tentacle_manager.agent.scripts import ScriptService
from tentacle_manager.contracts import (
    AbandonScriptCommand,
    CancelScriptCommand,
    CompleteScriptCommand,
    ExitCode,
    MutexEvent,
    MutexEventKind,
    MutexParty,
    ProcessState,
    ScriptIsolationLevel,
    ScriptStatusRequest,
    StartScriptCommand,
    ticket,
    utc_now,
)

NAME = "cancel_abandon"
COOPERATIVE = """\
trap 'exit 130' INT
echo ready
while :; do sleep 0.01; done
"""
STUCK = """\
echo ready
while :; do sleep 0.05; done
"""
CANCEL_TARGET = 0.050
FREE_TARGET = 0.020
HANDOVER_TARGET = 0.005
FULL = ScriptIsolationLevel.FULL_ISOLATION


def command(name: str, body: str, mutex: str, wait: timedelta | None = None) -> StartScriptCommand:
    return StartScriptCommand(
        script_ticket=ticket(name),
        task_id=f"ServerTasks-{name}",
        script_body=body,
        isolation=FULL,
        isolation_mutex_name=mutex,
        duration_to_wait_for_script_to_finish=wait,
    )


# --- cancel ------------------------------------------------------------------------------------


async def bare_cancel(script: Path) -> float:
    process = await asyncio.create_subprocess_exec(
        "bash",
        str(script),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), 30)
    if line != b"ready\n":
        raise RuntimeError(f"bare cooperative script printed {line!r}")
    started = time.perf_counter()
    os.killpg(process.pid, signal.SIGINT)
    code = await process.wait()
    elapsed = time.perf_counter() - started
    if code != 130:
        raise RuntimeError(f"bare cooperative script exited {code}, not 130 (trap)")
    return elapsed


async def service_cancel(service: ScriptService, name: str, profiler: Profiler) -> float:
    start = command(name, COOPERATIVE, f"cancel-{name}")
    await service.start_script(start)
    after = await wait_for_text(service, start.script_ticket, "ready")
    poll = ScriptStatusRequest(ticket=start.script_ticket, last_log_sequence=after)
    with profiler.section():
        started = time.perf_counter()
        status = await service.cancel_script(
            CancelScriptCommand(ticket=start.script_ticket, last_log_sequence=after)
        )
        while status.state is not ProcessState.COMPLETE:
            await asyncio.sleep(0.001)
            status = await service.get_status(poll)
        elapsed = time.perf_counter() - started
    if status.exit_code != 130:
        full = await service.get_status(ScriptStatusRequest(ticket=start.script_ticket))
        raise RuntimeError(
            f"{name} ended with {status.exit_code}, not 130: {[r.text for r in full.logs]}"
        )
    await service.complete_script(CompleteScriptCommand(ticket=start.script_ticket))
    return elapsed


async def measure_cancel(report: Report, root: Path, iterations: int, profiler: Profiler) -> None:
    script = root / "cooperative.sh"
    script.write_text(COOPERATIVE)
    bare: list[float] = []
    latencies: list[float] = []
    async with open_service(root / "cancel-home") as service:
        await bare_cancel(script)  # warm-up
        await service_cancel(service, "cancel-warm", Profiler("unused", False))
        for i in range(iterations):
            if i % 2:
                bare.append(await bare_cancel(script))
            latencies.append(await service_cancel(service, f"cancel-{i}", profiler))
            if not i % 2:
                bare.append(await bare_cancel(script))
    service_median, bare_median = median(latencies), median(bare)
    report.check(
        "cancel latency",
        f"service median {ms(service_median)} (p90 {ms(percentile(latencies, 0.9))}, "
        f"max {ms(max(latencies))}), bare killpg(SIGINT)+wait median {ms(bare_median)} "
        f"= {service_median / bare_median:.1f}x bare; {service_median / CANCEL_TARGET:.2f}x "
        f"target (n={len(latencies)}, exit code 130 every time)",
        service_median <= CANCEL_TARGET,
        f"median <= {ms(CANCEL_TARGET)}",
        service_ms=summary(latencies),
        bare_ms=summary(bare),
    )


# --- abandon -----------------------------------------------------------------------------------


class EventLog:
    """perf_counter times of mutex events, by (kind, ticket)."""

    def __init__(self) -> None:
        self.times: dict[tuple[MutexEventKind, str], float] = {}
        self.events: dict[tuple[MutexEventKind, str], MutexEvent] = {}

    def __call__(self, event: MutexEvent) -> None:
        key = (event.kind, event.party.ticket.key)
        self.times.setdefault(key, time.perf_counter())
        self.events.setdefault(key, event)

    async def wait_for(self, kind: MutexEventKind, name: str, timeout: float = 30.0) -> None:
        deadline = time.perf_counter() + timeout
        while (kind, name) not in self.times:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"no {kind} event for {name}")
            await asyncio.sleep(0.001)


async def service_abandon(
    service: ScriptService, events: EventLog, i: int, profiler: Profiler
) -> dict[str, float]:
    mutex = f"abandon-{i}"
    stuck = command(f"stuck-{i}", STUCK, mutex)
    waiter = command(f"next-{i}", "echo next\n", mutex)
    await service.start_script(stuck)
    await wait_for_text(service, stuck.script_ticket, "ready")
    await service.start_script(waiter)
    await events.wait_for(MutexEventKind.QUEUED, waiter.script_ticket.key)
    (state,) = [m for m in service.isolation.snapshot() if m.name == mutex]
    if [p.ticket for p in state.holders] != [stuck.script_ticket] or len(state.waiters) != 1:
        raise RuntimeError(f"unexpected mutex state before abandon: {state}")
    pid = next(s.pid for s in service.list_scripts() if s.ticket == stuck.script_ticket)
    with profiler.section():
        started = time.perf_counter()
        status = await service.abandon_script(AbandonScriptCommand(ticket=stuck.script_ticket))
        returned = time.perf_counter()
    if status.exit_code != ExitCode.ABANDONED:
        raise RuntimeError(f"abandon ended with {status.exit_code}")
    if pid is None or not _alive(pid):
        raise RuntimeError("the 'unkillable' script died: the kill switch did not hold")
    released = events.times[(MutexEventKind.RELEASED, stuck.script_ticket.key)]
    acquired = events.times[(MutexEventKind.ACQUIRED, waiter.script_ticket.key)]
    done = await wait_complete(service, waiter.script_ticket, timeout=30)
    if done.exit_code != 0:
        raise RuntimeError(f"the waiter ended with {done.exit_code}")
    released_at = events.events[(MutexEventKind.RELEASED, stuck.script_ticket.key)].at
    summary_ = next(s for s in service.list_scripts() if s.ticket == waiter.script_ticket)
    kill_group(pid)
    await service.complete_script(CompleteScriptCommand(ticket=waiter.script_ticket))
    launched = (summary_.started - released_at).total_seconds() if summary_.started else 0.0
    return {
        "free": released - started,
        "handover": acquired - released,
        "returned": returned - started,
        "waiter_running": launched,
    }


async def baseline_handover() -> tuple[float, float]:
    """The same hand-over with IsolationRegistry alone: (event.set -> RELEASED, -> ACQUIRED)."""
    registry = IsolationRegistry()
    events = EventLog()
    registry.subscribe(events)
    abandon = asyncio.Event()

    def party(name: str) -> MutexParty:
        return MutexParty(ticket=ticket(name), task_id=name, level=FULL, since=utc_now())

    async def holder() -> None:
        wait = await registry.acquire(
            "m", party("holder"), cancelled=asyncio.Event(), timeout=None, notify=lambda _: None
        )
        assert wait.lease is not None
        await abandon.wait()
        wait.lease.release()

    async def waiter() -> MutexWaitOutcome:
        wait = await registry.acquire(
            "m", party("waiter"), cancelled=asyncio.Event(), timeout=None, notify=lambda _: None
        )
        assert wait.lease is not None
        wait.lease.release()
        return wait.outcome

    holding = asyncio.ensure_future(holder())
    await events.wait_for(MutexEventKind.ACQUIRED, "holder")
    waiting = asyncio.ensure_future(waiter())
    await events.wait_for(MutexEventKind.QUEUED, "waiter")
    started = time.perf_counter()
    abandon.set()
    await holding
    await waiting
    released = events.times[(MutexEventKind.RELEASED, "holder")]
    acquired = events.times[(MutexEventKind.ACQUIRED, "waiter")]
    return released - started, acquired - released


async def measure_abandon(report: Report, root: Path, iterations: int, profiler: Profiler) -> None:
    results: list[dict[str, float]] = []
    baseline_free: list[float] = []
    baseline_handover_: list[float] = []
    home = root / "abandon-home"
    async with open_service(
        home,
        disable_process_kill=True,
        allow_unsafe_test_settings=True,
        quarantine_retry_interval=3600.0,
    ) as service:
        events = EventLog()
        unsubscribe = service.isolation.subscribe(events)
        try:
            await service_abandon(service, events, -1, Profiler("unused", False))  # warm-up
            for i in range(iterations):
                results.append(await service_abandon(service, events, i, profiler))
                for _ in range(5):
                    free, handover = await baseline_handover()
                    baseline_free.append(free)
                    baseline_handover_.append(handover)
        finally:
            unsubscribe()
    free = [r["free"] for r in results]
    handover = [r["handover"] for r in results]
    returned = [r["returned"] for r in results]
    running = [r["waiter_running"] for r in results]
    report.check(
        "abandon frees mutex",
        f"abandon_script() call -> RELEASED median {ms(median(free))} (max {ms(max(free))}), "
        f"registry-only baseline (Event.set -> RELEASED) median {ms(median(baseline_free))}; "
        f"{median(free) / FREE_TARGET:.2f}x target (n={len(free)})",
        median(free) <= FREE_TARGET,
        f"median <= {ms(FREE_TARGET)}",
        service_ms=summary(free),
        baseline_ms=summary(baseline_free),
    )
    report.check(
        "abandon handover",
        f"RELEASED -> waiter ACQUIRED median {ms(median(handover))} (max {ms(max(handover))}), "
        f"registry-only baseline median {ms(median(baseline_handover_))}; "
        f"{median(handover) / HANDOVER_TARGET:.3f}x target (n={len(handover)})",
        median(handover) <= HANDOVER_TARGET,
        f"median <= {ms(HANDOVER_TARGET)}",
        service_ms=summary(handover),
        baseline_ms=summary(baseline_handover_),
    )
    report.note(
        f"abandon_script() returned after median {ms(median(returned))}; the waiter's script "
        f"was marked Running median {ms(median(running))} after the RELEASED event "
        "(wall clock, event.at -> ScriptSummary.started)"
    )
    report.info["abandon_returned_ms"] = summary(returned)
    report.info["waiter_running_after_release_ms"] = summary(running)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


async def measure(report: Report, args: argparse.Namespace) -> None:
    profiler = Profiler(NAME, args.profile)
    async with temp_home(NAME) as root:
        await measure_cancel(report, root, 10 if args.quick else 30, profiler)
        await measure_abandon(report, root, 6 if args.quick else 20, profiler)
    profiler.dump()


if __name__ == "__main__":
    sys.exit(main(NAME, measure, __doc__.splitlines()[0]))
