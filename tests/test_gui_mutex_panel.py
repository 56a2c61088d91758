"""The mutex inspector against a real agent: a stuck holder and two waiters in order, a waiter
removed from the queue, the jump to the scripts panel, and the timeline drawn."""

from __future__ import annotations

from PySide6.QtWidgets import QMessageBox
from pytestqt.qtbot import QtBot

from tentacle_manager.contracts import ScriptIsolationLevel, utc_now
from tentacle_manager.gui.agent_connection import AgentConnection
from tentacle_manager.gui.mutex_panel import MutexPanel
from tests.gui_support import (  # noqa: F401 (fixtures)
    InProcessAgent,
    QtLoop,
    Sandbox,
    our_widgets,
    qloop,
    sandbox,
    wait_until,
)
from tests.support import kill_strays, start_command

HOLDING = "echo holding; while true; do sleep 0.05; done"


def lock_rows(panel: MutexPanel) -> list[tuple[str, str]]:
    rows = []
    for lock in range(panel.locks.topLevelItemCount()):
        parent = panel.locks.topLevelItem(lock)
        for child in range(parent.childCount()):
            item = parent.child(child)
            rows.append((item.text(3), item.text(1)))
    return rows


def test_holder_and_waiters_in_order_and_a_waiter_leaves_the_queue(
    qtbot: QtBot,
    qloop: QtLoop,  # noqa: F811
    sandbox: Sandbox,  # noqa: F811
) -> None:
    instance = sandbox.create_instance("Tentacle")
    agent = InProcessAgent(instance)
    qloop.run(agent.start())
    connection = AgentConnection()
    panel = MutexPanel(connection)
    qtbot.addWidget(panel)
    panel.resize(900, 600)
    panel.show()
    jumped: list[str] = []
    panel.show_script.connect(jumped.append)

    async def scenario() -> None:
        await connection.select(instance)
        await wait_until(lambda: connection.agent is not None, "it connects")
        panel.start()
        client = connection.agent
        assert client is not None
        await client.start_script(start_command("holder", HOLDING, mutex="web"))
        await wait_until(lambda: lock_rows(panel) == [("holder", "holds")], "the holder shows")
        await client.start_script(start_command("waiter-1", "echo one", mutex="web"))
        await client.start_script(
            start_command(
                "waiter-2", "echo two", mutex="web", isolation=ScriptIsolationLevel.NO_ISOLATION
            )
        )
        expected = [("holder", "holds"), ("waiter-1", "waits (1)"), ("waiter-2", "waits (2)")]
        await wait_until(lambda: lock_rows(panel) == expected, "both waiters show, in order")

        panel._reselect("waiter-2")
        assert "waits for web, held by ServerTasks-holder" in panel.explanation.text()
        assert "1 waiting ahead of it" in panel.explanation.text()
        assert panel.leave.isEnabled()
        panel.leave.click()
        panel._confirmation.button(QMessageBox.StandardButton.Yes).click()
        await wait_until(lambda: ("waiter-2", "waits (2)") not in lock_rows(panel), "it left")
        assert lock_rows(panel) == expected[:2]  # the others keep their places

        panel._reselect("holder")
        await wait_until(lambda: panel.processes.topLevelItemCount() == 1, "its processes show")
        assert panel.processes.topLevelItem(0).text(0) == "bash"
        panel.jump.click()
        assert jumped == ["holder"]
        intervals = panel.history.intervals(utc_now())
        assert [i.party.ticket.task_id for i in intervals["web"]][:1] == ["holder"]
        image = panel.timeline.grab().toImage()
        assert image.width() > 0 and not image.isNull()
        await panel.stop()

    try:
        qloop.run(scenario(), timeout=90)
    finally:
        qloop.run(connection.close())
        qloop.run(agent.stop())
        kill_strays(instance.layout().home)  # the holder never ends by itself


def test_every_control_of_the_inspector_has_an_accessible_name(qtbot: QtBot) -> None:
    panel = MutexPanel(AgentConnection())
    qtbot.addWidget(panel)
    unnamed = [type(w).__name__ for w in our_widgets(panel) if not w.accessibleName()]
    assert unnamed == []
