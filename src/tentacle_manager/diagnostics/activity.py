"""Is a quiet script progressing, waiting, or frozen? Read from two samples of its processes.

An admin at 2 a.m. restarts an agent because a slow script *looked* hung; the scripts panel
answers the question instead. Between two samples a script is:

- progressing: it printed, or its processes used CPU or did I/O;
- waiting: it is quiet and every process sleeps interruptibly (on a timer, a socket, a child):
  it will move when what it waits for arrives, and cancelling it will work;
- frozen: it is quiet and a process is stopped (SIGSTOP or a debugger) or has been in
  uninterruptible sleep across both samples (storage or a hung network mount): it will not
  move by itself, and only abandon is certain to free its mutex;
- ended: no process is left.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from tentacle_manager.contracts import ProcessStatus, ScriptProcess

# Below this share of the wall time between samples, CPU use is noise (shell bookkeeping).
CPU_NOISE = 0.01


class Activity(StrEnum):
    PROGRESSING = "progressing"
    WAITING = "waiting"
    FROZEN = "frozen"
    ENDED = "ended"


@dataclass(frozen=True)
class ActivitySample:
    """What the manager saw at `at` (monotonic seconds): the log position and the processes."""

    at: float
    next_log_sequence: int
    processes: tuple[ScriptProcess, ...]


@dataclass(frozen=True)
class Verdict:
    activity: Activity
    reason: str


def classify(before: ActivitySample, now: ActivitySample) -> Verdict:
    if not now.processes:
        return Verdict(Activity.ENDED, "no process of the script is left")
    if now.next_log_sequence > before.next_log_sequence:
        lines = now.next_log_sequence - before.next_log_sequence
        return Verdict(Activity.PROGRESSING, f"{lines} new output line(s)")
    stuck = _stuck(before, now)
    if stuck is not None:
        return Verdict(Activity.FROZEN, stuck)
    working = _working(before, now)
    if working is not None:
        return Verdict(Activity.PROGRESSING, working)
    return Verdict(
        Activity.WAITING,
        "quiet; every process is asleep waiting on a timer, a socket or a child",
    )


def _stuck(before: ActivitySample, now: ActivitySample) -> str | None:
    earlier = {p.pid: p for p in before.processes}
    for process in now.processes:
        if process.status is ProcessStatus.STOPPED:
            return (
                f"{process.name} (pid {process.pid}) is stopped (SIGSTOP or a debugger) and "
                "will not move until continued"
            )
        previous = earlier.get(process.pid)
        if (
            process.status is ProcessStatus.DISK_SLEEP
            and previous is not None
            and (previous.status is ProcessStatus.DISK_SLEEP)
        ):
            return (
                f"{process.name} (pid {process.pid}) has been in an uninterruptible wait "
                "(storage or a network mount) since the last sample"
            )
    return None


def _working(before: ActivitySample, now: ActivitySample) -> str | None:
    """CPU or I/O of processes present in both samples; new processes count as work too."""
    earlier = {p.pid: p for p in before.processes}
    elapsed = max(now.at - before.at, 1e-6)
    cpu = io = 0.0
    for process in now.processes:
        previous = earlier.get(process.pid)
        if previous is None or previous.started != process.started:
            return f"started {process.name} (pid {process.pid})"
        cpu += process.cpu_seconds - previous.cpu_seconds
        if process.io_bytes is not None and previous.io_bytes is not None:
            io += process.io_bytes - previous.io_bytes
    if cpu / elapsed > CPU_NOISE:
        return f"no output, but {100 * cpu / elapsed:.0f}% CPU"
    if io > 0:
        return f"no output, but {io / 1024:.0f} KiB of I/O"
    return None
