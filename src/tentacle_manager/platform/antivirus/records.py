"""The plain records the anti-virus probes return, and how a probe says it could not look.

They are shared by the probes of both operating systems (a Windows service and a systemd unit
are the same record), so they live apart from any one probe.
"""

from __future__ import annotations

from dataclasses import dataclass


class ProbeUnavailable(Exception):
    """The probe could not look here: its tool is missing, it is the wrong OS, or it lacks the
    rights. The message says which, for the report's "not checked" list, so a clean report is
    never mistaken for a thorough one."""


@dataclass(frozen=True)
class RunningProcess:
    pid: int
    name: str
    exe: str  # "" when the OS hides it (another user's process, without privileges)
    cmdline: tuple[str, ...]

    def describe(self) -> str:
        return f"pid {self.pid} {self.name}" + (f" ({self.exe})" if self.exe else "")


@dataclass(frozen=True)
class InstalledService:
    name: str  # without systemd's ".service"
    state: str  # as the manager words it: Windows "Running", systemd "active/running", ...

    @property
    def running(self) -> bool:
        return self.state.casefold().startswith(("running", "active"))


@dataclass(frozen=True)
class InstalledPackage:
    name: str
    version: str
    manager: str  # "dpkg" or "rpm"


@dataclass(frozen=True)
class FanotifyGroup:
    """A process holding a fanotify group: the kernel hook on-access scanners use on Linux."""

    pid: int
    process: str
    fd: int
    marks: int  # inodes, mounts or filesystems it watches
    blocking: bool  # it asked for permission events: a watched open or exec waits for its verdict

    def describe(self) -> str:
        waits = "opens and execs wait for its verdict" if self.blocking else "notification only"
        marks = f"{self.marks} mark(s)"
        return f"pid {self.pid} {self.process} holds fanotify fd {self.fd}: {marks}, {waits}"


@dataclass(frozen=True)
class AuditRule:
    source: str  # "auditctl -l" or "<file>:<line>"
    text: str
