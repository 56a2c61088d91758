"""The task-log texts a waiting script writes, worded exactly as Tentacle's TaskLock does.

One deliberate difference: the texts always name who is in the way (by server task id, or by
ticket when a script has no task id). Tentacle prints "(error - task not found)" when its holder
tracking has lost the id, which tells an admin nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal

from tentacle_manager.contracts import MutexParty, ScriptIsolationLevel

_REQUIREMENT = (
    "requires that no other Octopus scripts are executing on this target at the same time."
)


def task_label(party: MutexParty) -> str:
    return party.task_id or party.ticket.task_id


def task_link(task_id: str) -> str:
    return f"[{task_id}](~/app#/tasks/{task_id})"


def readable_join(items: Sequence[str]) -> str:
    """ "A", "A and B", "A, B and C" (Humanizer's ReadableJoin)."""
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} and {items[-1]}"


def _tasks(blockers: Sequence[MutexParty], waiter_task: str) -> list[str]:
    ids = sorted({task_label(b) for b in blockers})
    return ["This Task" if task_id == waiter_task else task_link(task_id) for task_id in ids]


def _holders_phrase(blockers: Sequence[MutexParty], waiter_task: str) -> str:
    tasks = _tasks(blockers, waiter_task)
    if not tasks:
        return ""
    if len(tasks) == 1:
        return f"Task {tasks[0]} is still running."
    return f"Tasks {readable_join(tasks)} are still running."


def busy_message(waiter: MutexParty, blockers: Sequence[MutexParty]) -> str:
    waiter_task = task_label(waiter)
    wants_write = waiter.level is ScriptIsolationLevel.FULL_ISOLATION
    blocking_tasks = {task_label(b) for b in blockers}
    if blocking_tasks == {waiter_task}:
        whose = "this" if wants_write else "another"
        return f"Waiting on another script in this task to finish as {whose} task {_REQUIREMENT}"
    if len(blocking_tasks) >= 2:
        tasks = readable_join(_tasks(blockers, waiter_task))
        return f"Waiting on scripts in tasks {tasks} to finish. This script {_REQUIREMENT}"
    (task,) = _tasks(blockers, waiter_task)
    whose = "this" if wants_write else "that"
    return f"Waiting for the script in task {task} to finish as {whose} script {_REQUIREMENT}"


def canceled_message(waiter: MutexParty, blockers: Sequence[MutexParty]) -> str:
    holders = _holders_phrase(blockers, task_label(waiter))
    return f"This task was canceled before it could start. {holders}".rstrip()


def timed_out_message(waiter: MutexParty, blockers: Sequence[MutexParty], waited: timedelta) -> str:
    minutes = Decimal(waited.total_seconds() / 60).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    holders = _holders_phrase(blockers, task_label(waiter))
    return f"This task waited more than {int(minutes):,} minutes and timed out. {holders}".rstrip()
