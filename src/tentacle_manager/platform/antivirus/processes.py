"""The running processes, with the name, image and command line that product signatures and
clamd's config discovery need."""

from __future__ import annotations

import psutil

from tentacle_manager.platform.antivirus.records import RunningProcess


def running_processes() -> list[RunningProcess]:
    """Every process psutil can list. Details the OS hides (another user's image path without
    privileges) stay empty rather than failing the walk: the name alone is still evidence."""
    found = []
    for process in psutil.process_iter(["pid", "name", "exe", "cmdline"], ad_value=None):
        info = process.info
        found.append(
            RunningProcess(
                pid=info["pid"],
                name=info["name"] or "",
                exe=info["exe"] or "",
                cmdline=tuple(info["cmdline"] or ()),
            )
        )
    return found
