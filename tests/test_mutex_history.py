"""The inspector's timeline data, built from a real agent's change stream."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from tentacle_manager.agent.scripts import ScriptService
from tentacle_manager.contracts import (
    CancelScriptCommand,
    MutexSnapshot,
    ScriptIsolationLevel,
    ticket,
    utc_now,
)
from tentacle_manager.diagnostics.mutex_history import MutexHistory
from tests.support import start_command, wait_complete, wait_for_status


async def test_holds_and_waits_become_intervals_in_order(service: ScriptService, tmp_path) -> None:
    history = MutexHistory()
    history.seed(MutexSnapshot(mutexes=service.isolation.snapshot()))
    unsubscribe = service.isolation.subscribe(history.apply)
    release = tmp_path / "release"
    await service.start_script(
        start_command("holder", f"while [ ! -f {release} ]; do sleep 0.01; done", mutex="web")
    )
    await wait_for_status(service, "holder", lambda s: any("Starting" in r.text for r in s.logs))
    await service.start_script(start_command("waiter", "echo next", mutex="web"))
    await service.start_script(
        start_command(
            "reader", "echo read", mutex="web", isolation=ScriptIsolationLevel.NO_ISOLATION
        )
    )
    await asyncio.sleep(0.2)
    await service.cancel_script(CancelScriptCommand(ticket=ticket("reader")))  # leaves the queue
    release.touch()
    await wait_complete(service, "holder")
    await wait_complete(service, "waiter")
    await wait_complete(service, "reader")
    unsubscribe()

    history.mark_abandoned(ticket("holder"))  # as the scripts panel would after an abandon
    ((lock, intervals),) = history.intervals(utc_now()).items()
    assert lock == "web"
    shape = [
        (i.party.ticket.task_id, "wait" if i.waiting else "hold", i.end is not None)
        for i in intervals
    ]
    assert shape[0] == ("holder", "hold", True)
    assert ("waiter", "wait", True) in shape and ("waiter", "hold", True) in shape
    assert ("reader", "wait", True) in shape and ("reader", "hold", True) not in shape
    holder = intervals[0]
    assert holder.abandoned and holder.end >= holder.start
    waiter_wait = next(i for i in intervals if i.party.ticket == ticket("waiter") and i.waiting)
    assert waiter_wait.end <= next(
        i for i in intervals if i.party.ticket == ticket("waiter") and not i.waiting
    ).start + timedelta(milliseconds=1)

    later = utc_now() + timedelta(hours=2)
    assert history.intervals(later) == {}  # older than the window: dropped
