"""The Anti-virus tab: which security products are here and why we think so, what to exclude
for this instance, whether each product already excludes it, the scripts and request pack that
make it so, and a measurement of whether an exclusion helped.

The advisor (diagnostics/antivirus) probes in an executor and the canary runs in one too, so
the window stays responsive; both are tasks that leaving the window cancels.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor, QGuiApplication
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QPushButton,
    QSplitter,
    QTabWidget,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from tentacle_manager.diagnostics.antivirus.advisor import Advice, advise
from tentacle_manager.diagnostics.antivirus.canary import measure_interference
from tentacle_manager.diagnostics.antivirus.coverage import CoverageState
from tentacle_manager.diagnostics.antivirus.errors import AdvisorError
from tentacle_manager.diagnostics.antivirus.recommendations import is_windows_path
from tentacle_manager.diagnostics.antivirus.scripts import (
    clamd_snippet,
    defender_script,
    request_pack,
    write_artefacts,
)
from tentacle_manager.gui import cancel_and_wait
from tentacle_manager.gui.widgets import (
    monospace,
    named,
    spawn_with_button,
    wrapped_label,
)
from tentacle_manager.instances.errors import InstanceError
from tentacle_manager.instances.instance import Instance

COVERAGE_COLOURS = {
    CoverageState.SET: QColor("#2e7d32"),
    CoverageState.NOT_SET: QColor("#c62828"),
    CoverageState.NOT_WATCHED: QColor("#2e7d32"),
    CoverageState.NOT_APPLICABLE: QColor("#757575"),
}
_UNKNOWN = QColor("#b26a00")


class AntivirusPanel(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName("Anti-virus")
        self._instance: Instance | None = None
        self.advice: Advice | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._dialog: QFileDialog | None = None
        self._build()

    def show_instance(self, instance: Instance | None) -> None:
        self._instance = instance
        self.advice = None

    async def stop(self) -> None:
        await cancel_and_wait(*self._tasks)

    # --- checking ------------------------------------------------------------------------------

    def check(self) -> None:
        spawn_with_button(self.check_button, self._check(), self._tasks)

    async def _check(self) -> None:
        home = await self._home()
        if home is None:
            return
        self.status.setText(f"Looking for security products and checking {home}...")
        try:
            advice = await advise(home)
        except AdvisorError as error:
            self.status.setText(str(error))
            return
        self.show_advice(advice)

    async def _home(self) -> Path | None:
        if self._instance is None:
            self.status.setText("Choose an instance first: the advice is for its home folder.")
            return None
        try:
            return (await asyncio.to_thread(self._instance.layout)).home
        except InstanceError as error:
            self.status.setText(error.one_line())
            return None

    def show_advice(self, advice: Advice) -> None:
        self.advice = advice
        found = len(advice.assessments)
        self.status.setText(
            f"{found} security product{'s' if found != 1 else ''} found."
            + (f" Not checked: {'; '.join(advice.not_checked)}" if advice.not_checked else "")
        )
        self.products.clear()
        for assessment in advice.assessments:
            item = QTreeWidgetItem([assessment.detection.product.name, ""])
            for evidence in assessment.detection.evidence:
                item.addChild(QTreeWidgetItem([evidence.kind.value, evidence.detail]))
            self.products.addTopLevelItem(item)
            item.setExpanded(True)
        self._show_coverage(advice)
        self.caveats.setText("Process exclusions: " + " ".join(advice.caveats))
        self._show_artefacts(advice)
        self.save_button.setEnabled(True)

    def _show_coverage(self, advice: Advice) -> None:
        names = [a.detection.product.name for a in advice.assessments]
        self.coverage.clear()
        self.coverage.setColumnCount(2 + len(names))
        self.coverage.setHeaderLabels(["Exclude", "Why", *names])
        for row, recommendation in enumerate(advice.recommendations):
            item = QTreeWidgetItem([str(recommendation.path), recommendation.reason])
            item.setToolTip(0, str(recommendation.path))
            item.setToolTip(1, recommendation.reason)
            for column, assessment in enumerate(advice.assessments, start=2):
                coverage = assessment.coverage[row]
                item.setText(column, coverage.state.value)
                item.setToolTip(column, coverage.detail)
                colour = COVERAGE_COLOURS.get(coverage.state, _UNKNOWN)
                item.setForeground(column, QBrush(colour))
            self.coverage.addTopLevelItem(item)

    def _show_artefacts(self, advice: Advice) -> None:
        recommendations = advice.recommendations
        texts = {"Request pack": request_pack(advice, socket.gethostname())}
        if is_windows_path(advice.home):
            texts["Defender script"] = defender_script(advice.home, recommendations)
            texts["Defender undo"] = defender_script(advice.home, recommendations, undo=True)
        else:
            texts["clamd.conf snippet"] = clamd_snippet(
                advice.home, recommendations, config=advice.clamd_config, account=advice.account
            )
        self.artefacts.clear()
        for title, text in texts.items():
            box = monospace(title)
            box.setPlainText(text)
            self.artefacts.addTab(box, title)

    def copy_current(self) -> None:
        box = self.artefacts.currentWidget()
        if box is not None:
            QGuiApplication.clipboard().setText(box.toPlainText())  # type: ignore[attr-defined]

    def ask_save(self) -> None:
        dialog = QFileDialog(self, "Save the scripts and the request pack")
        dialog.setFileMode(QFileDialog.FileMode.Directory)
        dialog.fileSelected.connect(lambda chosen: self.save_to(Path(chosen)))
        self._dialog = dialog
        dialog.open()

    def save_to(self, folder: Path) -> None:
        if self.advice is None:
            return
        try:
            written = write_artefacts(self.advice, folder)
        except (AdvisorError, OSError) as error:
            self.status.setText(f"Nothing was saved: {error}")
            return
        self.status.setText(f"Saved {', '.join(path.name for path in written)} in {folder}.")

    # --- the canary ------------------------------------------------------------------------------

    def measure(self) -> None:
        spawn_with_button(self.measure_button, self._measure(), self._tasks)

    async def _measure(self) -> None:
        home = await self._home()
        if home is None:
            return
        self.canary.setText("Creating, running and deleting small scripts in Work and elsewhere...")
        result = await measure_interference(home)
        self.canary.setText(result.summary())

    # --- plumbing ------------------------------------------------------------------------------

    def _build(self) -> None:
        self.check_button = named(QPushButton("&Check this machine"), "Check for security products")
        self.check_button.clicked.connect(self.check)
        self.measure_button = named(
            QPushButton("&Measure interference"), "Measure anti-virus interference in Work"
        )
        self.measure_button.clicked.connect(self.measure)
        self.status = wrapped_label("Anti-virus advisor status")
        top = QHBoxLayout()
        top.addWidget(self.check_button)
        top.addWidget(self.measure_button)
        top.addWidget(self.status, 1)
        self.canary = wrapped_label("Interference measurement")

        self.products = named(QTreeWidget(), "Security products found and the evidence")
        self.products.setHeaderLabels(["Product / evidence", "Detail"])
        self.products.setColumnWidth(0, 240)
        self.coverage = named(QTreeWidget(), "Recommended exclusions and whether each is set")
        self.coverage.setRootIsDecorated(False)
        self.coverage.setHeaderLabels(["Exclude", "Why"])
        self.coverage.setColumnWidth(0, 300)
        self.coverage.setColumnWidth(1, 260)
        self.caveats = wrapped_label("Caveats of process exclusions")

        self.artefacts = named(QTabWidget(), "Exclusion scripts and request pack")
        copy = named(QPushButton("C&opy"), "Copy the shown script")
        copy.clicked.connect(self.copy_current)
        self.save_button = named(QPushButton("&Save all..."), "Save the scripts to a folder")
        self.save_button.clicked.connect(self.ask_save)
        self.save_button.setEnabled(False)
        buttons = QHBoxLayout()
        buttons.addStretch()
        buttons.addWidget(copy)
        buttons.addWidget(self.save_button)
        scripts = named(QWidget(), "Scripts")
        column = QVBoxLayout(scripts)
        column.addWidget(self.artefacts)
        column.addLayout(buttons)

        split = named(QSplitter(Qt.Orientation.Vertical), "Advisor sections")
        for widget in (self.products, self.coverage, scripts):
            split.addWidget(widget)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.canary)
        layout.addWidget(split, 1)
        layout.addWidget(self.caveats)
