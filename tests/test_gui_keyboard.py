"""The whole window with the keyboard alone: Tab reaches every enabled control of every panel,
and Ctrl+1..4 (listed in the View menu) move between the panels (accessibility, issue 4)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QTabWidget, QWidget
from pytestqt.qtbot import QtBot

from tentacle_manager.gui.main_window import MainWindow
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

TAB_PRESSES = 60  # more than any panel has controls: Tab must come round to the start


def focusable(window: MainWindow) -> set[QWidget]:
    """The controls a keyboard user must be able to reach on the panel shown now (a tab widget
    is reached through its tab bar)."""
    return {
        widget.tabBar() if isinstance(widget, QTabWidget) else widget
        for widget in our_widgets(window)
        if widget.isVisible()
        and widget.isEnabled()
        and widget.focusPolicy() & Qt.FocusPolicy.TabFocus == Qt.FocusPolicy.TabFocus
    }


def describe(widgets: set[QWidget]) -> list[str]:
    return sorted(f"{type(w).__name__} {w.accessibleName()!r}" for w in widgets)


def test_tab_reaches_every_control_of_every_panel(
    qtbot: QtBot,
    qloop: QtLoop,  # noqa: F811
    sandbox: Sandbox,  # noqa: F811
) -> None:
    instance = sandbox.create_instance("Tentacle")
    logs = instance.layout().logs
    logs.mkdir(parents=True, exist_ok=True)
    (logs / "OctopusTentacle.txt").write_text(
        "2024-05-01 10:00:00.0000   42      1  INFO  hi\n" * 50
    )
    agent = InProcessAgent(instance)
    qloop.run(agent.start())
    window = MainWindow()
    qtbot.addWidget(window)
    window.resize(1280, 800)
    window.show()
    window.activateWindow()
    qloop.run(window.start())
    qloop.run(fill_every_view(window))
    window.picker.setFocus()
    seen_panels = []
    for number in range(1, window.tabs.count() + 1):
        qtbot.keyClick(
            QWidget.focusWidget(window),
            Qt.Key(Qt.Key.Key_0 + number),
            Qt.KeyboardModifier.ControlModifier,
        )
        seen_panels.append(window.tabs.tabText(window.tabs.currentIndex()))
        reached: set[QWidget] = set()
        for _ in range(TAB_PRESSES):
            widget = QWidget.focusWidget(window)
            assert widget is not None, "the focus left the window"
            reached.add(widget)
            qtbot.keyClick(widget, Qt.Key.Key_Tab)
        missing = focusable(window) - reached
        assert not missing, f"{seen_panels[-1]}: Tab never reaches {describe(missing)}"
    assert seen_panels == ["Dashboard", "Scripts", "Mutexes", "Logs", "Anti-virus", "Troubleshoot"]
    menu = {action.text(): action.shortcut().toString() for action in window._view_menu.actions()}
    assert menu == {
        "&Dashboard": "Ctrl+1",
        "&Scripts": "Ctrl+2",
        "&Mutexes": "Ctrl+3",
        "&Logs": "Ctrl+4",
        "&Anti-virus": "Ctrl+5",
        "&Troubleshoot": "Ctrl+6",
    }
    qloop.run(window.shutdown())
    qloop.run(agent.stop())
    kill_strays(instance.layout().home)


async def fill_every_view(window: MainWindow) -> None:
    """Rows in every table and tree: an item view must let Tab leave it, not walk its cells."""
    await wait_until(lambda: window.connection.agent is not None, "the agent is reached")
    client = window.connection.agent
    assert client is not None
    for name in ("first", "second"):
        await client.start_script(start_command(name, "sleep 30", mutex="web"))
    await wait_until(lambda: window.scripts._model.rowCount() == 2, "the scripts show")
    await wait_until(lambda: window.mutexes.locks.topLevelItemCount() == 1, "the lock shows")
    await wait_until(lambda: window.logs.model.rowCount() == 50, "the log shows")
    for view in (window.scripts._table, window.logs.view):
        view.setCurrentIndex(view.model().index(0, 0))
    window.mutexes.locks.setCurrentItem(window.mutexes.locks.topLevelItem(0))
