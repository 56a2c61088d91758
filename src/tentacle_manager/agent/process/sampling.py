"""A snapshot of a script's processes for the manager: who they are, what they are doing,
and what the cancel ladder has done to them.

The manager's scripts panel and mutex inspector show a holder's tree, and its activity column
compares two samples to tell a script that progresses from one that waits or is frozen.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

import psutil

from tentacle_manager.agent.process.ladder import LadderStep
from tentacle_manager.agent.process.tree import ScriptProcesses, name_of
from tentacle_manager.contracts import LadderRung, ProcessStatus, ScriptProcess

_STATUS = {
    psutil.STATUS_RUNNING: ProcessStatus.RUNNING,
    psutil.STATUS_SLEEPING: ProcessStatus.SLEEPING,
    psutil.STATUS_IDLE: ProcessStatus.SLEEPING,
    psutil.STATUS_WAITING: ProcessStatus.SLEEPING,
    psutil.STATUS_DISK_SLEEP: ProcessStatus.DISK_SLEEP,
    psutil.STATUS_STOPPED: ProcessStatus.STOPPED,
    psutil.STATUS_TRACING_STOP: ProcessStatus.STOPPED,
    psutil.STATUS_ZOMBIE: ProcessStatus.ZOMBIE,
}


def sample(processes: ScriptProcesses) -> list[ScriptProcess]:
    """Every live process of the script, entry first; blocking (psutil): run it off the loop."""
    found = processes.find()
    found.sort(key=lambda p: (p.pid != processes.entry_pid, p.pid))
    return [described for p in found if (described := _describe(p)) is not None]


def rung_of(step: LadderStep) -> LadderRung:
    return LadderRung(
        signal=step.rung.signal_name,
        at=datetime.fromisoformat(step.at),
        signalled=list(step.signalled),
        alive_after=list(step.alive_after),
        waited_seconds=round(step.waited, 3),
    )


def _describe(process: psutil.Process) -> ScriptProcess | None:
    try:
        with process.oneshot():
            times = process.cpu_times()
            return ScriptProcess(
                pid=process.pid,
                parent_pid=process.ppid() or None,
                name=name_of(process),
                status=_STATUS.get(process.status(), ProcessStatus.OTHER),
                cpu_seconds=round(times.user + times.system, 3),
                io_bytes=_io_bytes(process),
                started=datetime.fromtimestamp(process.create_time(), UTC),
            )
    except psutil.Error:
        return None  # it ended while we looked


def _io_bytes(process: psutil.Process) -> int | None:
    with contextlib.suppress(psutil.Error, AttributeError, NotImplementedError):
        counters = process.io_counters()
        return counters.read_bytes + counters.write_bytes
    return None
