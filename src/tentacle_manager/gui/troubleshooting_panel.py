"""The Troubleshoot tab: can the manager reach the agent, can this machine reach a server, does
cancel really work here, and one zip for support.

Each tool reports stage by stage as it goes (diagnostics/connectivity, fire_drill,
support_bundle), so a slow step shows where it is slow. Everything runs as tasks on the qasync
loop; a tool's button is disabled while it runs, and leaving the window stops them all.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from tentacle_manager.contracts import ProblemsError
from tentacle_manager.diagnostics.connectivity import check_agent, check_server, server_route
from tentacle_manager.diagnostics.fire_drill import run_fire_drill
from tentacle_manager.diagnostics.stages import Outcome, StageResult
from tentacle_manager.diagnostics.support_bundle import ExtraSection, write_support_bundle
from tentacle_manager.gui import cancel_and_wait
from tentacle_manager.gui.agent_connection import AgentConnection
from tentacle_manager.gui.widgets import named, spawn_with_button, wrapped_label
from tentacle_manager.instances.errors import InstanceError
from tentacle_manager.instances.instance import Instance

OUTCOME_COLOURS = {
    Outcome.PASSED: QColor("#2e7d32"),
    Outcome.FAILED: QColor("#c62828"),
    Outcome.SKIPPED: QColor("#757575"),
}


class StageTable(QTreeWidget):
    """One row per stage or rung: what was tried, how it went, how long, and why."""

    def __init__(self, name: str) -> None:
        super().__init__()
        named(self, name)
        self.setHeaderLabels(["Stage", "Result", "Time", "Detail"])
        self.setRootIsDecorated(False)
        self.setColumnWidth(0, 220)
        self.setColumnWidth(1, 70)
        self.setColumnWidth(2, 70)

    def add(self, result: StageResult) -> None:
        detail = result.detail + (f" {result.remedy}" if result.remedy else "")
        item = QTreeWidgetItem(
            [result.title, result.outcome.value.capitalize(), f"{result.seconds:.3f} s", detail]
        )
        item.setForeground(1, QBrush(OUTCOME_COLOURS[result.outcome]))
        item.setToolTip(3, detail)
        self.addTopLevelItem(item)


class TroubleshootingPanel(QWidget):
    def __init__(
        self,
        connection: AgentConnection,
        extra_sections: Callable[[], Sequence[ExtraSection]] = tuple,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setAccessibleName("Troubleshoot")
        self._connection = connection
        self._extra_sections = extra_sections
        self._instance: Instance | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._dialog: QFileDialog | None = None
        self._build()

    def show_instance(self, instance: Instance | None) -> None:
        self._instance = instance

    async def stop(self) -> None:
        await cancel_and_wait(*self._tasks)

    # --- connectivity --------------------------------------------------------------------------

    def check_agent(self) -> None:
        agent = self._connection.agent
        if agent is None:
            self.connectivity_verdict.setText(
                f"No agent to check: {self._connection.status.message}"
            )
            return
        check = check_agent(agent, on_stage=self.stages.add)
        spawn_with_button(self.check_agent_button, self._connectivity(check), self._tasks)

    def check_server(self) -> None:
        url = self.server_url.text().strip()
        thumbprint = self.server_thumbprint.text().strip() or None
        instance = self._instance

        async def check() -> Any:
            route = None
            if instance is not None:
                route = await asyncio.to_thread(server_route, instance, url)
            return await check_server(
                url, expected_thumbprint=thumbprint, proxy=route, on_stage=self.stages.add
            )

        spawn_with_button(self.check_server_button, self._connectivity(check()), self._tasks)

    async def _connectivity(self, check: Coroutine[Any, Any, Any]) -> None:
        self.stages.clear()
        self.connectivity_verdict.setText("Checking...")
        try:
            report = await check
        except (ProblemsError, InstanceError) as error:
            self.connectivity_verdict.setText(str(error))
            return
        failure = report.failure
        self.connectivity_verdict.setText(
            f"{report.target}: every stage passed."
            if failure is None
            else f"{report.target}: {failure.title} failed. {failure.detail}"
        )

    # --- fire drill ------------------------------------------------------------------------------

    def run_drill(self) -> None:
        agent, instance = self._connection.agent, self._instance
        if agent is None or instance is None:
            self.drill_verdict.setText("The fire drill needs a running agent to talk to.")
            return
        spawn_with_button(self.drill_button, self._drill(agent, instance), self._tasks)

    async def _drill(self, agent: Any, instance: Instance) -> None:
        self.rungs.clear()
        self.drill_verdict.setText("Running a script that resists cancel, then cancelling it...")
        work = (await asyncio.to_thread(instance.layout)).work
        report = await run_fire_drill(agent, work, on_rung=self.rungs.add)
        self.drill_verdict.setText(report.verdict)

    # --- support bundle ------------------------------------------------------------------------

    def ask_bundle(self) -> None:
        if self._instance is None:
            self.bundle_status.setText("Choose an instance first.")
            return
        dialog = QFileDialog(self, "Save the support bundle")
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        dialog.setNameFilter("Zip files (*.zip)")
        dialog.selectFile("tentacle-support.zip")
        dialog.fileSelected.connect(lambda chosen: self.save_bundle(Path(chosen)))
        self._dialog = dialog
        dialog.open()

    def save_bundle(self, output: Path) -> None:
        instance = self._instance
        if instance is not None:
            spawn_with_button(self.bundle_button, self._bundle(instance, output), self._tasks)

    async def _bundle(self, instance: Instance, output: Path) -> None:
        self.bundle_status.setText("Collecting...")
        try:
            manifest = await write_support_bundle(
                instance,
                output,
                days=self.days.value(),
                extra_sections=self._extra_sections(),
                overwrite=True,
            )
        except (ProblemsError, InstanceError, OSError) as error:
            self.bundle_status.setText(f"No bundle was written: {error}")
            return
        self.bundle_status.setText(
            f"Saved {manifest.path} ({len(manifest.sections)} sections; secrets left out)."
        )

    # --- plumbing ------------------------------------------------------------------------------

    def _build(self) -> None:
        self.check_agent_button = named(QPushButton("Check the &agent"), "Check the agent")
        self.check_agent_button.clicked.connect(self.check_agent)
        self.server_url = named(QLineEdit(), "Server URL to check")
        self.server_url.setPlaceholderText("https://octopus.example.com")
        self.server_thumbprint = named(QLineEdit(), "Expected server thumbprint")
        self.server_thumbprint.setPlaceholderText("optional: 40 hexadecimal characters")
        self.check_server_button = named(QPushButton("Check the &server"), "Check the server")
        self.check_server_button.clicked.connect(self.check_server)
        self.stages = StageTable("Connectivity stages")
        self.connectivity_verdict = wrapped_label("Connectivity result")
        connectivity = named(QGroupBox("Connectivity"), "Connectivity")
        form = QFormLayout(connectivity)
        form.addRow(self.check_agent_button)
        server = QHBoxLayout()
        server.addWidget(self.server_url, 2)
        server.addWidget(self.server_thumbprint, 2)
        server.addWidget(self.check_server_button)
        form.addRow(named(QLabel("Server:"), "Server label"), server)
        form.addRow(self.stages)
        form.addRow(self.connectivity_verdict)

        drill = named(QGroupBox("Cancellation fire drill"), "Cancellation fire drill")
        explanation = wrapped_label("What the fire drill does")
        explanation.setText(
            "Runs a script through the agent that ignores interrupts, starts grandchildren (one "
            "in its own session, one holding the output pipes) and writes to its workspace, "
            "then cancels it and checks each step. It takes as long as the agent's cancel "
            "ladder (about 10 s by default)."
        )
        self.drill_button = named(QPushButton("Run the &fire drill"), "Run the fire drill")
        self.drill_button.clicked.connect(self.run_drill)
        self.rungs = StageTable("Fire drill steps")
        self.drill_verdict = wrapped_label("Fire drill verdict")
        column = QVBoxLayout(drill)
        for widget in (explanation, self.drill_button, self.rungs, self.drill_verdict):
            column.addWidget(widget)

        bundle = named(QGroupBox("Support bundle"), "Support bundle")
        self.days = named(QSpinBox(), "Days of logs")
        self.days.setRange(1, 90)
        self.days.setValue(7)
        self.days.setSuffix(" days of logs")
        self.bundle_button = named(QPushButton("Save support &bundle..."), "Save support bundle")
        self.bundle_button.clicked.connect(self.ask_bundle)
        self.bundle_status = wrapped_label("Support bundle status")
        row = QHBoxLayout(bundle)
        row.addWidget(self.days)
        row.addWidget(self.bundle_button)
        row.addWidget(self.bundle_status, 1)

        layout = QVBoxLayout(self)
        for box in (connectivity, drill, bundle):
            layout.addWidget(box)
