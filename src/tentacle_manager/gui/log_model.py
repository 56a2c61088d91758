"""The log viewer's item model: rows are lines of an indexed log, read a page at a time.

Nothing of the file is held but the index (eight bytes a line) and a few recently shown pages
of text, so seven million rows cost what the index costs. A filter does not copy lines either:
its result is the array of matching line numbers, and a row maps to a line through it. Pages
are read when the view asks for a row on screen (a few hundred short reads from the page
cache, well under a millisecond each) and dropped least recently used.

Rows are coloured by the level of their record: a warning and its trace in one colour, an
error and its trace in another. A page knows the level of a continuation line from the line
above it, or from the record above the page (log_filter.record_level_above) for its first.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np
from PySide6.QtCore import QAbstractListModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QBrush, QColor, QPalette
from PySide6.QtWidgets import QApplication

from tentacle_manager.diagnostics.log_filter import record_level_above
from tentacle_manager.diagnostics.log_format import NO_LEVEL, Level, parse_line
from tentacle_manager.diagnostics.log_index import LogIndex

PAGE_ROWS = 256
PAGES_KEPT = 64
LINE_BYTES_SHOWN = 4096  # a line can be a gigabyte; the view shows its start
_WARNING = QColor(0xFF, 0xC1, 0x07)
_ERROR = QColor(0xE5, 0x39, 0x35)

_Index = QModelIndex | QPersistentModelIndex


class LogLinesModel(QAbstractListModel):
    def __init__(self) -> None:
        super().__init__()
        self._index: LogIndex | None = None
        self._rows: np.ndarray | None = None  # the filter's line numbers; None: every line
        self._count = 0
        self._pages: OrderedDict[int, list[tuple[str, int]]] = OrderedDict()

    @property
    def log(self) -> LogIndex | None:
        return self._index

    @property
    def filtered(self) -> bool:
        return self._rows is not None

    def show(self, index: LogIndex | None, rows: np.ndarray | None = None) -> None:
        """Show another file, or the same one with another filter (or none): a new model state."""
        self.beginResetModel()
        self._index, self._rows = index, rows
        self._count = self._row_total()
        self._pages.clear()
        self.endResetModel()

    def extend(self, rows: np.ndarray | None = None) -> None:
        """The file grew (follow mode): show the new lines, or the filter's longer result."""
        if rows is not None:
            self._rows = rows
        total = self._row_total()
        if total < self._count:  # cannot happen for one file; a replaced file is `show`n
            self.show(self._index, self._rows)
            return
        last_page = (self._count - 1) // PAGE_ROWS if self._count else 0
        for page in (last_page, last_page + 1):  # the last line may have been unfinished
            self._pages.pop(page, None)
        if total > self._count:
            self.beginInsertRows(QModelIndex(), self._count, total - 1)
            self._count = total
            self.endInsertRows()
        if self._count:
            self.dataChanged.emit(self.index(last_page * PAGE_ROWS), self.index(self._count - 1))

    def line_of(self, row: int) -> int:
        return int(self._rows[row]) if self._rows is not None else row

    def row_of(self, line: int) -> int:
        """The row showing `line`, or the first row after it when the filter hides it."""
        if self._rows is None:
            return min(line, max(self._count - 1, 0))
        row = int(np.searchsorted(self._rows[: self._count], line))
        return min(row, max(self._count - 1, 0))

    def texts(self, rows: list[int]) -> list[str]:
        """The whole text of these rows' lines, for copy and export."""
        if self._index is None:
            return []
        return self._index.lines_at([self.line_of(row) for row in rows])

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008 (Qt's signature)
        return 0 if parent.isValid() else self._count

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < self._count:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return self._row(index.row())[0]
        if role == Qt.ItemDataRole.ForegroundRole:
            level = self._row(index.row())[1]
            if level >= Level.ERROR:
                return QBrush(_ERROR)
            if level == Level.WARN:
                return QBrush(_WARNING.darker(130) if _light_theme() else _WARNING)
        if role == Qt.ItemDataRole.AccessibleTextRole:
            return f"line {self.line_of(index.row()) + 1}: {self._row(index.row())[0]}"
        return None

    def _row_total(self) -> int:
        if self._index is None:
            return 0
        lines = self._index.line_count
        if self._rows is None:
            return lines
        return int(np.searchsorted(self._rows, lines))  # only lines the index holds

    def _row(self, row: int) -> tuple[str, int]:
        page_number, at = divmod(row, PAGE_ROWS)
        page = self._pages.get(page_number)
        if page is None:
            page = self._read_page(page_number)
            self._pages[page_number] = page
            if len(self._pages) > PAGES_KEPT:
                self._pages.popitem(last=False)
        else:
            self._pages.move_to_end(page_number)
        return page[at] if at < len(page) else ("", NO_LEVEL)

    def _read_page(self, page_number: int) -> list[tuple[str, int]]:
        assert self._index is not None
        first = page_number * PAGE_ROWS
        rows = range(first, min(first + PAGE_ROWS, self._count))
        lines = [self.line_of(row) for row in rows]
        if self._rows is None:
            texts = self._index.lines(first, first + len(lines), max_bytes=LINE_BYTES_SHOWN)
        else:
            texts = self._index.lines_at(lines, max_bytes=LINE_BYTES_SHOWN)
        page: list[tuple[str, int]] = []
        previous_line, level = -2, NO_LEVEL
        for line, text in zip(lines, texts, strict=True):
            parsed = parse_line(text)
            if parsed is not None:
                level = parsed.level
            elif line != previous_line + 1:  # a continuation whose record starts above it
                level = record_level_above(self._index, line)
            page.append((text, level))
            previous_line = line
        return page


def _light_theme() -> bool:
    return QApplication.palette().color(QPalette.ColorRole.Base).lightness() > 128
