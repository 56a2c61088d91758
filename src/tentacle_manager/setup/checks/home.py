"""The home folder: can this user write there, and is there room to work?

Writability is tested by writing (and removing) a scratch folder, because permission bits lie
to root and say nothing of read-only mounts or immutable folders. Free space is judged by the
rule the agent applies before every script (about 551 MB, Tentacle's): below it, nothing runs.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tentacle_manager.agent.workspace.disk_space import DEFAULT_MINIMUM_FREE_BYTES
from tentacle_manager.setup.prerequisites import (
    Check,
    CheckContext,
    CheckResult,
    CheckState,
    describe_error,
)

COMFORTABLE_FREE_BYTES = 3 * 1024**3  # packages, tools and work folders soon use a few GB
_MB = 1024 * 1024


def home_check() -> Check:
    return Check("home-folder", "Home folder", _home)


@dataclass(frozen=True)
class _Inspection:
    existing: Path  # the home, or its nearest existing ancestor when it is still to be made
    problem: str = ""  # why the home cannot be written, empty when it can
    free: int = 0


async def _home(context: CheckContext) -> CheckResult:
    home = context.home
    seen = await asyncio.to_thread(_inspect, home)
    if seen.problem:
        return CheckResult(
            CheckState.FAILED,
            f"The home folder {home} cannot be used: {seen.problem}.",
            "Choose another home folder, or give this user write access to it.",
        )
    to_make = "" if seen.existing == home else f" (it will be created in {seen.existing})"
    free = seen.free
    space = f"{free / _MB:,.0f} MB free"
    if free < DEFAULT_MINIMUM_FREE_BYTES:
        return CheckResult(
            CheckState.FAILED,
            f"The home folder {home}{to_make} has only {space}; the agent refuses to start "
            f"scripts below {DEFAULT_MINIMUM_FREE_BYTES / _MB:.0f} MB.",
            "Free some space on that volume, or choose a home folder on another one.",
        )
    if free < COMFORTABLE_FREE_BYTES:
        return CheckResult(
            CheckState.WARNING,
            f"The home folder {home}{to_make} is writable but has only {space}; packages and "
            "tools will soon fill it.",
            f"Free space up to a few GB ({COMFORTABLE_FREE_BYTES / _MB:,.0f} MB or more).",
        )
    return CheckResult(CheckState.PASSED, f"The home folder {home}{to_make} is writable; {space}.")


def _inspect(home: Path) -> _Inspection:
    try:
        existing = next(folder for folder in (home, *home.parents) if folder.exists())
    except OSError as error:
        return _Inspection(home, f"its path cannot be examined ({describe_error(error)})")
    if not existing.is_dir():
        return _Inspection(existing, f"{existing} is a file, not a folder")
    try:
        tempfile.TemporaryDirectory(dir=existing, prefix=".tentacle-check-").cleanup()
        free = shutil.disk_usage(existing).free
    except OSError as error:
        return _Inspection(
            existing, f"this user cannot write in {existing} ({error.strerror or error})"
        )
    return _Inspection(existing, free=free)
