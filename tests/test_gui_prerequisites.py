"""The prerequisite checks in their view: a hung check among quick ones shows the others
finishing first and then times out with its own message, the window's loop never waits more
than 50 ms meanwhile, and stopping the view (closing the wizard) kills a running check's
command."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import psutil
from pytestqt.qtbot import QtBot

from tentacle_manager.gui.prerequisites_view import PrerequisitesView
from tentacle_manager.gui.responsiveness import LoopLagProbe
from tentacle_manager.setup.prerequisites import (
    Check,
    CheckContext,
    CheckResult,
    CheckState,
    run_command,
)
from tests.gui_support import QtLoop, qloop, wait_until  # noqa: F401 (fixture)

LAG_BUDGET = 0.05  # invariant 6


async def quick(context: CheckContext) -> CheckResult:
    output = await run_command(["bash", "-c", "echo fine"], timeout=5)
    return CheckResult(CheckState.PASSED, output.stdout.strip())


async def hangs(context: CheckContext) -> CheckResult:
    await run_command(["sleep", "1000"], timeout=1000)
    return CheckResult(CheckState.PASSED, "never")


def sleepers() -> list[psutil.Process]:
    return [p for p in psutil.Process().children(recursive=True) if p.name() == "sleep"]


def view_with(qtbot: QtBot, checks: list[Check], tmp_path: Path) -> PrerequisitesView:
    view = PrerequisitesView(lambda: checks, lambda: CheckContext(tmp_path, None))
    qtbot.addWidget(view)
    view.show()
    return view


def row(view: PrerequisitesView, number: int) -> tuple[str, str, str]:
    item = view.table.topLevelItem(number)
    return ("", "", "") if item is None else (item.text(0), item.text(1), item.text(3))


def test_a_hung_check_times_out_while_the_others_report_and_the_loop_stays_free(
    qtbot: QtBot,
    qloop: QtLoop,  # noqa: F811
    tmp_path: Path,
) -> None:
    checks = [
        Check("one", "Quick one", quick),
        Check("hung", "Hangs", hangs, timeout=2.0),
        Check("two", "Quick two", quick),
    ]
    view = view_with(qtbot, checks, tmp_path)
    probe = LoopLagProbe()

    async def scenario() -> float:
        probe.start()
        started = time.monotonic()
        view.start()
        await wait_until(lambda: row(view, 0)[1] == "Passed" and row(view, 2)[1] == "Passed", "q")
        quick_done = time.monotonic() - started
        assert row(view, 1)[1] == "Running" and view.running  # the hung one is still going
        await wait_until(lambda: not view.running, "the hung check times out", 10)
        return quick_done

    quick_done = qloop.run(scenario(), timeout=30)
    lag = qloop.run(probe.stop())
    title, state, message = row(view, 1)
    assert (title, state) == ("Hangs", "Failed")
    assert "did not finish within 2" in message
    assert quick_done < 2.0
    assert view.worst() is CheckState.FAILED
    assert "2 passed, 0 with warnings, 1 failed" in view.summary.text()
    assert sleepers() == []  # the timed-out command was killed
    print(f"quick checks after {quick_done:.2f} s; {lag}")
    assert lag.worst <= LAG_BUDGET, lag


def test_stopping_the_view_kills_the_commands_of_running_checks(
    qtbot: QtBot,
    qloop: QtLoop,  # noqa: F811
    tmp_path: Path,
) -> None:
    view = view_with(qtbot, [Check("hung", "Hangs", hangs, timeout=600)], tmp_path)

    async def scenario() -> None:
        view.start()
        await wait_until(lambda: len(sleepers()) == 1, "the command runs")
        await view.stop()
        await asyncio.sleep(0)

    qloop.run(scenario())
    assert sleepers() == []
