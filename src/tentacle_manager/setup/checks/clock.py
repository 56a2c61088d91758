"""Is the system clock plausible? Said honestly: offline, a clock can only be shown wrong.

TLS certificates, log times and the server's view of this machine all rely on the clock, and
a machine with a dead RTC or no time sync drifts without anyone noticing. Without a network
this check can prove a clock wrong (a year before this software existed, or files written
"in the future" by this same machine) and can ask the local time service whether it is
synchronised; it cannot prove a clock right, and says so when no time service answers.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from tentacle_manager.setup.prerequisites import (
    Check,
    CheckContext,
    CheckResult,
    CheckState,
    run_command,
)

EARLIEST_PLAUSIBLE = datetime(2025, 1, 1, tzinfo=UTC)  # before this software was written
LATEST_PLAUSIBLE = datetime(2100, 1, 1, tzinfo=UTC)
FUTURE_TOLERANCE = 300.0  # seconds; file systems and clock steps blur the last few minutes
_ENTRIES_PER_FOLDER = 2000  # bounds the scan of a huge /tmp
_SYNC_TIMEOUT = 5.0
_PACKAGE = Path(__file__).resolve().parents[2]


def clock_check() -> Check:
    return Check("clock", "System clock", _clock)


@dataclass(frozen=True)
class _Sync:
    synchronised: bool | None  # None: no time service answered
    source: str = ""


async def _clock(context: CheckContext) -> CheckResult:
    now = datetime.now(UTC)
    stamp = now.strftime("%Y-%m-%d %H:%M:%S UTC")
    if not EARLIEST_PLAUSIBLE <= now < LATEST_PLAUSIBLE:
        return CheckResult(
            CheckState.FAILED,
            f"The system clock says {stamp}, which cannot be right.",
            "Set the date and time, and enable time synchronisation (NTP); certificates are "
            "rejected by a machine whose clock is this far off.",
        )
    newest, sync = await asyncio.gather(
        asyncio.to_thread(_newest_file, _folders(context.home)), _synchronisation()
    )
    if newest is not None and newest[0] > now.timestamp() + FUTURE_TOLERANCE:
        written = datetime.fromtimestamp(newest[0], UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        return CheckResult(
            CheckState.WARNING,
            f"The system clock ({stamp}) is behind a file this machine wrote: {newest[1]} was "
            f"modified at {written}. The clock has probably been set back.",
            "Check the date and time, and enable time synchronisation (NTP).",
        )
    if sync.synchronised is False:
        return CheckResult(
            CheckState.WARNING,
            f"The system clock ({stamp}) is not synchronised with a time source{sync.source}.",
            "Enable time synchronisation: `timedatectl set-ntp true`, chrony or, on Windows, "
            "the Windows Time service.",
        )
    if sync.synchronised:
        return CheckResult(
            CheckState.PASSED, f"The system clock ({stamp}) is synchronised{sync.source}."
        )
    return CheckResult(
        CheckState.PASSED,
        f"The system clock ({stamp}) looks plausible, but no time service answered, so whether "
        "it is synchronised cannot be known offline.",
        "If deployments report certificate or time errors, enable time synchronisation (NTP).",
    )


def _folders(home: Path) -> list[Path]:
    """Folders this machine writes with its own clock: logs, temporary files, the home and
    this installation."""
    return [home, Path("/var/log"), Path(tempfile.gettempdir()), _PACKAGE]


def _newest_file(folders: list[Path]) -> tuple[float, Path] | None:
    newest: tuple[float, Path] | None = None
    for folder in folders:
        try:
            entries = list(itertools.islice(folder.iterdir(), _ENTRIES_PER_FOLDER))
        except OSError:
            continue  # absent or unreadable: no evidence either way
        for entry in entries:
            try:
                modified = entry.lstat().st_mtime
            except OSError:
                continue  # removed while we looked
            if newest is None or modified > newest[0]:
                newest = (modified, entry)
    return newest


async def _synchronisation() -> _Sync:
    if sys.platform == "win32":
        return await _windows_time()
    timedatectl, chrony = await asyncio.gather(_timedatectl(), _chrony())
    return timedatectl if timedatectl.synchronised is not None else chrony


async def _timedatectl() -> _Sync:
    output = await run_command(
        ["timedatectl", "show", "--property=NTPSynchronized", "--value"], timeout=_SYNC_TIMEOUT
    )
    answer = output.stdout.strip().lower() if output.ok else ""
    if answer not in ("yes", "no"):
        return _Sync(None)
    return _Sync(answer == "yes", " (timedatectl)")


async def _chrony() -> _Sync:
    output = await run_command(["chronyc", "-n", "tracking"], timeout=_SYNC_TIMEOUT)
    leap = re.search(r"^Leap status\s*:\s*(.+)$", output.stdout, re.MULTILINE)
    if not output.ok or leap is None:
        return _Sync(None)
    return _Sync("not synchronised" not in leap.group(1).lower(), " (chrony)")


async def _windows_time() -> _Sync:
    output = await run_command(["w32tm", "/query", "/status"], timeout=_SYNC_TIMEOUT)
    source = re.search(r"^Source:\s*(.+)$", output.stdout, re.MULTILINE)
    if not output.ok or source is None:
        return _Sync(None)
    name = source.group(1).strip()
    local = name.startswith(("Local CMOS Clock", "Free-running"))
    return _Sync(not local, f" (Windows Time, source {name})")
