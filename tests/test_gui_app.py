"""The app as a user starts it: a real process, offscreen, that must exit cleanly."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from pytestqt.qtbot import QtBot

from tentacle_manager.cli.main import manager_main
from tentacle_manager.gui.agent_connection import ConnectionState
from tentacle_manager.gui.main_window import MainWindow
from tests.gui_support import QtLoop, Sandbox, qloop, sandbox  # noqa: F401 (fixtures)

# What PySide6 6.12 with qasync printed before aborting, and anything else a clean exit has not.
ALARMING = re.compile(r"traceback|exception|error|fatal|abort|dealloc|segmentation", re.I)
CHILD_PROCESSES = 60


def test_app_runs_many_child_processes_on_its_loop_and_exits_cleanly(
    sandbox: Sandbox,  # noqa: F811
) -> None:
    """PySide6 6.12 + qasync aborted at interpreter exit after ~50 child processes on the Qt
    loop; the window here also has an instance to poll, so its tasks must wind down too."""
    sandbox.create_instance("Tentacle")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tentacle_manager.gui",
            f"--self-test-subprocesses={CHILD_PROCESSES}",
        ],
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert result.returncode == 0, result.stderr
    assert f"{CHILD_PROCESSES} child processes ran" in result.stdout
    assert not ALARMING.search(result.stderr), result.stderr


def test_without_instances_the_window_offers_to_try_locally(
    qtbot: QtBot,
    qloop: QtLoop,  # noqa: F811
    sandbox: Sandbox,  # noqa: F811
) -> None:
    """The welcome page; what Try it locally opens is tested with the wizard."""
    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    qloop.run(window.start())
    assert window.pages.currentWidget() is window.welcome
    assert window.connection.status.state is ConnectionState.NO_INSTANCE
    assert window.try_locally.isVisible()
    qloop.run(window.shutdown())


def test_tentacle_manager_command_is_the_window(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        manager_main(["--help"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.startswith("usage: tentacle-manager")
