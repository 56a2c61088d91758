"""The mutex inspector: who holds each lock, who waits behind it in order and since when, what
the holder's processes are doing, and a waiter can be taken out of the queue.

It follows the agent's change stream: the snapshot that opens the stream, then every event.
After each event it re-reads the snapshot (one small request) instead of patching the tree,
so what it shows is always exactly the agent's state.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QSplitter,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from tentacle_manager.contracts import (
    CancelScriptCommand,
    MutexParty,
    MutexSnapshot,
    MutexState,
    ScriptIsolationLevel,
    ScriptTicket,
    ticket,
    utc_now,
)
from tentacle_manager.diagnostics.mutex_history import MutexHistory
from tentacle_manager.gui import cancel_and_wait, spawn
from tentacle_manager.gui.agent_connection import AgentConnection
from tentacle_manager.gui.confirmation import ask
from tentacle_manager.gui.mutex_timeline import MutexTimeline
from tentacle_manager.gui.process_tree import process_tree_widget, show_processes
from tentacle_manager.gui.scripts_panel import AGENT_ERRORS
from tentacle_manager.gui.widgets import named

RECONNECT_SECONDS = 2.0
TICK_MS = 1000
PARTY = Qt.ItemDataRole.UserRole


class MutexPanel(QWidget):
    show_script = Signal(str)  # a ticket, for the scripts panel to select

    def __init__(self, connection: AgentConnection, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._connection = connection
        self.history = MutexHistory()
        self.snapshot = MutexSnapshot(mutexes=[])
        self._follower: asyncio.Task[None] | None = None
        self._confirmation: QMessageBox | None = None
        self._tree_of: ScriptTicket | None = None  # whose processes are shown
        self.setAccessibleName("Mutexes")
        self._build()
        self._ticker = QTimer(self)  # ages and the timeline move even when no event arrives
        self._ticker.timeout.connect(lambda: self._show(self.snapshot))
        self._ticker.start(TICK_MS)

    def start(self) -> None:
        if self._follower is None:
            self._follower = spawn(self._follow_forever())

    async def stop(self) -> None:
        follower, self._follower = self._follower, None
        await cancel_and_wait(follower)

    # --- layout --------------------------------------------------------------------------------

    def _build(self) -> None:
        self.locks = named(QTreeWidget(), "Locks, holders and waiters")
        self.locks.setHeaderLabels(["Lock / task", "Role", "Level", "Ticket", "For"])
        self.locks.setColumnWidth(0, 280)
        self.locks.itemSelectionChanged.connect(self._selection_changed)
        self.explanation = named(QLabel(""), "What the selected party is doing")
        self.explanation.setWordWrap(True)
        self.processes = process_tree_widget("Processes of the selected holder")
        self.jump = named(QPushButton("Show in &scripts panel"), "Show the script")
        self.jump.clicked.connect(self._jump)
        self.leave = named(QPushButton("&Remove from queue (cancel)"), "Cancel the waiter")
        self.leave.clicked.connect(self._ask_leave)
        self.status = named(QLabel(""), "Mutex inspector status")
        buttons = QHBoxLayout()
        buttons.addWidget(self.jump)
        buttons.addWidget(self.leave)
        buttons.addWidget(self.status, 1)
        self.timeline = MutexTimeline(self.history)
        top = named(QWidget(), "Locks and actions")
        column = QVBoxLayout(top)
        column.addWidget(self.locks)
        column.addWidget(self.explanation)
        column.addWidget(self.processes)
        column.addLayout(buttons)
        split = named(QSplitter(Qt.Orientation.Vertical), "Locks and timeline")
        split.addWidget(top)
        split.addWidget(self.timeline)
        QVBoxLayout(self).addWidget(split)
        self._selection_changed()

    # --- the stream ----------------------------------------------------------------------------

    async def _follow_forever(self) -> None:
        while True:
            agent = self._connection.agent
            if agent is not None:
                try:
                    async for change in agent.mutex_events():
                        if isinstance(change, MutexSnapshot):
                            self.history.seed(change)
                            self._show(change)
                        else:
                            self.history.apply(change)
                            self._show(await agent.mutexes())
                except AGENT_ERRORS as error:
                    self.status.setText(f"Not following the agent: {error}")
            await asyncio.sleep(RECONNECT_SECONDS)

    def _show(self, snapshot: MutexSnapshot) -> None:
        self.snapshot = snapshot
        chosen = self._selected_party()
        self.locks.clear()
        now = utc_now()
        for state in snapshot.mutexes:
            lock = QTreeWidgetItem([state.name])
            self.locks.addTopLevelItem(lock)
            for party in state.holders:
                lock.addChild(_party_item(party, "holds", now))
            for position, party in enumerate(state.waiters, 1):
                lock.addChild(_party_item(party, f"waits ({position})", now))
        self.locks.expandAll()
        if chosen is not None:
            self._reselect(chosen.ticket.task_id)
        self.timeline.update()
        self.status.setText(f"{len(snapshot.mutexes)} lock(s) in use")

    # --- selection and actions -----------------------------------------------------------------

    def _selected_party(self) -> MutexParty | None:
        items = self.locks.selectedItems()
        return items[0].data(0, PARTY) if items else None

    def _reselect(self, script: str) -> None:
        for lock in range(self.locks.topLevelItemCount()):
            parent = self.locks.topLevelItem(lock)
            for child in range(parent.childCount()):
                item = parent.child(child)
                if item.data(0, PARTY).ticket.task_id == script:
                    self.locks.setCurrentItem(item)
                    return

    def _selection_changed(self) -> None:
        party = self._selected_party()
        waiting = party is not None and self._is_waiting(party)
        if party is not None and party.ticket != self._tree_of:
            self._tree_of = party.ticket
            self.processes.clear()
            if not waiting:
                spawn(self._show_holder_processes(party))
        self.jump.setEnabled(party is not None)
        self.leave.setEnabled(waiting)
        self.explanation.setText(self._explain(party) if party else "")

    async def _show_holder_processes(self, party: MutexParty) -> None:
        """A holder's tree says whether it is working or stuck; a waiter has none yet."""
        agent = self._connection.agent
        if agent is None:
            return
        try:
            tree = await agent.script_processes(ticket(party.ticket.task_id))
        except AGENT_ERRORS as error:
            self.status.setText(f"Could not read the processes of {party.task_id}: {error}")
            return
        if self._tree_of == party.ticket:
            show_processes(self.processes, tree)

    def _is_waiting(self, party: MutexParty) -> bool:
        return any(party in state.waiters for state in self.snapshot.mutexes)

    def _explain(self, party: MutexParty) -> str:
        state = next(s for s in self.snapshot.mutexes if party in s.holders or party in s.waiters)
        if party in state.holders:
            return f"{party.task_id} holds {state.name} with {_level(party.level)}."
        return waiting_sentence(party, state)

    def _jump(self) -> None:
        party = self._selected_party()
        if party is not None:
            self.show_script.emit(party.ticket.task_id)

    def _ask_leave(self) -> None:
        party = self._selected_party()
        if party is None:
            return
        self._confirmation = ask(  # kept alive while it is open
            self,
            QMessageBox.Icon.Question,
            "Remove from queue",
            f"Cancel {party.task_id}? It leaves the queue for this lock (exit code -43); "
            "the others keep their places.",
            lambda: spawn(self._leave(party)),
        )

    async def _leave(self, party: MutexParty) -> None:
        agent = self._connection.agent
        if agent is None:
            return
        try:
            await agent.cancel_script(CancelScriptCommand(ticket=ticket(party.ticket.task_id)))
        except AGENT_ERRORS as error:
            self.status.setText(f"Could not cancel {party.task_id}: {error}")


def waiting_sentence(party: MutexParty, state: MutexState) -> str:
    """What a waiter waits for, in words: who is in front of it and why it cannot share."""
    position = state.waiters.index(party) + 1
    holders = ", ".join(h.task_id for h in state.holders) or "nobody (it is being handed over)"
    if party.level is ScriptIsolationLevel.FULL_ISOLATION:
        why = "it needs the lock alone"
    else:
        why = "a script that needs the lock alone is holding it or is ahead in the queue"
    ahead = f"; {position - 1} waiting ahead of it" if position > 1 else ""
    return f"{party.task_id} waits for {state.name}, held by {holders}: {why}{ahead}."


def _party_item(party: MutexParty, role: str, now: datetime) -> QTreeWidgetItem:
    item = QTreeWidgetItem(
        [party.task_id, role, _level(party.level), party.ticket.task_id, _age(now - party.since)]
    )
    item.setData(0, PARTY, party)
    return item


def _level(level: ScriptIsolationLevel) -> str:
    return "FullIsolation" if level is ScriptIsolationLevel.FULL_ISOLATION else "NoIsolation"


def _age(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    return f"{seconds // 60} min {seconds % 60} s" if seconds >= 60 else f"{seconds} s"
