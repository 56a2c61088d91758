"""The setup wizard: questions, prerequisite checks, the exact commands, and the install.

Pages: communication style, storage, listening or polling, prerequisites (checked for the home
and port just chosen), review (the masked script, copyable, and where the agent will run),
install (progress, streamed masked output, rollback on failure, Retry without re-typing).
Closing during an install asks, then cancels: the running command is killed and everything
the run created is undone before the window goes (reference 6.5 leaves this unguarded).

The wizard is opened with `open()`; nothing in it calls `exec()`, which would re-enter the
qasync loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtGui import QCloseEvent, QGuiApplication
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
    QWizard,
    QWizardPage,
)

from tentacle_manager.contracts import ProblemsError
from tentacle_manager.gui import spawn
from tentacle_manager.gui.confirmation import ask
from tentacle_manager.gui.prerequisites_view import PrerequisitesView
from tentacle_manager.gui.setup_pages import (
    CommunicationPage,
    ListeningPage,
    PollingPage,
    StoragePage,
)
from tentacle_manager.gui.widgets import ERROR_STYLE, monospace, named
from tentacle_manager.setup.answers import SetupAnswers, Style
from tentacle_manager.setup.install import (
    Event,
    InstallResult,
    Outcome,
    OutputLine,
    StepFinished,
    StepStarted,
    footprint_of,
    install,
)
from tentacle_manager.setup.plan import SetupPlan, plan_setup
from tentacle_manager.setup.prerequisites import Check, CheckContext, CheckState

COMMUNICATION, STORAGE, LISTENING, POLLING, PREREQUISITES, REVIEW, INSTALL = range(7)
_SUCCESS_STYLE = "color: #2e7d32; font-weight: bold;"


class PrerequisitesPage(QWizardPage):
    """The checks, for the home and port just chosen; failures are shown, not a dead end: an
    admin may know better (a port freed by the install), and the review says what failed."""

    def __init__(self, checks: Callable[[], list[Check]]) -> None:
        super().__init__()
        self.setTitle("Prerequisites")
        self.setSubTitle("Checking this machine for what the Tentacle needs.")
        named(self, "Prerequisites")
        self.view = PrerequisitesView(checks, self._context)
        self.view.finished.connect(self.completeChanged.emit)
        QVBoxLayout(self).addWidget(self.view)

    def _context(self) -> CheckContext:
        answers = self.wizard().answers  # type: ignore[attr-defined]
        port = int(answers.listen_port) if answers.style is Style.LISTENING else None
        return CheckContext(home=answers.home, listen_port=port)

    def initializePage(self) -> None:
        self.view.start()

    def isComplete(self) -> bool:
        return not self.view.running


class ReviewPage(QWizardPage):
    def __init__(self) -> None:
        super().__init__()
        self.setTitle("Review")
        self.setSubTitle("These commands set up the Tentacle. Secrets are shown as ********.")
        named(self, "Review")
        self.script = monospace("The commands that will run")
        self.copy = named(QPushButton("&Copy commands"), "Copy the commands")
        self.copy.clicked.connect(
            lambda: QGuiApplication.clipboard().setText(self.script.toPlainText())
        )
        self.where = named(QLabel(""), "Where the agent will run")
        self.where.setWordWrap(True)
        self.notes = named(QLabel(""), "Notes about this installation")
        self.notes.setWordWrap(True)
        self.blocked = named(QLabel(""), "Why this cannot be installed")
        self.blocked.setWordWrap(True)
        self.blocked.setStyleSheet(ERROR_STYLE)
        layout = QVBoxLayout(self)
        for widget in (self.where, self.script, self.copy, self.notes, self.blocked):
            layout.addWidget(widget)

    def initializePage(self) -> None:
        wizard: SetupWizard = self.wizard()  # type: ignore[assignment]
        plan = wizard.make_plan()
        self.script.setPlainText(plan.script())
        self.where.setText(f"The agent will run as a service under: {wizard.manager_label}.")
        failed = wizard.failed_checks()
        notes = list(plan.notes)
        if failed:
            notes.append(f"Prerequisites that failed: {', '.join(failed)}.")
        self.notes.setText("\n".join(notes))
        self.blocked.setText(plan.unsupported)
        self.blocked.setVisible(bool(plan.unsupported))
        self.completeChanged.emit()

    def isComplete(self) -> bool:
        return not self.blocked.text()


class InstallPage(QWizardPage):
    def __init__(self) -> None:
        super().__init__()
        self.setTitle("Install")
        self.setSubTitle("You're ready to install the Tentacle.")
        named(self, "Install")
        self.run = named(QPushButton("&Install"), "Install the Tentacle")
        self.run.clicked.connect(lambda: self._wizard().start_install())
        self.progress = named(QProgressBar(), "Installation progress")
        self.status = named(QLabel(""), "Installation status")
        self.status.setWordWrap(True)
        self.log = monospace("Installation output")
        top = QHBoxLayout()
        top.addWidget(self.run)
        top.addWidget(self.progress, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.status)
        layout.addWidget(self.log, 1)
        self.result: InstallResult | None = None

    def _wizard(self) -> SetupWizard:
        return self.wizard()  # type: ignore[return-value]

    def isComplete(self) -> bool:
        return self.result is not None and self.result.outcome is Outcome.SUCCEEDED

    def begin(self, steps: int) -> None:
        self.result = None
        self.run.setEnabled(False)
        self.log.clear()
        self.progress.setRange(0, steps)
        self.progress.setValue(0)
        self.status.setStyleSheet("")
        self.completeChanged.emit()

    def show_event(self, event: Event) -> None:
        if isinstance(event, OutputLine):
            self.log.appendPlainText(f"Error: {event.text}" if event.error else event.text)
        elif isinstance(event, StepStarted) and event.index >= 0:
            self.status.setText(
                f"Step {event.index + 1} of {self.progress.maximum()}: {event.step.title}..."
            )
        elif isinstance(event, StepFinished) and event.index >= 0 and event.exit_code == 0:
            self.progress.setValue(event.index + 1)

    def end(self, result: InstallResult) -> None:
        self.result = result
        if result.outcome is Outcome.SUCCEEDED:
            self.status.setText("Installation complete! The Tentacle is running.")
            self.status.setStyleSheet(_SUCCESS_STYLE)
        else:
            undone = (
                "Everything this installation created was removed."
                if not result.not_undone
                else f"Could not undo: {'; '.join(result.not_undone)}"
            )
            what = "was cancelled" if result.outcome is Outcome.CANCELLED else "failed"
            self.status.setText(f"The installation {what}. {undone} Fix the cause and Retry.")
            self.status.setStyleSheet(ERROR_STYLE)
            self.run.setText("&Retry")
            self.run.setEnabled(True)
        self.completeChanged.emit()


class SetupWizard(QWizard):
    installed = Signal(str)  # the instance's name, once it runs

    def __init__(
        self,
        answers: SetupAnswers,
        *,
        manager: str,
        admin: bool,
        machine_home: Path,
        checks: Callable[[], list[Check]],
        start: int = COMMUNICATION,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Set up a Tentacle")
        named(self, "Set up a Tentacle")
        self.setWizardStyle(QWizard.WizardStyle.ClassicStyle)
        self.resize(760, 600)
        self.answers = answers
        self.manager = manager
        self.admin = admin
        self.machine_home = machine_home
        self.plan: SetupPlan | None = None
        self._installing: asyncio.Task[None] | None = None
        self._confirmation: QMessageBox | None = None
        self._close_after_cancel = False
        self.prerequisites = PrerequisitesPage(checks)
        self.install_page = InstallPage()
        for page_id, page in (
            (COMMUNICATION, CommunicationPage()),
            (STORAGE, StoragePage()),
            (LISTENING, ListeningPage()),
            (POLLING, PollingPage()),
            (PREREQUISITES, self.prerequisites),
            (REVIEW, ReviewPage()),
            (INSTALL, self.install_page),
        ):
            self.setPage(page_id, page)
        self.setStartId(start)
        for button, name in (
            (QWizard.WizardButton.BackButton, "Back"),
            (QWizard.WizardButton.NextButton, "Next"),
            (QWizard.WizardButton.FinishButton, "Finish"),
            (QWizard.WizardButton.CancelButton, "Cancel"),
        ):
            named(self.button(button), name)

    @property
    def manager_label(self) -> str:
        labels = {
            "supervisor": "the user-mode supervisor (no administrator rights needed; it runs "
            "as you, from your login)",
            "systemd": "systemd",
            "windows": "the Windows service manager",
        }
        return labels.get(self.manager, self.manager)

    @property
    def installing(self) -> bool:
        return self._installing is not None and not self._installing.done()

    def nextId(self) -> int:
        current = self.currentId()
        if current == STORAGE:
            return LISTENING if self.answers.style is Style.LISTENING else POLLING
        if current in (LISTENING, POLLING):
            return PREREQUISITES
        if current == INSTALL:
            return -1
        return current + 1

    def make_plan(self) -> SetupPlan:
        self.plan = plan_setup(self.answers, self.manager, self.admin)
        return self.plan

    def failed_checks(self) -> list[str]:
        return [
            key
            for key, result in self.prerequisites.view.results.items()
            if result.state is CheckState.FAILED
        ]

    def start_install(self) -> None:
        try:
            plan = self.make_plan()
        except ProblemsError as error:  # cannot happen past the pages' checks; say so if it does
            self.install_page.status.setText(str(error))
            return
        self.install_page.begin(len(plan.steps))
        self.button(QWizard.WizardButton.BackButton).setEnabled(False)
        self._installing = spawn(self._install(plan))

    async def _install(self, plan: SetupPlan) -> None:
        footprint = await asyncio.get_running_loop().run_in_executor(
            None, footprint_of, plan, self.machine_home
        )
        result = await install(plan, self.install_page.show_event, footprint)
        self.install_page.end(result)
        self.button(QWizard.WizardButton.BackButton).setEnabled(
            result.outcome is not Outcome.SUCCEEDED
        )
        if result.outcome is Outcome.SUCCEEDED:
            self.installed.emit(plan.answers.instance)
        if self._close_after_cancel:
            super().reject()

    async def shutdown(self) -> None:
        """Stop the checks and any install (rolled back) before the loop goes away."""
        await self.prerequisites.view.stop()
        if self._installing is not None:
            self._installing.cancel()
            await asyncio.wait([self._installing])

    def reject(self) -> None:
        if not self.installing:
            spawn(self.prerequisites.view.stop())
            super().reject()
            return
        self._confirmation = ask(
            self,
            QMessageBox.Icon.Warning,
            "Cancel the installation?",
            "The installation is still running. Cancel it?\n\nThe running command is stopped "
            "and everything this installation created is removed again.",
            self._cancel_install,
        )

    def _cancel_install(self) -> None:
        self._close_after_cancel = True
        if self._installing is not None:
            self._installing.cancel()

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.installing:
            event.ignore()
            self.reject()
            return
        super().closeEvent(event)
