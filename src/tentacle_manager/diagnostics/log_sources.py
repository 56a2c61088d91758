"""The logs worth opening for an instance, in the order an admin looks at them.

First the agent's own log (`OctopusTentacle.txt`, as in Tentacle), then its daily archives
from the newest, then the output logs of the most recent scripts in `<home>/Work`. The viewer
opens any other file too; this is what its source list offers without browsing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from tentacle_manager.agent.host.log_files import LOG_FILE_NAME
from tentacle_manager.agent.workspace.output_log import LOG_FILE as OUTPUT_LOG_NAME
from tentacle_manager.instances.home import HomeLayout

SCRIPTS_LISTED = 30
_ARCHIVE = re.compile(r"OctopusTentacle\.(\d+)\.txt")


@dataclass(frozen=True)
class LogSource:
    label: str
    path: Path


def log_sources(layout: HomeLayout, scripts: int = SCRIPTS_LISTED) -> list[LogSource]:
    """The agent log (listed even before it exists), its archives, the newest script outputs.

    Blocking (it lists folders): run it in an executor.
    """
    sources = [LogSource("Agent log (OctopusTentacle.txt)", layout.logs / LOG_FILE_NAME)]
    sources += [
        LogSource(f"Agent log archive {number} ({path.name})", path)
        for number, path in sorted(_archives(layout.logs))
    ]
    outputs = sorted(_script_outputs(layout.work), key=lambda item: item[0], reverse=True)
    sources += [
        LogSource(f"Script output {path.parent.name}", path) for _, path in outputs[:scripts]
    ]
    return sources


def _archives(logs: Path) -> list[tuple[int, Path]]:
    if not logs.is_dir():
        return []
    found = (_ARCHIVE.fullmatch(path.name) for path in logs.iterdir())
    return [(int(match[1]), logs / match[0]) for match in found if match]


def _script_outputs(work: Path) -> list[tuple[float, Path]]:
    """(modified time, path) of every workspace's output log."""
    if not work.is_dir():
        return []
    outputs = []
    for workspace in work.iterdir():
        path = workspace / OUTPUT_LOG_NAME
        try:
            outputs.append((path.stat().st_mtime, path))
        except (FileNotFoundError, NotADirectoryError):
            continue
    return outputs
