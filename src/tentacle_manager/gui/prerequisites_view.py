"""The prerequisite checks as a user sees them: a row per check, filling in as each ends.

Every check runs at once (setup/prerequisites); a slow or hung one shows "Running" with its
time while the others report, and times out with its own message. Selecting a row shows the
message, the remedy, a help link and the commands' output with a copy button. "Check again"
runs them all anew; `stop()` (the window closing) cancels the checks and kills their commands.
Unlike Tentacle Manager nothing stops at the first failure, and success is shown, not hidden.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from html import escape

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor, QFontDatabase, QGuiApplication
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from tentacle_manager.gui import cancel_and_wait, spawn
from tentacle_manager.gui.widgets import named
from tentacle_manager.setup.prerequisites import (
    Check,
    CheckContext,
    CheckResult,
    CheckState,
    run_checks,
)

STATE_COLOURS = {
    CheckState.PASSED: QColor("#2e7d32"),
    CheckState.WARNING: QColor("#b26a00"),
    CheckState.FAILED: QColor("#c62828"),
}
_FINAL = (CheckState.PASSED, CheckState.WARNING, CheckState.FAILED)


class PrerequisitesView(QWidget):
    finished = Signal()  # every check has a final result

    def __init__(
        self,
        checks: Callable[[], list[Check]],
        context: Callable[[], CheckContext],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setAccessibleName("Prerequisite checks")
        self._checks = checks
        self._context = context
        self._task: asyncio.Task[None] | None = None
        self._keys: list[str] = []  # row i shows check _keys[i]
        self._results: dict[str, CheckResult] = {}
        self._started: dict[str, float] = {}
        self._complete = False  # the last run ended (its task may still be returning)
        self._build()
        self._clock = QTimer(self)  # running checks show their time going up
        self._clock.timeout.connect(self._tick)

    @property
    def results(self) -> dict[str, CheckResult]:
        return dict(self._results)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done() and not self._complete

    def worst(self) -> CheckState | None:
        """FAILED if any failed, else WARNING if any warned, else PASSED; None while running."""
        if self.running or not self._results:
            return None
        states = {result.state for result in self._results.values()}
        for state in (CheckState.FAILED, CheckState.WARNING):
            if state in states:
                return state
        return CheckState.PASSED

    def start(self) -> None:
        """Run every check (again), cancelling a run still going."""
        if self._task is not None:
            self._task.cancel()
        self._complete = False
        self._task = spawn(self._run(self._task))

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
        self._clock.stop()

    async def _run(self, previous: asyncio.Task[None] | None) -> None:
        if previous is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await previous  # its commands are killed before new ones start
        checks = self._checks()
        self._reset(checks)
        self._clock.start(200)
        try:
            await run_checks(checks, self._context(), self._update)
        finally:
            self._clock.stop()
        self.summary.setText(_summary(self._results))
        self._complete = True
        self.finished.emit()

    def _reset(self, checks: list[Check]) -> None:
        self.table.clear()
        self._keys = [check.key for check in checks]
        self._results.clear()
        self._started.clear()
        for check in checks:
            item = QTreeWidgetItem([check.title, "Pending", "", ""])
            item.setData(0, Qt.ItemDataRole.UserRole, check.key)
            self.table.addTopLevelItem(item)
        self.progress.setRange(0, len(checks))
        self.progress.setValue(0)
        self.summary.setText(f"Checking {len(checks)} prerequisites...")
        self.table.setCurrentItem(self.table.topLevelItem(0))

    def _update(self, check: Check, result: CheckResult) -> None:
        item = self._row(check.key)
        item.setText(1, result.state.value.capitalize())
        item.setText(3, result.message)
        item.setToolTip(3, result.message)
        if result.state is CheckState.RUNNING:
            self._started[check.key] = time.monotonic()
            return
        self._results[check.key] = result
        item.setText(2, _seconds(result.duration))
        colour = STATE_COLOURS.get(result.state)
        if colour is not None:
            item.setForeground(1, QBrush(colour))
        self.progress.setValue(len(self._results))
        if self.table.currentItem() is item:
            self._show_details()

    def _row(self, key: str) -> QTreeWidgetItem:
        """Asked of the tree each time: a QTreeWidgetItem is no QObject, so a reference kept in
        Python would outlive the tree that deletes it, and using it then crashes."""
        return self.table.topLevelItem(self._keys.index(key))

    def _tick(self) -> None:
        now = time.monotonic()
        for key, began in self._started.items():
            if key not in self._results:
                self._row(key).setText(2, _seconds(now - began))

    def _show_details(self) -> None:
        item = self.table.currentItem()
        key = item.data(0, Qt.ItemDataRole.UserRole) if item is not None else None
        result = self._results.get(key) if key else None
        if result is None:
            self.details.setText("Running..." if key in self._started else "")
            self.output.setPlainText("")
            self.copy.setEnabled(False)
            return
        parts = [f"<b>{escape(result.message)}</b>"]
        if result.remedy:
            parts.append(f"How to fix it: {escape(result.remedy)}")
        if result.help_url:
            parts.append(f'<a href="{result.help_url}">Read more</a>')
        self.details.setText("<br>".join(parts))
        self.output.setPlainText(result.output)
        self.copy.setEnabled(bool(result.output))

    def _build(self) -> None:
        self.progress = named(QProgressBar(), "Prerequisite check progress")
        self.summary = named(QLabel(""), "Prerequisite summary")
        self.table = named(QTreeWidget(), "Prerequisite checks and their results")
        self.table.setHeaderLabels(["Check", "Result", "Time", "Message"])
        self.table.setRootIsDecorated(False)
        self.table.setColumnWidth(0, 240)
        self.table.setColumnWidth(1, 80)
        self.table.setColumnWidth(2, 60)
        self.table.currentItemChanged.connect(self._show_details)
        self.details = named(QLabel(""), "The selected check's result and remedy")
        self.details.setWordWrap(True)
        self.details.setOpenExternalLinks(True)
        self.details.setTextInteractionFlags(Qt.TextInteractionFlag.TextBrowserInteraction)
        self.output = named(QPlainTextEdit(), "Output of the selected check's commands")
        self.output.setReadOnly(True)
        self.output.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.output.setMaximumHeight(140)
        self.copy = named(QPushButton("&Copy output"), "Copy the selected check's output")
        self.copy.clicked.connect(
            lambda: QGuiApplication.clipboard().setText(self.output.toPlainText())
        )
        self.again = named(QPushButton("Check &again"), "Run every check again")
        self.again.clicked.connect(self.start)
        buttons = QHBoxLayout()
        buttons.addWidget(self.summary, 1)
        buttons.addWidget(self.copy)
        buttons.addWidget(self.again)
        layout = QVBoxLayout(self)
        layout.addWidget(self.progress)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.details)
        layout.addWidget(self.output)
        layout.addLayout(buttons)


def _seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"


def _summary(results: dict[str, CheckResult]) -> str:
    counts = {state: 0 for state in _FINAL}
    for result in results.values():
        counts[result.state] = counts.get(result.state, 0) + 1
    return (
        f"{counts[CheckState.PASSED]} passed, {counts[CheckState.WARNING]} with warnings, "
        f"{counts[CheckState.FAILED]} failed."
    )
