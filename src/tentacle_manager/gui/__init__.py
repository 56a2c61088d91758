"""The desktop manager: the only layer that imports Qt, and a client of the agent API.

The window never runs scripts or blocks its event loop: network calls are awaited on the
qasync loop and disk or psutil work goes to an executor. This module itself stays Qt-free so
that the Qt-free parts of the layer (agent_connection) can be used and tested without Qt.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Coroutine
from typing import Any

_running: set[asyncio.Task[Any]] = set()


def spawn(coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
    """Start work from a Qt signal handler: the task is kept alive until it ends, and a failure
    goes to the loop's exception handler (logged by the app, fatal in tests) instead of
    vanishing with an unreferenced task."""
    task = asyncio.get_running_loop().create_task(coroutine)
    _running.add(task)
    task.add_done_callback(_finished)
    return task


def _finished(task: asyncio.Task[Any]) -> None:
    _running.discard(task)
    if task.cancelled() or task.exception() is None:
        return
    task.get_loop().call_exception_handler(
        {"message": "Unhandled error in GUI task", "exception": task.exception(), "task": task}
    )


async def cancel_and_wait(*tasks: asyncio.Task[Any] | None) -> None:
    """Cancel the tasks and wait until each has ended, so that nothing of a panel outlives the
    window or its event loop."""
    for task in tasks:
        if task is not None:
            task.cancel()
    for task in tasks:
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task


def watch_children_without_threads(loop: asyncio.AbstractEventLoop) -> None:
    """Have asyncio learn of a subprocess's exit through a pidfd on the loop itself.

    Python 3.11's default watcher gives every subprocess a thread that reports its exit with
    call_soon_threadsafe, which qasync turns into a Qt signal emitted from that thread; the
    window runs many subprocesses (installs, prerequisite checks), and PySide has crashed in
    exactly such cross-thread emissions (6.12 at exit, 6.11 now and then). A pidfd needs no
    thread. Python 3.12 and later choose it by themselves; Windows has no child watcher. The
    watcher serves `loop` (asyncio attaches it to a loop set with set_event_loop later on).
    """
    if sys.version_info < (3, 12) and sys.platform == "linux" and hasattr(os, "pidfd_open"):
        watcher = asyncio.PidfdChildWatcher()
        asyncio.set_child_watcher(watcher)
        watcher.attach_loop(loop)
