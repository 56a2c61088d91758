"""Finding every process that belongs to one script, even after its entry process has gone.

Three nets, because each alone misses something: the entry process's descendants (lost when a
child is re-parented), the script's session (left by daemons that call setsid), and a tracking
tag in the environment (survives both, lost only if a process clears its environment). Only
processes started after the entry process are examined, which keeps the scan cheap.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import psutil

TRACKING_VARIABLE = "TENTACLE_TRACKING_ID"
_IS_POSIX = sys.platform != "win32"


def is_alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def name_of(process: psutil.Process) -> str:
    """The process name, remembered from when it was found (psutil forgets it at exit)."""
    remembered = getattr(process, "info", {}).get("name")
    if remembered:
        return remembered
    try:
        return process.name()
    except psutil.Error:
        return "?"


def describe(processes: Iterable[psutil.Process]) -> str:
    return ", ".join(f"{process.pid} ({name_of(process)})" for process in processes)


@dataclass(frozen=True)
class ScriptProcesses:
    entry_pid: int
    entry_create_time: float
    tracking_id: str

    def entry(self) -> psutil.Process | None:
        try:
            process = psutil.Process(self.entry_pid)
            if abs(process.create_time() - self.entry_create_time) > 0.01:
                return None  # the pid was reused by an unrelated process
            return process
        except psutil.Error:
            return None

    def quick_find(self) -> list[psutil.Process]:
        """The entry process and its descendants: cheap, but blind to re-parented processes."""
        entry = self.entry()
        if entry is None or not is_alive(entry):
            return []
        found = [entry]
        with contextlib.suppress(psutil.Error):
            found += entry.children(recursive=True)
        return _named(found)

    def find(self) -> list[psutil.Process]:
        """Every live process of the script, entry first."""
        found = {process.pid: process for process in self.quick_find()}
        own = os.getpid()
        for process in psutil.process_iter(["create_time"]):
            pid = process.pid
            if pid in found or pid == own:
                continue
            created = process.info.get("create_time")
            if created is None or created < self.entry_create_time - 0.01:
                continue
            if self._belongs(process) and is_alive(process):
                found[pid] = process
        return _named(list(found.values()))

    def _belongs(self, process: psutil.Process) -> bool:
        if _IS_POSIX:
            with contextlib.suppress(OSError):
                if os.getsid(process.pid) == self.entry_pid:
                    return True
        try:
            return process.environ().get(TRACKING_VARIABLE) == self.tracking_id
        except (psutil.Error, OSError):
            return False

    def group_is_empty(self) -> bool:
        """No process is left in the script's process group (a signal-0 probe, no scan)."""
        if not _IS_POSIX:
            return False
        try:
            os.killpg(self.entry_pid, 0)
        except ProcessLookupError:
            return True
        except OSError:
            return False
        return False

    def holding(self, paths: Iterable[Path]) -> list[psutil.Process]:
        """The script's processes that still have any of `paths` open (its output files)."""
        wanted = {str(p.resolve()) for p in paths}
        holders = []
        for process in self.find():
            try:
                if any(f.path in wanted for f in process.open_files()):
                    holders.append(process)
            except (psutil.Error, OSError):
                continue
        return holders


def processes_of_home(home: Path) -> list[psutil.Process]:
    """Every live script process started by an agent over `home`, whichever ticket it was for.

    For removing an instance (and for test hygiene): matched by the tracking tag and the
    `TentacleHome` every script inherits.
    """
    marker = str(home)
    return [
        process
        for process, environ in tagged_processes()
        if environ.get("TentacleHome", "").startswith(marker)
    ]


def tagged_processes() -> Iterator[tuple[psutil.Process, dict[str, str]]]:
    """Every readable process carrying a tracking tag, with its environment (one full pass)."""
    for process in psutil.process_iter():
        try:
            environ = process.environ()
        except (psutil.Error, OSError):
            continue
        if TRACKING_VARIABLE in environ:
            yield process, environ


class Rung(Enum):
    """The three escalating ways of asking a process to stop."""

    INTERRUPT = "interrupt"
    TERMINATE = "terminate"
    KILL = "kill"

    @property
    def signal_name(self) -> str:
        if _IS_POSIX:
            return {"interrupt": "SIGINT", "terminate": "SIGTERM", "kill": "SIGKILL"}[self.value]
        return {"interrupt": "CTRL_BREAK", "terminate": "terminate", "kill": "kill"}[self.value]


_POSIX_SIGNALS = (
    {Rung.INTERRUPT: signal.SIGINT, Rung.TERMINATE: signal.SIGTERM, Rung.KILL: signal.SIGKILL}
    if _IS_POSIX
    else {}
)


def _deliver(process: psutil.Process, rung: Rung) -> None:
    if rung is Rung.KILL:
        process.kill()
    elif rung is Rung.TERMINATE:
        process.terminate()
    elif _IS_POSIX:
        process.send_signal(signal.SIGINT)
    else:
        process.send_signal(signal.CTRL_BREAK_EVENT)  # type: ignore[attr-defined]


class Signaller:
    """Delivers signals to processes; disabled only by the test-only kill switch."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled

    def send(self, processes: Iterable[psutil.Process], rung: Rung) -> list[psutil.Process]:
        """Signal each process; returns those the signal reached."""
        if not self.enabled:
            return []
        reached = []
        for process in processes:
            try:
                _deliver(process, rung)
                reached.append(process)
            except psutil.Error:
                continue
        return reached

    def signal_group(self, processes: ScriptProcesses, rung: Rung) -> bool:
        """Signal the script's whole process group in one call, before any (slower) scan.

        Returns whether the group was signalled; members need not be signalled again.
        """
        if not self.enabled or not _IS_POSIX:
            return False
        try:
            os.killpg(processes.entry_pid, _POSIX_SIGNALS[rung])
            return True
        except OSError:
            return False

    def send_outside_group(
        self,
        targets: Iterable[psutil.Process],
        processes: ScriptProcesses,
        rung: Rung,
        members: set[int],
    ) -> list[psutil.Process]:
        """Signal the targets a group signal did not reach; returns every target reached.

        `members` are the pids that were in the group when it was signalled (empty when it was
        not); a member may already have died of that signal, and still counts as reached.
        """
        if not self.enabled:
            return []
        in_group, outside = [], []
        for process in targets:
            if process.pid in members or (
                members and process_group(process.pid) == processes.entry_pid
            ):
                in_group.append(process)
            else:
                outside.append(process)
        return in_group + self.send(outside, rung)


def _named(processes: list[psutil.Process]) -> list[psutil.Process]:
    """Read each name now, so a process that dies next can still be named in the log."""
    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.info = {**getattr(process, "info", {}), "name": process.name()}
    return processes


def process_group(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None
