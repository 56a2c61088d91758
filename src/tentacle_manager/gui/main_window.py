"""The main window: a menu bar, the instance picker, and the panels of the selected instance.

The dashboard is the first tab. The Scripts, Mutexes and Logs panels join through `add_panel`
and reach the agent through `connection`, so the whole window shares one client per instance.
With no instance at all the window says so and offers to try one locally (reference 4.2).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QPushButton,
    QStackedWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from tentacle_manager.diagnostics.support_bundle import ExtraSection
from tentacle_manager.gui import spawn
from tentacle_manager.gui.agent_connection import AgentConnection
from tentacle_manager.gui.antivirus_panel import AntivirusPanel
from tentacle_manager.gui.dashboard import Dashboard, communication_mode
from tentacle_manager.gui.delete_dialog import DeleteInstanceDialog
from tentacle_manager.gui.log_viewer import LogViewer
from tentacle_manager.gui.mutex_panel import MutexPanel
from tentacle_manager.gui.proxy_dialog import ProxyDialog
from tentacle_manager.gui.scripts_panel import ScriptsPanel
from tentacle_manager.gui.setup_wizard import COMMUNICATION, PREREQUISITES, SetupWizard
from tentacle_manager.gui.troubleshooting_panel import TroubleshootingPanel
from tentacle_manager.gui.widgets import named
from tentacle_manager.instances.errors import InstanceError
from tentacle_manager.instances.instance import Instance
from tentacle_manager.instances.registry import (
    DEFAULT_INSTANCE_NAME,
    InstanceRegistry,
    SelectedInstance,
    machine_config_home,
)
from tentacle_manager.platform.services.choose import choose_manager
from tentacle_manager.platform.services.spec import ServiceError
from tentacle_manager.setup.answers import SetupAnswers, first_free_name, is_admin
from tentacle_manager.setup.checks import standard_checks


@dataclass(frozen=True)
class InstanceEntry:
    """One registered instance as the picker lists it."""

    name: str
    config_path: Path
    vanished: bool  # the config file is gone: flagged, never silently unregistered

    @property
    def label(self) -> str:
        label = "(Default)" if self.name == DEFAULT_INSTANCE_NAME else self.name
        return f"{label} - configuration file missing" if self.vanished else label


def list_entries(registry: InstanceRegistry) -> list[InstanceEntry]:
    """The default instance first, then the others by name (blocking: reads the index)."""
    entries = [
        InstanceEntry(
            record.name,
            record.configuration_file_path,
            not record.configuration_file_path.is_file(),
        )
        for record in registry.list_instances()
    ]
    return sorted(entries, key=lambda entry: entry.name != DEFAULT_INSTANCE_NAME)


class MainWindow(QMainWindow):
    closed = Signal()

    def __init__(self, machine_home: Path | None = None, preferred: str | None = None) -> None:
        super().__init__()
        named(self, "Tentacle Manager")
        self.setWindowTitle("Tentacle Manager")
        self.resize(820, 760)
        self._machine_home = machine_home
        self._registry = InstanceRegistry(machine_home)
        self._preferred = preferred
        self._selecting: InstanceEntry | None = None
        self.wizard: SetupWizard | None = None
        self.delete_dialog: DeleteInstanceDialog | None = None
        self.connection = AgentConnection()
        self.picker = named(QComboBox(), "Instance")
        self.picker.currentIndexChanged.connect(self._picked)
        self.tabs = named(QTabWidget(), "Instance panels")
        self._menus()
        self.dashboard = Dashboard(self.connection)
        self.dashboard.proxy_change_requested.connect(lambda: spawn(self.open_proxy_dialog()))
        self.proxy_dialog: ProxyDialog | None = None
        self.add_panel(self.dashboard, "Dashboard")
        self.scripts = ScriptsPanel(self.connection)
        self.add_panel(self.scripts, "Scripts")
        self.mutexes = MutexPanel(self.connection)
        self.mutexes.show_script.connect(self._show_script)
        self.add_panel(self.mutexes, "Mutexes")
        self.logs = LogViewer()
        self.add_panel(self.logs, "Logs")
        self.antivirus = AntivirusPanel()
        self.add_panel(self.antivirus, "Anti-virus")
        self.troubleshoot = TroubleshootingPanel(self.connection, self._report_sections)
        self.add_panel(self.troubleshoot, "Troubleshoot")
        self.welcome = self._welcome_page()
        self.pages = named(QStackedWidget(), "Pages")
        self.pages.addWidget(self.welcome)
        self.pages.addWidget(self._instance_page())
        self.setCentralWidget(self.pages)
        named(self.statusBar(), "Status").setSizeGripEnabled(False)  # window borders resize

    def add_panel(self, panel: QWidget, title: str) -> None:
        """Add a panel for the selected instance (Scripts, Mutexes, Logs, ...) as a tab, and to
        the View menu with Ctrl+<its number>: Ctrl+Tab inside a panel's own tabs stays there."""
        self.tabs.addTab(panel, title)
        show = QAction(f"&{title}", self)
        show.setShortcut(QKeySequence(f"Ctrl+{self.tabs.count()}"))
        show.triggered.connect(lambda: self.tabs.setCurrentWidget(panel))
        self._view_menu.addAction(show)

    def _report_sections(self) -> list[ExtraSection]:
        """What the support bundle adds from the window: the last anti-virus advice."""
        advice = self.antivirus.advice
        return [] if advice is None else [ExtraSection("antivirus.json", advice.as_dict())]

    def _show_script(self, script: str) -> None:
        """From the mutex inspector to the script's row, its output and its processes."""
        self.tabs.setCurrentWidget(self.scripts)
        self.scripts.select(script)

    def show_error(self, message: str) -> None:
        self.statusBar().showMessage(message)

    async def start(self) -> None:
        await self.refresh_instances()
        self.scripts.start()
        self.mutexes.start()

    async def refresh_instances(self) -> None:
        """Re-read the index; keep the selection when it still exists, else take the first."""
        loop = asyncio.get_running_loop()
        try:
            entries = await loop.run_in_executor(None, list_entries, self._registry)
        except InstanceError as error:
            self.show_error(error.one_line())
            entries = []
        wanted = self._preferred or self._selected_name()
        names = [entry.name for entry in entries]
        if self._preferred and self._preferred not in names:
            self.show_error(f"There is no instance called {self._preferred}.")
        self._preferred = None
        index = names.index(wanted) if wanted in names else 0
        self.picker.blockSignals(True)
        self.picker.clear()
        for entry in entries:
            self.picker.addItem(entry.label, entry)
            self.picker.setItemData(
                self.picker.count() - 1, entry.label, Qt.ItemDataRole.ToolTipRole
            )
        self.picker.setCurrentIndex(index if entries else -1)
        self.picker.blockSignals(False)
        await self._select(entries[index] if entries else None)

    async def shutdown(self) -> None:
        """Stop every poll and close the agent client before the loop goes away."""
        await self.scripts.stop()
        await self.mutexes.stop()
        await self.dashboard.stop_watching()
        await self.logs.close_file()
        await self.troubleshoot.stop()
        await self.antivirus.stop()
        if self.wizard is not None:
            await self.wizard.shutdown()
        await self.connection.close()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.closed.emit()
        super().closeEvent(event)

    async def open_setup(self, try_locally: bool = False) -> SetupWizard | None:
        """Open the setup wizard (non-modal, with `open()`); the new instance is selected once
        it runs. Trying locally starts at the checks with a per-user, loopback-only answer."""
        if self.wizard is not None and self.wizard.isVisible():
            self.wizard.raise_()
            return self.wizard
        loop = asyncio.get_running_loop()
        try:
            manager = (await loop.run_in_executor(None, choose_manager)).name
        except ServiceError as error:
            self.show_error(str(error))
            return None
        names = {self.picker.itemData(i).name for i in range(self.picker.count())}
        name = first_free_name(names)
        admin = not try_locally and is_admin()
        answers = (
            SetupAnswers.try_locally(name) if try_locally else SetupAnswers.defaults(name, admin)
        )
        self.wizard = SetupWizard(
            answers,
            manager="supervisor" if try_locally else manager,
            admin=admin,
            machine_home=self._machine_home or machine_config_home(),
            checks=standard_checks,
            start=PREREQUISITES if try_locally else COMMUNICATION,
            parent=self,
        )
        self.wizard.installed.connect(lambda name: spawn(self._installed(name)))
        self.wizard.open()
        return self.wizard

    async def open_delete(self) -> DeleteInstanceDialog | None:
        """The delete dialog for the selected instance, its plan worked out before it shows."""
        entry = self.picker.currentData()
        if not isinstance(entry, InstanceEntry):
            return None
        loop = asyncio.get_running_loop()
        try:
            manager = (await loop.run_in_executor(None, choose_manager)).name
            instance = await loop.run_in_executor(
                None, Instance, SelectedInstance(entry.name, entry.config_path), self._machine_home
            )
        except (ServiceError, InstanceError) as error:
            self.show_error(str(error))
            return None
        dialog = DeleteInstanceDialog(instance, manager, self)
        await dialog.prepare()
        dialog.deleted.connect(lambda _: spawn(self.refresh_instances()))
        self.delete_dialog = dialog
        dialog.open()
        return dialog

    async def open_proxy_dialog(self) -> ProxyDialog | None:
        instance = self.dashboard.instance
        if instance is None:
            return None
        loop = asyncio.get_running_loop()
        try:
            config = await loop.run_in_executor(None, instance.config)
            manager = await self.dashboard.service_manager_name()
        except (InstanceError, ServiceError) as error:
            self.show_error(str(error))
            return None
        dialog = ProxyDialog(
            instance,
            config,
            polls=communication_mode(config) == "Polling",
            manager=manager,
            running=await self.dashboard.service_running(),
            parent=self,
        )
        dialog.changed.connect(lambda: spawn(self.dashboard.refresh()))
        self.proxy_dialog = dialog
        dialog.open()
        return dialog

    async def _installed(self, name: str) -> None:
        self._preferred = name
        await self.refresh_instances()

    def _selected_name(self) -> str | None:
        entry = self.picker.currentData()
        return entry.name if isinstance(entry, InstanceEntry) else None

    def _picked(self, index: int) -> None:
        entry = self.picker.itemData(index)
        if isinstance(entry, InstanceEntry):
            spawn(self._select(entry))

    async def _select(self, entry: InstanceEntry | None) -> None:
        """Show `entry`; a later pick made while this one opens its instance wins."""
        self._selecting = entry
        if entry is None:
            self.pages.setCurrentWidget(self.welcome)
            await self.dashboard.stop_watching()
            await self.connection.select(None)
            return
        self.pages.setCurrentIndex(1)
        selected = SelectedInstance(entry.name, entry.config_path)
        loop = asyncio.get_running_loop()
        try:
            instance = await loop.run_in_executor(None, Instance, selected, self._machine_home)
        except InstanceError as error:
            instance = None
            self.show_error(error.one_line())
        if self._selecting is not entry:
            return
        await self.connection.select(instance)
        self.troubleshoot.show_instance(instance)
        self.antivirus.show_instance(instance)
        if instance is None:
            await self.dashboard.stop_watching()
            return
        await self.dashboard.show_instance(instance)
        await self.logs.show_instance(instance)

    def _menus(self) -> None:
        menu_bar = named(self.menuBar(), "Menu bar")
        file_menu = named(menu_bar.addMenu("&File"), "File menu")
        refresh = QAction("&Refresh instances", self)
        refresh.setShortcut(QKeySequence.StandardKey.Refresh)
        refresh.triggered.connect(lambda: spawn(self.refresh_instances()))
        quit_action = QAction("&Quit", self)
        quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.close)
        new = QAction("&New Tentacle instance...", self)
        new.setShortcut(QKeySequence.StandardKey.New)
        new.triggered.connect(lambda: spawn(self.open_setup()))
        delete = QAction("&Delete this instance...", self)
        delete.triggered.connect(lambda: spawn(self.open_delete()))
        file_menu.addAction(new)
        file_menu.addAction(delete)
        file_menu.addAction(refresh)
        file_menu.addSeparator()
        file_menu.addAction(quit_action)
        self._view_menu = named(menu_bar.addMenu("&View"), "View menu")

    def _instance_page(self) -> QWidget:
        page = named(QWidget(), "Instance page")
        new = named(QPushButton("&New..."), "Set up a new Tentacle instance")
        new.clicked.connect(lambda: spawn(self.open_setup()))
        delete = named(QPushButton("&Delete..."), "Delete this Tentacle instance")
        delete.clicked.connect(lambda: spawn(self.open_delete()))
        row = QHBoxLayout()
        row.addWidget(named(QLabel("Instance:"), "Instance label"))
        row.addWidget(self.picker, 1)
        row.addWidget(new)
        row.addWidget(delete)
        layout = QVBoxLayout(page)
        layout.addLayout(row)
        layout.addWidget(self.tabs, 1)
        return page

    def _welcome_page(self) -> QWidget:
        page = named(QWidget(), "Welcome")
        heading = named(QLabel("Welcome!"), "Welcome heading")
        heading.setStyleSheet("font-size: 20pt; font-weight: bold;")
        text = named(
            QLabel(
                "There is no Tentacle on this computer yet. Try one locally: it runs here, "
                "under your account, listens only to this computer, and you can remove it "
                "again at any time. Or set one up for an Octopus Server."
            ),
            "Welcome text",
        )
        text.setWordWrap(True)
        self.try_locally = named(QPushButton("Try it &locally"), "Try it locally")
        self.try_locally.clicked.connect(lambda: spawn(self.open_setup(try_locally=True)))
        set_up = named(QPushButton("&Set up a Tentacle..."), "Set up a Tentacle")
        set_up.clicked.connect(lambda: spawn(self.open_setup()))
        layout = QVBoxLayout(page)
        layout.addStretch()
        for widget in (heading, text, self.try_locally, set_up):
            layout.addWidget(widget, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addStretch()
        return page
