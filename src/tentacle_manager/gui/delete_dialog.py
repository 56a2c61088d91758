"""Deleting an instance, on one page: the choices, the commands, what stays, then the output.

The plan is worked out again whenever a choice changes, so the commands and the "stays" list
always match what Delete will do. Opened with `open()`; the deletion runs as a task on the
loop, streaming its output like the setup wizard's install.
"""

from __future__ import annotations

import asyncio

from PySide6.QtCore import Signal
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from tentacle_manager.gui import spawn
from tentacle_manager.gui.widgets import monospace, named
from tentacle_manager.instances.instance import Instance
from tentacle_manager.platform.firewall import firewall_rule
from tentacle_manager.setup.install import Event, Outcome, OutputLine
from tentacle_manager.setup.removal import RemovalChoices, RemovalPlan, plan_removal, remove


class DeleteInstanceDialog(QDialog):
    deleted = Signal(str)  # the instance's name

    def __init__(self, instance: Instance, manager: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        label = instance.name or str(instance.config_path)
        self.setWindowTitle(f"Delete {label}")
        named(self, f"Delete the instance {label}")
        self.resize(720, 560)
        self._instance = instance
        self._manager = manager
        self._plan: RemovalPlan | None = None
        self._task: asyncio.Task[None] | None = None
        intro = named(
            QLabel(
                f"Delete the Tentacle instance {label}: its service is stopped and uninstalled "
                "and it is unregistered from this computer."
            ),
            "What deleting does",
        )
        intro.setWordWrap(True)
        self.remove_files = named(
            QCheckBox("Also delete its &home folder: configuration, certificate, logs and work"),
            "Delete the home folder too",
        )
        self.remove_rule = named(QCheckBox("Also remove its &firewall rule"), "Remove the rule")
        self.remove_rule.setChecked(True)
        self.remove_rule.setEnabled(firewall_rule("any", 1) is not None)  # a tool to ask exists
        for box in (self.remove_files, self.remove_rule):
            box.toggled.connect(self.replan)
        self.script = monospace("The commands that will run")
        self.script.setMaximumHeight(110)
        self.stays = named(QLabel(""), "What stays")
        self.stays.setWordWrap(True)
        self.log = monospace("Deletion output")
        self.status = named(QLabel(""), "Deletion status")
        self.status.setWordWrap(True)
        self.delete = named(QPushButton("&Delete"), "Delete the instance")
        self.delete.clicked.connect(self.start)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        named(buttons.button(QDialogButtonBox.StandardButton.Close), "Close")
        buttons.addButton(self.delete, QDialogButtonBox.ButtonRole.DestructiveRole)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        for widget in (intro, self.remove_files, self.remove_rule, self.script, self.stays):
            layout.addWidget(widget)
        layout.addWidget(self.log, 1)
        layout.addWidget(self.status)
        layout.addWidget(buttons)

    async def prepare(self) -> None:
        """Work out the plan (reading the config) before the dialog is shown."""
        await self._replan()

    def replan(self) -> None:
        spawn(self._replan())

    async def _replan(self) -> None:
        choices = RemovalChoices(self.remove_files.isChecked(), self.remove_rule.isChecked())
        loop = asyncio.get_running_loop()
        plan = await loop.run_in_executor(
            None, plan_removal, self._instance, choices, self._manager
        )
        self._plan = plan
        self.script.setPlainText(plan.script())
        self.stays.setText("What stays:\n" + "\n".join(f"- {line}" for line in plan.kept))

    def start(self) -> None:
        if self._plan is None or self.running:
            return
        for widget in (self.delete, self.remove_files, self.remove_rule):
            widget.setEnabled(False)
        self.log.clear()
        self.status.setText("Deleting...")
        self._task = spawn(self._delete(self._plan))

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _delete(self, plan: RemovalPlan) -> None:
        result = await remove(plan, self._show)
        if result.outcome is Outcome.SUCCEEDED:
            self.status.setText("Deleted. What stays is listed above.")
            self.deleted.emit(self._instance.name or "")
        else:
            self.status.setText("The deletion stopped at a failed step: see its output.")
            self.delete.setEnabled(True)

    def _show(self, event: Event) -> None:
        if isinstance(event, OutputLine):
            self.log.appendPlainText(f"Error: {event.text}" if event.error else event.text)

    def reject(self) -> None:
        if not self.running:  # a deletion half-done is worse than one finished: let it end
            super().reject()

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.running:
            event.ignore()
            return
        super().closeEvent(event)
