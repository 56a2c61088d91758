"""The isolation mutex registry: semantics, messages, inspection and events (no processes)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from tentacle_manager.agent.isolation import IsolationRegistry, MutexWaitOutcome
from tentacle_manager.agent.isolation.messages import (
    busy_message,
    canceled_message,
    readable_join,
    timed_out_message,
)
from tentacle_manager.contracts import MutexParty, ScriptIsolationLevel, ticket, utc_now

FULL = ScriptIsolationLevel.FULL_ISOLATION
NONE = ScriptIsolationLevel.NO_ISOLATION


def party(name: str, level: ScriptIsolationLevel = FULL, task: str | None = None) -> MutexParty:
    return MutexParty(
        ticket=ticket(name), task_id=task or name.upper(), level=level, since=utc_now()
    )


async def acquire(registry, name, who, timeout=None, cancelled=None, notes=None):
    return await registry.acquire(
        name,
        who,
        cancelled=cancelled or asyncio.Event(),
        timeout=timeout,
        notify=(notes.append if notes is not None else lambda text: None),
    )


async def test_waiters_are_granted_in_arrival_order():
    registry = IsolationRegistry()
    holder = await acquire(registry, "m", party("h"))
    order: list[str] = []

    async def waiter(name: str, level: ScriptIsolationLevel) -> None:
        wait = await acquire(registry, "m", party(name, level))
        order.append(name)
        await asyncio.sleep(0)
        wait.lease.release()

    tasks = []
    for index in range(20):
        tasks.append(asyncio.create_task(waiter(f"w{index}", FULL if index % 3 else NONE)))
        await asyncio.sleep(0)
    holder.lease.release()
    await asyncio.gather(*tasks)
    assert order == [f"w{i}" for i in range(20)]


async def test_a_new_reader_waits_behind_a_queued_writer():
    registry = IsolationRegistry()
    reader = await acquire(registry, "m", party("r1", NONE))
    writer = asyncio.create_task(acquire(registry, "m", party("w", FULL)))
    await asyncio.sleep(0.01)
    late_reader = asyncio.create_task(acquire(registry, "m", party("r2", NONE)))
    await asyncio.sleep(0.01)
    assert not writer.done() and not late_reader.done()
    (state,) = registry.snapshot()
    assert [w.ticket for w in state.waiters] == [ticket("w"), ticket("r2")]
    reader.lease.release()
    granted = await writer
    await asyncio.sleep(0.01)
    assert not late_reader.done()
    granted.lease.release()
    (await late_reader).lease.release()


async def test_readers_share_and_a_cancelled_writer_lets_readers_through():
    registry = IsolationRegistry()
    first = await acquire(registry, "m", party("r1", NONE))
    cancel = asyncio.Event()
    writer = asyncio.create_task(acquire(registry, "m", party("w", FULL), cancelled=cancel))
    await asyncio.sleep(0.01)
    reader = asyncio.create_task(acquire(registry, "m", party("r2", NONE)))
    await asyncio.sleep(0.01)
    assert not reader.done()
    cancel.set()
    assert (await writer).outcome is MutexWaitOutcome.CANCELED
    second = await asyncio.wait_for(reader, 1)
    assert {h.ticket for h in registry.snapshot()[0].holders} == {ticket("r1"), ticket("r2")}
    first.lease.release()
    second.lease.release()
    assert registry.snapshot() == []


async def test_names_are_case_sensitive():
    registry = IsolationRegistry()
    upper = await acquire(registry, "Deploy", party("a"))
    lower = await asyncio.wait_for(acquire(registry, "deploy", party("b")), 1)
    assert {s.name for s in registry.snapshot()} == {"Deploy", "deploy"}
    upper.lease.release()
    lower.lease.release()


async def test_timeout_and_cancel_leave_the_queue_and_say_who_holds():
    registry = IsolationRegistry()
    holder = await acquire(registry, "m", party("h", task="ServerTasks-1"))
    notes: list[str] = []
    timed = await acquire(registry, "m", party("t"), timeout=timedelta(seconds=0.2), notes=notes)
    assert timed.outcome is MutexWaitOutcome.TIMED_OUT
    assert "[ServerTasks-1](~/app#/tasks/ServerTasks-1)" in timed.final_message
    assert notes and notes[-1].startswith("Waiting for the script in task [ServerTasks-1]")
    cancel = asyncio.Event()
    waiting = asyncio.create_task(acquire(registry, "m", party("c"), cancelled=cancel))
    await asyncio.sleep(0.01)
    loop = asyncio.get_running_loop()
    began = loop.time()
    cancel.set()
    result = await waiting
    assert loop.time() - began < 0.1
    assert result.outcome is MutexWaitOutcome.CANCELED
    assert result.final_message == (
        "This task was canceled before it could start. Task "
        "[ServerTasks-1](~/app#/tasks/ServerTasks-1) is still running."
    )
    assert [s.waiters for s in registry.snapshot()] == [[]]
    holder.lease.release()


async def test_events_and_snapshot_show_holders_waiters_and_ages():
    registry = IsolationRegistry()
    events = []
    unsubscribe = registry.subscribe(
        lambda event: events.append((event.kind.value, event.name, event.party.task_id))
    )
    held = await acquire(registry, "m", party("a", task="A"))
    waiter = asyncio.create_task(acquire(registry, "m", party("b", task="B")))
    await asyncio.sleep(0.01)
    (state,) = registry.snapshot()
    assert [h.task_id for h in state.holders] == ["A"]
    assert [w.task_id for w in state.waiters] == ["B"]
    assert state.waiters[0].since <= utc_now()
    held.lease.release()
    (await waiter).lease.release()
    assert events == [
        ("acquired", "m", "A"),
        ("queued", "m", "B"),
        ("released", "m", "A"),
        ("acquired", "m", "B"),
        ("released", "m", "B"),
    ]
    unsubscribe()
    await acquire(registry, "x", party("c"))
    assert len(events) == 5


async def test_a_task_holding_several_read_locks_releases_them_one_by_one():
    registry = IsolationRegistry()
    one = await acquire(registry, "m", party("s1", NONE, task="T"))
    two = await acquire(registry, "m", party("s2", NONE, task="T"))
    assert len(registry.snapshot()[0].holders) == 2
    one.lease.release()
    assert [h.ticket for h in registry.snapshot()[0].holders] == [ticket("s2")]
    two.lease.release()
    assert registry.snapshot() == []


async def test_adopt_takes_a_free_lock_and_refuses_a_conflicting_one():
    registry = IsolationRegistry()
    lease = registry.adopt("m", party("old"))
    with pytest.raises(RuntimeError):
        registry.adopt("m", party("other"))
    lease.release()
    assert registry.snapshot() == []


WRITE_TAIL = "requires that no other Octopus scripts are executing on this target at the same time."


def test_busy_messages_match_tentacle_wording():
    writer = party("w", FULL, task="W")
    reader = party("r", NONE, task="R")
    one = [party("a", FULL, task="A")]
    assert busy_message(writer, one) == (
        f"Waiting for the script in task [A](~/app#/tasks/A) to finish as this script {WRITE_TAIL}"
    )
    assert busy_message(reader, one) == (
        f"Waiting for the script in task [A](~/app#/tasks/A) to finish as that script {WRITE_TAIL}"
    )
    readers = [party(n, NONE, task=n.upper()) for n in ("c", "a", "b")]
    assert busy_message(writer, readers) == (
        "Waiting on scripts in tasks [A](~/app#/tasks/A), [B](~/app#/tasks/B) and "
        f"[C](~/app#/tasks/C) to finish. This script {WRITE_TAIL}"
    )
    own = [party("mine", FULL, task="W")]
    assert busy_message(writer, own) == (
        f"Waiting on another script in this task to finish as this task {WRITE_TAIL}"
    )
    assert busy_message(party("r2", NONE, task="W"), own) == (
        f"Waiting on another script in this task to finish as another task {WRITE_TAIL}"
    )


def test_cancel_and_timeout_messages():
    waiter = party("w", FULL, task="W")
    two = [party("a", NONE, task="A"), party("b", NONE, task="B")]
    assert canceled_message(waiter, two) == (
        "This task was canceled before it could start. Tasks [A](~/app#/tasks/A) and "
        "[B](~/app#/tasks/B) are still running."
    )
    assert timed_out_message(waiter, two[:1], timedelta(minutes=15)) == (
        "This task waited more than 15 minutes and timed out. Task [A](~/app#/tasks/A) is "
        "still running."
    )
    assert "more than 0 minutes" in timed_out_message(waiter, two, timedelta(seconds=1))
    assert "more than 1,500 minutes" in timed_out_message(waiter, two, timedelta(minutes=1500))
    assert readable_join(["A"]) == "A"
    assert readable_join(["A", "B"]) == "A and B"
