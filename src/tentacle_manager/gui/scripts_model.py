"""The scripts table: one row per ticket from the Qt-free ScriptBoard, columns an admin scans."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QColor

from tentacle_manager.diagnostics.activity import Activity
from tentacle_manager.diagnostics.script_board import ScriptRow

COLUMNS = ("Ticket", "Task", "State", "Mutex", "Started", "Duration", "Exit", "Activity", "Output")
ACTIVITY_COLOURS = {
    Activity.PROGRESSING: QColor("#388838"),
    Activity.WAITING: QColor("#9a6700"),
    Activity.FROZEN: QColor("#b3261e"),
}
STATE_COLOURS = {"abandoned": QColor("#b3261e"), "quarantined": QColor("#b3261e")}

Index = QModelIndex | QPersistentModelIndex


class ScriptsModel(QAbstractTableModel):
    def __init__(self) -> None:
        super().__init__()
        self._rows: list[ScriptRow] = []

    def set_rows(self, rows: list[ScriptRow]) -> None:
        """Replace the rows; unchanged order only refreshes cells, so selection survives."""
        if [r.ticket for r in rows] == [r.ticket for r in self._rows]:
            self._rows = rows
            if rows:
                last = self.index(len(rows) - 1, len(COLUMNS) - 1)
                self.dataChanged.emit(self.index(0, 0), last)
            return
        self.beginResetModel()
        self._rows = rows
        self.endResetModel()

    def row_at(self, row: int) -> ScriptRow | None:
        return self._rows[row] if 0 <= row < len(self._rows) else None

    def row_of(self, ticket: str) -> int | None:
        return next((i for i, r in enumerate(self._rows) if r.ticket == ticket), None)

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation is Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        row = self.row_at(index.row())
        if row is None:
            return None
        column = COLUMNS[index.column()]
        if role == Qt.ItemDataRole.DisplayRole:
            return _text(row, column)
        if role == Qt.ItemDataRole.ToolTipRole and column == "Activity" and row.activity:
            return row.activity.reason
        if role == Qt.ItemDataRole.ForegroundRole:
            if column == "Activity" and row.activity:
                return ACTIVITY_COLOURS.get(row.activity.activity)
            if column == "State":
                return STATE_COLOURS.get(row.state)
        return None


def _text(row: ScriptRow, column: str) -> str:
    match column:
        case "Ticket":
            return row.ticket
        case "Task":
            return row.task_id
        case "State":
            return row.state
        case "Mutex":
            return f"{row.mutex} ({row.level})"
        case "Started":
            return _local(row.started)
        case "Duration":
            return _duration(row.duration)
        case "Exit":
            return "" if row.exit_code is None else str(row.exit_code)
        case "Activity":
            return row.activity.activity.value if row.activity else ""
        case _:
            return row.last_line


def _local(moment: datetime | None) -> str:
    return moment.astimezone().strftime("%H:%M:%S") if moment else ""


def _duration(span: timedelta | None) -> str:
    if span is None:
        return ""
    seconds = int(span.total_seconds())
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
