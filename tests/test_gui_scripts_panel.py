"""The scripts panel against a real agent: a stuck FullIsolation holder with two waiters;
cancel starts the ladder, abandon frees the mutex and the first waiter runs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox
from pytestqt.qtbot import QtBot

from tentacle_manager.gui.agent_connection import AgentConnection
from tentacle_manager.gui.scripts_panel import ScriptsPanel
from tests.gui_support import (  # noqa: F401 (fixtures)
    InProcessAgent,
    QtLoop,
    Sandbox,
    our_widgets,
    qloop,
    sandbox,
)
from tests.support import start_command

# Ignores the polite signals, so a cancel cannot end it before the abandon.
STUBBORN = "trap '' INT TERM; echo holding; while true; do sleep 0.05; done"


def answer_yes(panel: ScriptsPanel) -> None:
    box = panel._confirmation
    assert box is not None and box.isVisible()
    box.button(QMessageBox.StandardButton.Yes).click()


def states(panel: ScriptsPanel) -> dict[str, str]:
    model = panel._model
    return {model.row_at(i).ticket: model.row_at(i).state for i in range(model.rowCount())}


def ladder(panel: ScriptsPanel) -> list[str]:
    return [panel._ladder.item(i).text() for i in range(panel._ladder.count())]


async def refreshed_until(
    panel: ScriptsPanel, condition: Callable[[], bool], what: str, timeout: float = 15.0
) -> None:
    """Refresh the panel as its own loop would, until `condition` holds."""
    started = time.monotonic()
    while True:
        await panel.refresh()
        if condition():
            return
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting until {what}")
        await asyncio.sleep(0.1)


def test_cancel_starts_the_ladder_and_abandon_lets_the_first_waiter_run(
    qtbot: QtBot,
    qloop: QtLoop,  # noqa: F811
    sandbox: Sandbox,  # noqa: F811
) -> None:
    instance = sandbox.create_instance("Tentacle")
    agent = InProcessAgent(instance)
    qloop.run(agent.start())
    connection = AgentConnection()
    panel = ScriptsPanel(connection)
    qtbot.addWidget(panel)
    panel.show()

    async def scenario() -> None:
        await connection.select(instance)
        await refreshed_until(panel, lambda: connection.agent is not None, "it connects")
        client = connection.agent
        assert client is not None
        await client.start_script(start_command("holder", STUBBORN, mutex="web"))
        await refreshed_until(panel, lambda: states(panel).get("holder") == "running", "it runs")
        for name in ("waiter-1", "waiter-2"):
            await client.start_script(start_command(name, f"echo {name} ran", mutex="web"))
        await refreshed_until(
            panel,
            lambda: (
                states(panel) == {"holder": "running", "waiter-1": "queued", "waiter-2": "queued"}
            ),
            "both wait behind the holder",
        )
        assert list(states(panel)) == ["holder", "waiter-1", "waiter-2"]  # FIFO order

        panel.select("holder")
        assert panel._cancel.isEnabled() and panel._abandon.isEnabled()
        panel.ask_cancel()
        answer_yes(panel)
        await refreshed_until(
            panel, lambda: any("SIGINT" in line for line in ladder(panel)), "SIGINT is shown"
        )
        assert states(panel)["holder"] == "cancelling"
        assert "holding" in panel._output.toPlainText()
        assert panel._tree.topLevelItemCount() >= 1  # the holder's process tree

        panel.ask_abandon()
        answer_yes(panel)
        await refreshed_until(
            panel,
            lambda: states(panel).get("waiter-1") == "complete",
            "the first waiter runs once the holder is abandoned",
        )
        assert states(panel)["holder"] in ("abandoned", "quarantined")

    qloop.run(scenario(), timeout=90)
    qloop.run(connection.close())
    qloop.run(agent.stop())


def test_every_control_has_an_accessible_name(qtbot: QtBot) -> None:
    panel = ScriptsPanel(AgentConnection())
    qtbot.addWidget(panel)
    unnamed = [
        f"{type(w).__name__} {w.objectName()!r}"
        for w in our_widgets(panel)
        if not w.accessibleName()
    ]
    assert unnamed == []


def test_the_panel_can_be_used_with_the_keyboard_alone(qtbot: QtBot) -> None:
    """Tab reaches every control, and the shortcuts are listed in the context menu."""
    panel = ScriptsPanel(AgentConnection())
    qtbot.addWidget(panel)
    panel.show()
    panel._table.setFocus()
    reached = set()
    for _ in range(30):
        widget = panel.focusWidget()
        if widget is not None:
            reached.add(widget.accessibleName() or type(widget).__name__)
        qtbot.keyClick(widget or panel, Qt.Key.Key_Tab)
    # the table, the details' tab bar (Qt names it for screen readers itself), the output
    assert {"Scripts", "QTabBar", "Output of the selected script"} <= reached, reached
    shortcuts = {a.text(): a.shortcut().toString() for a in panel._actions}
    assert shortcuts == {"Cancel script": "Del", "Abandon script": "Shift+Del"}
