"""GUI tests on the real Qt widgets (offscreen) with asyncio running on qasync, as in the app.

pytest-qt gives the one QApplication but does not drive asyncio, and pytest-asyncio's loop
is not Qt's. `qloop` makes a qasync `QEventLoop` per test on that application, in qasync's
"already running" mode: asyncio is live whenever Qt processes events, so a callback that Qt
delivers between two steps of a test (or while pytest-qt waits) still finds its loop. (With
`run_until_complete` instead, qasync processes events once more after the loop has stopped,
and a task stepped then fails with "no running event loop".) A test fails when anything
reaches the loop's exception handler: a background task of the window that died would
otherwise go unnoticed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import socket
import time
import traceback
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

os.environ["QT_QPA_PLATFORM"] = "offscreen"  # before pytest-qt creates the QApplication

from PySide6.QtCore import QEventLoop as QtEventLoop
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QAbstractItemView, QApplication, QHeaderView, QWidget
from qasync import QEventLoop

from tentacle_manager.agent.host.plan import plan_for
from tentacle_manager.agent.host.run import serve
from tentacle_manager.agent.scripts import ScriptServiceSettings
from tentacle_manager.cli.main import main as tentacle
from tentacle_manager.gui import watch_children_without_threads
from tentacle_manager.gui.collector import MainThreadCollector
from tentacle_manager.instances.instance import Instance
from tentacle_manager.instances.registry import InstanceRegistry, select_instance

T = TypeVar("T")
POLL = 0.02


class QtLoop:
    """A qasync loop that remembers every error reported to it."""

    def __init__(self, app: QApplication) -> None:
        self.app = app
        self.loop = QEventLoop(app, already_running=True)
        watch_children_without_threads(self.loop)  # as the app does
        self.collector = MainThreadCollector()  # as the app does
        self.collector.start()
        self.errors: list[dict[str, Any]] = []
        self.loop.set_exception_handler(lambda _, context: self.errors.append(context))

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 20.0) -> T:
        """Run `coroutine` with Qt's events flowing; fail at once on a reported error."""
        task = self.loop.create_task(coroutine)
        self._spin_until_done([task], timeout)
        if not task.done():
            task.cancel()
            self._spin_until_done([task], 5.0)
            pytest.fail(f"timed out after {timeout} s", pytrace=False)
        self.check()
        return task.result()

    def check(self) -> None:
        if self.errors:
            described = "\n".join(_describe(context) for context in self.errors)
            self.errors.clear()
            pytest.fail(f"errors reported to the event loop:\n{described}", pytrace=False)

    def close(self) -> None:
        """Cancel what the test left running, let it finish, and close the loop."""
        tasks = list(asyncio.all_tasks(self.loop))
        for task in tasks:
            task.cancel()
        self._spin_until_done(tasks, 10.0)
        # Undo "already running" by hand: qasync's stop() would call QApplication.exit(),
        # after which every nested Qt event loop (ours, pytest-qt's) returns at once.
        self.loop._QEventLoop__is_running = False  # type: ignore[attr-defined]
        self.app.aboutToQuit.disconnect(self.loop._after_run_forever)
        asyncio.events._set_running_loop(None)
        self.loop.close()
        self.collector.stop()

    def _spin_until_done(self, tasks: list[asyncio.Task[Any]], timeout: float) -> None:
        """Let Qt (and so asyncio) run in a nested event loop until the tasks end."""
        pending = [task for task in tasks if not task.done()]
        if not pending:
            return
        waiter = QtEventLoop()
        for task in pending:
            task.add_done_callback(lambda _: all(t.done() for t in pending) and waiter.quit())
        deadline = QTimer()
        deadline.setSingleShot(True)
        deadline.timeout.connect(waiter.quit)
        deadline.start(int(timeout * 1000))
        waiter.exec()
        deadline.stop()


def _describe(context: dict[str, Any]) -> str:
    error = context.get("exception")
    if error is None:
        return str(context.get("message"))
    trace = "".join(traceback.format_exception(error))
    return f"{context.get('message')}: {trace}"


@pytest.fixture
def qloop(qapp: QApplication) -> Iterator[QtLoop]:
    watched = QtLoop(qapp)
    try:
        yield watched
    finally:
        watched.close()
    watched.check()


async def wait_until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> float:
    """Wait, with the loop running, until `condition` holds; returns the seconds it took."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting until {what}")
        await asyncio.sleep(POLL)
    return time.monotonic() - started


def our_widgets(root: QWidget) -> list[QWidget]:
    """The widgets a panel built, without the parts Qt builds inside its own widgets (a tab
    widget's bar, a combo box's popup), which Qt's accessibility layer describes itself."""
    return [w for w in root.findChildren(QWidget) if not _qt_internal(w, root)]


def _qt_internal(widget: QWidget, root: QWidget) -> bool:
    """Qt names such a part (or its container) `qt_...`, gives it a private class, or builds
    it as the header of an item view."""
    parent = widget.parentWidget()
    if isinstance(widget, QHeaderView) and isinstance(parent, QAbstractItemView):
        return True
    if widget.objectName().startswith("qt_") or (
        parent is not None and parent.objectName().startswith("qt_scrollarea_")
    ):
        return True
    part: QWidget | None = widget
    while part is not None and part is not root:
        if part.metaObject().className() != type(part).__name__:
            return True
        part = part.parentWidget()
    return False


# --- a sandboxed machine with real instances -----------------------------------------------


class Sandbox:
    """This test's own instance index, secret store and service state, set up with the real
    `tentacle` verbs (in this process: a CLI subprocess each would cost a second)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def create_instance(self, name: str) -> Instance:
        config = self.root / f"{name}.config"
        home = self.root / name
        run_tentacle(
            "create-instance", f"--instance={name}", f"--config={config}", f"--home={home}"
        )
        run_tentacle("new-certificate", f"--instance={name}")
        run_tentacle(
            "configure",
            f"--instance={name}",
            f"--port={free_port()}",
            "--listenIpAddress=127.0.0.1",
        )
        return self.open(name)

    def open(self, name: str) -> Instance:
        return Instance(select_instance(InstanceRegistry(), instance=name))


def run_tentacle(*args: str) -> None:
    assert tentacle(list(args)) == 0, f"tentacle {' '.join(args)} failed"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    monkeypatch.setenv("TentacleMachineConfigurationHomeDirectory", str(tmp_path / "etc"))
    monkeypatch.setenv("TENTACLE_SECRET_STORE", "file")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("TENTACLE_SERVICE_STATE_ROOT", str(tmp_path / "services"))
    return Sandbox(tmp_path)


class InProcessAgent:
    """The instance's real agent (what `tentacle agent` serves) on the test's event loop;
    `settings`, when given, replace its script service's (a short cancel ladder, say)."""

    def __init__(self, instance: Instance, settings: ScriptServiceSettings | None = None) -> None:
        self._instance = instance
        self._settings = settings
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._stop = asyncio.Event()
        ready = asyncio.Event()
        plan = plan_for(self._instance)
        if self._settings is not None:
            plan = dataclasses.replace(plan, settings=self._settings)
        self._task = asyncio.get_running_loop().create_task(serve(plan, self._stop, ready))
        readiness = asyncio.get_running_loop().create_task(ready.wait())
        await asyncio.wait([self._task, readiness], return_when=asyncio.FIRST_COMPLETED)
        readiness.cancel()
        await asyncio.wait([readiness])
        if self._task.done():
            self._task.result()  # the agent failed to start: say why

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task
