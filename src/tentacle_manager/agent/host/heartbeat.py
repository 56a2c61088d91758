"""`<home>/livez.heartbeat`, touched every ten seconds so `tentacle livez` and watchdogs can tell
a live agent from a hung one."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

HEARTBEAT_FILE = "livez.heartbeat"
INTERVAL_SECONDS = 10.0


def touch(home: Path) -> None:
    (home / HEARTBEAT_FILE).touch()


async def beat(home: Path, interval: float = INTERVAL_SECONDS) -> None:
    while True:
        await asyncio.to_thread(touch, home)
        await asyncio.sleep(interval)


def age_seconds(home: Path) -> float | None:
    """How long ago the agent last beat, or None if it never did."""
    try:
        return time.time() - (home / HEARTBEAT_FILE).stat().st_mtime
    except FileNotFoundError:
        return None
