"""Which processes hold fanotify groups, found in /proc.

On Linux, on-access scanners (clamonacc, EDR sensors) hook file access through fanotify. A
process's fanotify group shows as an fd linked to `anon_inode:[fanotify]`, and its fdinfo
lists one `fanotify ...` line per mark with the event mask. Reading the links is cheaper than
reading every fdinfo, so fdinfo is read only for the fds that are fanotify groups.

Another user's fds are hidden unless we are root; the scan counts such processes, so the
report can say the picture is partial instead of implying nobody hooks file access.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from tentacle_manager.platform.antivirus.records import FanotifyGroup, ProbeUnavailable

FANOTIFY_LINK = "anon_inode:[fanotify]"
# FAN_OPEN_PERM | FAN_ACCESS_PERM | FAN_OPEN_EXEC_PERM: the access waits for the listener
PERMISSION_EVENTS = 0x00010000 | 0x00020000 | 0x00040000


@dataclass(frozen=True)
class FanotifyScan:
    groups: tuple[FanotifyGroup, ...]
    hidden: int  # processes whose fds we may not read


def scan_fanotify(proc: Path = Path("/proc")) -> FanotifyScan:
    if not (proc / "self" / "fdinfo").is_dir():
        raise ProbeUnavailable("fanotify: /proc has no fdinfo here (not Linux)")
    groups: list[FanotifyGroup] = []
    hidden = 0
    for entry in os.scandir(proc):
        if not entry.name.isdigit():
            continue
        try:
            groups.extend(_groups_of(Path(entry.path)))
        except PermissionError:
            hidden += 1
        except (FileNotFoundError, ProcessLookupError):
            continue  # it ended while we looked
    return FanotifyScan(tuple(groups), hidden)


def parse_fdinfo(text: str) -> tuple[int, bool] | None:
    """(marks, blocking) for the fdinfo of a fanotify group; None for any other fd.

    The first `fanotify` line is the group's (`fanotify flags:... event-flags:...`); each
    further one is a mark carrying `mask:<hex>`.
    """
    marks = 0
    blocking = False
    is_group = False
    for line in text.splitlines():
        if not line.startswith("fanotify "):
            continue
        is_group = True
        fields = dict(item.split(":", 1) for item in line.split()[1:] if ":" in item)
        if "mask" in fields:
            marks += 1
            blocking = blocking or bool(int(fields["mask"], 16) & PERMISSION_EVENTS)
    return (marks, blocking) if is_group else None


def _groups_of(process: Path) -> list[FanotifyGroup]:
    found = []
    for fd in os.scandir(process / "fd"):
        try:
            if os.readlink(fd.path) != FANOTIFY_LINK:
                continue
            parsed = parse_fdinfo((process / "fdinfo" / fd.name).read_text())
        except FileNotFoundError:
            continue  # the fd was closed while we looked
        if parsed is not None:
            name = (process / "comm").read_text().strip()
            found.append(FanotifyGroup(int(process.name), name, int(fd.name), *parsed))
    return found
