"""The scripts panel: what runs, what waits, what is stuck, and the cancel / abandon buttons.

Refreshing is one task on the qasync loop: the list every second, new output of live scripts
by log sequence, and process samples every third round for the activity column. The selected
script's output follows its tail in a bounded view (it keeps up with thousands of lines a
second because only new records travel and the view drops the oldest blocks). Confirmations
use `open()` and signals: a nested `exec()` would re-enter the qasync loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from PySide6.QtCore import QItemSelectionModel, QPoint, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QMenu,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTableView,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from tentacle_manager.client.agent_client import AgentRequestError, HttpsAgent
from tentacle_manager.client.protocol import AgentUnavailableError
from tentacle_manager.client.tls import AgentIdentityError, AgentRefusedError
from tentacle_manager.contracts import (
    AbandonScriptCommand,
    CancelScriptCommand,
    ProcessOutputSource,
    ScriptProcessTree,
    ScriptStatusRequest,
    ticket,
    utc_now,
)
from tentacle_manager.diagnostics.script_board import QUARANTINED, ScriptBoard, ScriptRow
from tentacle_manager.gui import cancel_and_wait, spawn
from tentacle_manager.gui.agent_connection import AgentConnection
from tentacle_manager.gui.confirmation import ask
from tentacle_manager.gui.process_tree import process_tree_widget, show_processes
from tentacle_manager.gui.scripts_model import ScriptsModel
from tentacle_manager.gui.widgets import named

REFRESH_SECONDS = 1.0
TREE_EVERY = 3  # rounds between process samples
OUTPUT_LINES_KEPT = 20_000
AGENT_ERRORS = (AgentUnavailableError, AgentRefusedError, AgentIdentityError, AgentRequestError)

CANCEL_TEXT = (
    "Cancel {ticket}?\n\nThe agent interrupts the script's whole process tree, then "
    "terminates and kills what is left. If it is still alive after that, you can abandon it."
)
IN_PROGRESS = {"cancel": "Cancelling", "abandon": "Abandoning"}
QUARANTINE_HINT = (
    "Processes that survive repeated kills are usually stuck in the kernel (a hung disk or "
    "network mount); a reboot of this machine frees them."
)
ABANDON_TEXT = (
    "Abandon {ticket}?\n\nThe agent stops waiting for it: its isolation mutex is freed at "
    "once so the next deployment can start, its processes may keep running, and the agent "
    "keeps trying to kill them (the quarantine). Use this when cancelling did not work."
)


class ScriptsPanel(QWidget):
    def __init__(self, connection: AgentConnection, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._connection = connection
        self._board = ScriptBoard()
        self._model = ScriptsModel()
        self._selected: str | None = None
        self._selected_sequence = 0
        self._refresher: asyncio.Task[None] | None = None
        self._confirmation: QMessageBox | None = None
        self.setAccessibleName("Scripts")
        self._build()

    # --- life ----------------------------------------------------------------------------------

    def start(self) -> None:
        if self._refresher is None:
            self._refresher = spawn(self._refresh_forever())

    async def stop(self) -> None:
        refresher, self._refresher = self._refresher, None
        await cancel_and_wait(refresher)

    async def refresh(self, with_trees: bool = True) -> None:
        """One round of polling; the loop calls it, and tests may too."""
        agent = self._connection.agent
        if agent is None:
            return
        try:
            await self._refresh(agent, with_trees)
        except AGENT_ERRORS as error:
            self._status.setText(f"Not refreshed: {error}")

    # --- layout --------------------------------------------------------------------------------

    def _build(self) -> None:
        self._table = named(QTableView(), "Scripts")
        self._table.setModel(self._model)
        self._table.setTabKeyNavigation(False)  # Tab leaves the table; arrows move in it
        self._table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self._table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self._table.horizontalHeader().setStretchLastSection(True)
        self._table.setWordWrap(False)
        self._table.verticalHeader().setVisible(False)
        self._table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self._table.customContextMenuRequested.connect(self._context_menu)
        self._table.selectionModel().selectionChanged.connect(self._selection_changed)

        self._cancel = named(QPushButton("&Cancel script"), "Cancel the selected script")
        self._abandon = named(QPushButton("&Abandon script"), "Abandon the selected script")
        self._kill_again = named(
            QPushButton("&Kill quarantined again"), "Kill the quarantined processes again"
        )
        self._cancel.clicked.connect(self.ask_cancel)
        self._abandon.clicked.connect(self.ask_abandon)
        self._kill_again.clicked.connect(lambda: spawn(self._retry_quarantine()))
        self._status = named(QLabel(""), "Scripts panel status")
        buttons = QHBoxLayout()
        for widget in (self._cancel, self._abandon, self._kill_again):
            buttons.addWidget(widget)
        buttons.addWidget(self._status, 1)

        self._output = named(QPlainTextEdit(), "Output of the selected script")
        self._output.setReadOnly(True)
        self._output.setMaximumBlockCount(OUTPUT_LINES_KEPT)
        self._tree = process_tree_widget("Processes of the selected script")
        self._ladder = named(QListWidget(), "Cancel timeline of the selected script")
        details = named(QTabWidget(), "Details of the selected script")
        details.addTab(self._output, "&Output")
        details.addTab(self._tree, "&Processes")
        details.addTab(self._ladder, "Cancel &timeline")

        split = named(QSplitter(Qt.Orientation.Vertical), "Scripts and details")
        split.addWidget(self._table)
        split.addWidget(details)
        layout = QVBoxLayout(self)
        layout.addLayout(buttons)
        layout.addWidget(split)

        cancel = QAction("Cancel script", self, shortcut=QKeySequence(Qt.Key.Key_Delete))
        cancel.triggered.connect(self.ask_cancel)
        abandon = QAction("Abandon script", self, shortcut=QKeySequence("Shift+Delete"))
        abandon.triggered.connect(self.ask_abandon)
        self._actions = [cancel, abandon]
        self.addActions(self._actions)
        self._update_buttons()

    def _context_menu(self, point: QPoint) -> None:
        menu = QMenu(self)
        menu.addActions(self._actions)
        menu.popup(self._table.viewport().mapToGlobal(point))

    # --- selection -----------------------------------------------------------------------------

    def select(self, script: str) -> None:
        """Select a ticket's row, as the mutex inspector does when it jumps here."""
        row = self._model.row_of(script)
        if row is not None:
            self._table.selectionModel().select(
                self._model.index(row, 0),
                QItemSelectionModel.SelectionFlag.ClearAndSelect
                | QItemSelectionModel.SelectionFlag.Rows,
            )

    def _selection_changed(self) -> None:
        rows = self._table.selectionModel().selectedRows()
        row = self._model.row_at(rows[0].row()) if rows else None
        chosen = row.ticket if row else None
        if chosen != self._selected:
            self._selected, self._selected_sequence = chosen, 0
            self._output.clear()
            self._tree.clear()
            self._ladder.clear()
        self._update_buttons()

    def _selected_row(self) -> ScriptRow | None:
        row = self._model.row_of(self._selected) if self._selected else None
        return self._model.row_at(row) if row is not None else None

    def _update_buttons(self) -> None:
        row = self._selected_row()
        live = row is not None and row.exit_code is None
        self._cancel.setEnabled(live)
        self._abandon.setEnabled(live)
        quarantined = row is not None and row.state == QUARANTINED
        self._kill_again.setEnabled(quarantined)
        if quarantined:
            self._status.setText(QUARANTINE_HINT)
        for action, enabled in zip(self._actions, (live, live), strict=True):
            action.setEnabled(enabled)

    # --- cancel and abandon ------------------------------------------------------------------

    def ask_cancel(self) -> None:
        self._confirm(CANCEL_TEXT, "Cancel script", self._cancel_selected)

    def ask_abandon(self) -> None:
        self._confirm(ABANDON_TEXT, "Abandon script", self._abandon_selected)

    def _confirm(self, text: str, title: str, then: Callable[[str], None]) -> None:
        row = self._selected_row()
        if row is None or row.exit_code is not None:
            return
        self._confirmation = ask(  # kept alive while it is open
            self,
            QMessageBox.Icon.Warning,
            title,
            text.format(ticket=row.ticket),
            lambda: then(row.ticket),
        )

    def _cancel_selected(self, script: str) -> None:
        spawn(self._send(script, "cancel"))

    def _abandon_selected(self, script: str) -> None:
        spawn(self._send(script, "abandon"))

    async def _send(self, script: str, verb: str) -> None:
        agent = self._connection.agent
        if agent is None:
            self._status.setText("The agent is not connected.")
            return
        self._status.setText(f"{IN_PROGRESS[verb]} {script}...")
        try:
            if verb == "cancel":
                status = await agent.cancel_script(CancelScriptCommand(ticket=ticket(script)))
            else:
                status = await agent.abandon_script(AbandonScriptCommand(ticket=ticket(script)))
        except AGENT_ERRORS as error:
            self._status.setText(f"Could not {verb} {script}: {error}")
            return
        self._status.setText(f"{script}: {status.state.name.lower()}, exit code {status.exit_code}")
        await self.refresh()

    async def _retry_quarantine(self) -> None:
        agent = self._connection.agent
        if agent is None:
            return
        try:
            left = await agent.retry_quarantine()
        except AGENT_ERRORS as error:
            self._status.setText(f"Could not kill the quarantined processes again: {error}")
            return
        survivors = sum(len(entry.processes) for entry in left.quarantined)
        self._status.setText(
            f"{survivors} quarantined process(es) still alive. {QUARANTINE_HINT}"
            if survivors
            else "Every quarantined process is gone."
        )
        await self.refresh()

    # --- refreshing ----------------------------------------------------------------------------

    async def _refresh_forever(self) -> None:
        round_ = 0
        while True:
            await self.refresh(with_trees=round_ % TREE_EVERY == 0)
            round_ += 1
            await asyncio.sleep(REFRESH_SECONDS)

    async def _refresh(self, agent: HttpsAgent, with_trees: bool) -> None:
        """The list carries each live script's latest line and output count, so only the
        selected script's output and the never-seen quick ones cost a request of their own."""
        self._board.update(await agent.list_scripts())
        for name in self._board.unread_tickets():
            request = ScriptStatusRequest(ticket=ticket(name), last_log_sequence=0)
            self._board.observe_output(await agent.get_status(request))
        for name in self._board.live_tickets():
            if with_trees or name == self._selected:
                tree = await agent.script_processes(ticket(name))
                self._board.observe_tree(tree, time.monotonic())
                if name == self._selected:
                    self._show_tree(tree)
        if self._selected:
            await self._follow_output(agent, self._selected)
        self._model.set_rows(self._board.rows(utc_now()))
        self._update_buttons()

    async def _follow_output(self, agent: HttpsAgent, script: str) -> None:
        request = ScriptStatusRequest(
            ticket=ticket(script), last_log_sequence=self._selected_sequence
        )
        status = await agent.get_status(request)
        if script != self._selected:
            return  # the selection moved while we waited
        lines = [
            f"[{r.source.name.lower()}] {r.text}"
            if r.source is not ProcessOutputSource.STDOUT
            else r.text
            for r in status.logs
        ]
        if lines:
            self._output.appendPlainText("\n".join(lines))
        self._selected_sequence = status.next_log_sequence

    def _show_tree(self, tree: ScriptProcessTree) -> None:
        show_processes(self._tree, tree)
        self._ladder.clear()
        for rung in tree.cancel_ladder:
            alive = ", ".join(map(str, rung.alive_after)) or "none"
            self._ladder.addItem(
                f"{rung.at.astimezone():%H:%M:%S}  {rung.signal} to {len(rung.signalled)} "
                f"process(es); alive after {rung.waited_seconds:g} s: {alive}"
            )
