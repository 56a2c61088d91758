"""The desktop app: one QApplication, asyncio running on it through qasync, and the window.

The loop lives in an `asyncio.Runner`, so closing the window cancels what is left, shuts the
executor down and closes the loop in the order asyncio expects. Closing the last window does
not quit Qt by itself: the main coroutine finishes first, and only then does the loop stop.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from typing import Any, cast

from PySide6.QtWidgets import QApplication
from qasync import QEventLoop

from tentacle_manager.gui import watch_children_without_threads
from tentacle_manager.gui.collector import MainThreadCollector
from tentacle_manager.gui.main_window import MainWindow
from tentacle_manager.gui.responsiveness import LoopLagProbe
from tentacle_manager.gui.theme import THEMES, apply_theme

log = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tentacle-manager", description="Tentacle Manager: set up and watch Tentacle agents."
    )
    parser.add_argument("--instance", help="The instance to show first")
    parser.add_argument(
        "--theme", choices=THEMES, default="system", help="Colours: the desktop's, light or dark"
    )
    # Hidden: run this many child processes on the Qt loop after start-up, then quit. The test
    # suite uses it to keep watch on PySide6 6.12's abort at exit after ~50 (see pyproject).
    parser.add_argument(
        "--self-test-subprocesses", type=int, default=0, metavar="N", help=argparse.SUPPRESS
    )
    parser.add_argument(
        "--measure-lag",
        type=float,
        default=0,
        metavar="SECONDS",
        help="Run for SECONDS, print how long the event loop was ever blocked, and quit",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    options = _parser().parse_args(sys.argv[1:] if argv is None else list(argv))
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    app = cast(QApplication, QApplication.instance() or QApplication([sys.argv[0]]))
    app.setApplicationName("Tentacle Manager")
    app.setQuitOnLastWindowClosed(False)
    apply_theme(app, options.theme)
    collector = MainThreadCollector()
    collector.start()
    try:
        with asyncio.Runner(loop_factory=lambda: QEventLoop(app)) as runner:
            watch_children_without_threads(runner.get_loop())
            return runner.run(_run(options))
    finally:
        collector.stop()


async def _run(options: argparse.Namespace) -> int:
    window = MainWindow(preferred=options.instance)
    asyncio.get_running_loop().set_exception_handler(lambda loop, context: _report(window, context))
    closed = asyncio.Event()
    window.closed.connect(closed.set)
    window.show()
    await window.start()
    status = 0
    if options.self_test_subprocesses:
        status = await _run_subprocesses(options.self_test_subprocesses)
        window.close()
    if options.measure_lag:
        probe = LoopLagProbe()
        probe.start()
        await asyncio.sleep(options.measure_lag)
        print(await probe.stop(), flush=True)
        window.close()
    await closed.wait()
    await window.shutdown()
    window.deleteLater()
    return status


def _report(window: MainWindow, context: dict[str, Any]) -> None:
    """A bug in a background task: log it in full, tell the user, and keep the window alive."""
    error = context.get("exception")
    message = context.get("message", "Unexpected error")
    log.error("%s", message, exc_info=error)
    window.show_error(f"{message}: {error}" if error else message)


async def _run_subprocesses(count: int) -> int:
    for _ in range(count):
        child = await asyncio.create_subprocess_exec(sys.executable, "-I", "-S", "-c", "pass")
        if await child.wait() != 0:
            print(f"self-test: a child process failed with {child.returncode}", file=sys.stderr)
            return 1
    print(f"self-test: {count} child processes ran on the Qt event loop")
    return 0
