"""Isolation mutex hand-over with 1,000 queued waiters, and strict FIFO order.

IsolationRegistry is used directly: one FullIsolation holder, then 1,000 FullIsolation waiters
queued on the same name in a known order. The holder releases; each waiter, once resumed,
records the time and hands its lease back to the driver, which releases it, and so on. The
hand-over latency is release() -> the waiter's coroutine resumed after `await acquire(...)`.
Measuring starts once every waiter has given its 100 ms "waiting" notice (steady state).
Baseline: the same chain over an asyncio.Lock (also FIFO) with the same number of waiters.

Targets: median hand-over <= 1 ms; acquisitions in exactly the order of arrival.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from benchmarks.common import Report, main, median, ms, percentile, summary
from tentacle_manager.agent.isolation import IsolationRegistry, MutexWaitOutcome
from tentacle_manager.agent.isolation.registry import Lease
from tentacle_manager.contracts import (
    MutexEvent,
    MutexEventKind,
    MutexParty,
    ScriptIsolationLevel,
    ticket,
    utc_now,
)

NAME = "mutex"
HANDOVER_TARGET = 0.001
MUTEX = "RunningScript"


def party(name: str) -> MutexParty:
    return MutexParty(
        ticket=ticket(name),
        task_id=f"ServerTasks-{name}",
        level=ScriptIsolationLevel.FULL_ISOLATION,
        since=utc_now(),
    )


async def registry_round(waiters: int) -> tuple[list[float], list[int], list[str]]:
    """(hand-over latencies, order resumed, order of ACQUIRED events) for one queue."""
    registry = IsolationRegistry()
    acquired_events: list[str] = []
    notices: list[str] = []

    def listen(event: MutexEvent) -> None:
        if event.kind is MutexEventKind.ACQUIRED:
            acquired_events.append(event.party.ticket.task_id)

    registry.subscribe(listen)
    first = await registry.acquire(
        MUTEX, party("holder"), cancelled=asyncio.Event(), timeout=None, notify=notices.append
    )
    assert first.lease is not None
    resumed: asyncio.Queue[tuple[int, float, Lease]] = asyncio.Queue()

    async def waiter(i: int) -> None:
        wait = await registry.acquire(
            MUTEX, party(f"w{i}"), cancelled=asyncio.Event(), timeout=None, notify=notices.append
        )
        now = time.perf_counter()
        if wait.outcome is not MutexWaitOutcome.ACQUIRED or wait.lease is None:
            raise RuntimeError(f"waiter {i}: {wait.outcome}")
        resumed.put_nowait((i, now, wait.lease))

    tasks = []
    for i in range(waiters):
        tasks.append(asyncio.ensure_future(waiter(i)))
        await asyncio.sleep(0)  # each waiter joins the queue before the next is created
    (state,) = registry.snapshot()
    queued = [p.ticket.task_id for p in state.waiters]
    if queued != [f"w{i}" for i in range(waiters)]:
        raise RuntimeError(f"queue order differs from arrival order: {queued[:10]}...")
    deadline = time.perf_counter() + 30
    while len(notices) < waiters:  # every waiter has woken for its 100 ms notice
        if time.perf_counter() > deadline:
            raise TimeoutError(f"only {len(notices)} of {waiters} wait notices")
        await asyncio.sleep(0.01)

    latencies: list[float] = []
    order: list[int] = []
    lease = first.lease
    for _ in range(waiters):
        released = time.perf_counter()
        lease.release()
        i, at, lease = await resumed.get()
        latencies.append(at - released)
        order.append(i)
    lease.release()
    await asyncio.gather(*tasks)
    if registry.snapshot():
        raise RuntimeError(f"mutex not idle at the end: {registry.snapshot()}")
    return latencies, order, acquired_events[1:]


async def lock_round(waiters: int) -> list[float]:
    """The same chain over asyncio.Lock: release() -> waiter resumed."""
    lock = asyncio.Lock()
    await lock.acquire()
    resumed: asyncio.Queue[tuple[int, float]] = asyncio.Queue()

    async def waiter(i: int) -> None:
        await lock.acquire()
        resumed.put_nowait((i, time.perf_counter()))

    tasks = []
    for i in range(waiters):
        tasks.append(asyncio.ensure_future(waiter(i)))
        await asyncio.sleep(0)
    latencies = []
    for _ in range(waiters):
        released = time.perf_counter()
        lock.release()
        _, at = await resumed.get()
        latencies.append(at - released)
    lock.release()
    await asyncio.gather(*tasks)
    return latencies


async def measure(report: Report, args: argparse.Namespace) -> None:
    waiters = 200 if args.quick else 1000
    rounds = 2 if args.quick else 5
    handovers: list[float] = []
    baseline: list[float] = []
    fifo_ok = events_ok = 0
    await lock_round(50)  # warm-up
    for _ in range(rounds):
        latencies, order, acquired = await registry_round(waiters)
        handovers += latencies
        fifo_ok += order == list(range(waiters))
        events_ok += acquired == [f"w{i}" for i in range(waiters)]
        baseline += await lock_round(waiters)
    handover_median, baseline_median = median(handovers), median(baseline)
    report.check(
        f"mutex handover ({waiters} waiters)",
        f"release() -> waiter resumed median {ms(handover_median)} (p99 "
        f"{ms(percentile(handovers, 0.99))}, max {ms(max(handovers))}), asyncio.Lock baseline "
        f"median {ms(baseline_median)} = {handover_median / baseline_median:.1f}x baseline; "
        f"{handover_median / HANDOVER_TARGET:.3f}x target (n={len(handovers)})",
        handover_median <= HANDOVER_TARGET,
        f"median <= {ms(HANDOVER_TARGET)}",
        registry_ms=summary(handovers),
        asyncio_lock_ms=summary(baseline),
    )
    report.check(
        "mutex FIFO",
        f"{fifo_ok} of {rounds} rounds of {waiters} waiters resumed in arrival order, "
        f"{events_ok} of {rounds} with ACQUIRED events in arrival order",
        fifo_ok == rounds and events_ok == rounds,
        "every round strictly FIFO",
        rounds=rounds,
        waiters=waiters,
    )


if __name__ == "__main__":
    sys.exit(main(NAME, measure, __doc__.splitlines()[0]))
