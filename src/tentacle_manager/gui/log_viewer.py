"""The log viewer: the agent's log, its archives, a script's output, or any file, however big.

Opening a file starts one watch task: it indexes the file in the background (executor threads,
log_index) while the first screen is already shown, then, in follow mode, looks for new lines
every second and keeps the view at the end. Filters (level, text or regular expression, case)
run as one search task that a newer filter cancels; as the file grows the search goes on from
where it stopped instead of starting again. The view is a table with fixed row heights over a
lazy model (log_model), so seven million lines scroll like seventy. (A QListView lays out
every row again whenever rows are added, even with uniform sizes: seconds per chunk at a few
million lines.)

Dialogs use `open()` and signals: `exec()` inside a coroutine would re-enter the qasync loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime
from pathlib import Path

import numpy as np
from PySide6.QtCore import QDateTime, QPoint, Qt, QTimer
from PySide6.QtGui import QAction, QFontDatabase, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDateTimeEdit,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QProgressBar,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from tentacle_manager.diagnostics.log_filter import (
    AllOf,
    FilterError,
    FilterProgress,
    FilterRunner,
    Levels,
    LineFilter,
    Regex,
    Substring,
)
from tentacle_manager.diagnostics.log_format import Level
from tentacle_manager.diagnostics.log_index import Extent, FileChange, LogIndex
from tentacle_manager.diagnostics.log_sources import LogSource, log_sources
from tentacle_manager.diagnostics.log_time import first_line_at
from tentacle_manager.gui import cancel_and_wait, spawn
from tentacle_manager.gui.log_model import LogLinesModel
from tentacle_manager.gui.widgets import ERROR_STYLE, named
from tentacle_manager.instances.errors import InstanceError
from tentacle_manager.instances.instance import Instance

FOLLOW_SECONDS = 1.0
FILTER_DELAY_MS = 250  # typing pauses this long before the search starts again
COPY_LINES_LIMIT = 100_000  # more goes to a file: Export
EXPORT_BATCH_ROWS = 10_000
LEVEL_CHOICES = [
    ("All levels", None),
    ("Debug and above", Level.DEBUG),
    ("Info and above", Level.INFO),
    ("Warnings and above", Level.WARN),
    ("Errors and above", Level.ERROR),
]


class LogViewer(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName("Logs")
        self.model = LogLinesModel()
        self._index: LogIndex | None = None
        self._runner: FilterRunner | None = None
        self._filter: LineFilter | None = None
        self._result_stop = 0  # lines the filter's result covers
        self._result_resume = 0
        self._rows = np.empty(0, dtype=np.int64)
        self._watcher: asyncio.Task[None] | None = None
        self._searcher: asyncio.Task[None] | None = None
        self._follow_toggled = asyncio.Event()
        self._dialog: QFileDialog | None = None
        self._build()

    # --- what is shown -------------------------------------------------------------------------

    @property
    def path(self) -> Path | None:
        return self._index.path if self._index is not None else None

    async def show_instance(self, instance: Instance) -> None:
        """List the instance's logs and open its agent log, unless one of them is open."""
        loop = asyncio.get_running_loop()
        try:
            sources = await loop.run_in_executor(None, lambda: log_sources(instance.layout()))
        except InstanceError as error:
            self._say(error.one_line(), error=True)
            return
        self.sources.blockSignals(True)
        self.sources.clear()
        for source in sources:
            self.sources.addItem(source.label, source)
            self.sources.setItemData(
                self.sources.count() - 1, str(source.path), Qt.ItemDataRole.ToolTipRole
            )
        self.sources.blockSignals(False)
        if sources and self.path not in {source.path for source in sources}:
            self.open(sources[0].path)

    def open(self, path: Path) -> None:
        """Show `path` from its first line, indexed in the background; the filter stays."""
        self._stop_tasks()
        self._index = LogIndex(path)
        self._runner = FilterRunner(self._index)
        self._forget_result()
        self.model.show(self._index, self._rows if self._filter is not None else None)
        self.setWindowFilePath(str(path))
        self._say(f"Opening {path}...")
        self._watcher = spawn(self._watch(self._index))

    async def close_file(self) -> None:
        """Stop indexing, following and searching (the window is closing)."""
        tasks = (self._watcher, self._searcher)
        self._watcher = self._searcher = None
        await cancel_and_wait(*tasks)

    def _stop_tasks(self) -> None:
        for task in (self._watcher, self._searcher):
            if task is not None:
                task.cancel()
        self._watcher = self._searcher = None

    # --- indexing and following ----------------------------------------------------------------

    async def _watch(self, index: LogIndex) -> None:
        """Index the file, then (in follow mode) its new lines every second, for ever."""
        while True:
            try:
                change = await index.update(self._indexed)
            except FileNotFoundError:
                self._say(f"{index.path} does not exist (yet).", error=True)
            except OSError as error:
                self._say(f"Cannot read {index.path}: {error.strerror or error}", error=True)
            else:
                self._caught_up(change)
            await self._next_look()

    def _indexed(self, extent: Extent) -> None:
        """After every indexed chunk: more lines to show (or, filtered, to search)."""
        if self._filter is None:
            self.model.extend()
        self.progress.setValue(int(extent.fraction * 100))
        self.progress.setVisible(not extent.done)
        self._describe()

    def _caught_up(self, change: FileChange) -> None:
        if change is FileChange.REPLACED:  # rotated or rewritten: from the start
            self._forget_result()
            self.model.show(self._index, self._rows if self._filter is not None else None)
        elif self._filter is None:
            self.model.extend()
        self._search_on()
        self.progress.setVisible(False)
        self._describe()
        if self.follow.isChecked():
            self.view.scrollToBottom()

    async def _next_look(self) -> None:
        """Wait a second in follow mode; otherwise until follow mode is switched on."""
        self._follow_toggled.clear()
        if self.follow.isChecked():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(FOLLOW_SECONDS):
                    await self._follow_toggled.wait()
        else:
            await self._follow_toggled.wait()

    def _follow_changed(self) -> None:
        self._follow_toggled.set()
        if self.follow.isChecked():
            self.view.scrollToBottom()

    # --- filtering -----------------------------------------------------------------------------

    def _filter_changed(self) -> None:
        """Read the filter fields; a bad one is named in red and the view keeps its rows."""
        try:
            line_filter = self._read_filter()
        except FilterError as error:
            self._say("; ".join(f"{field}: {rule}" for field, rule in error.problems.items()), True)
            self.text.setAccessibleDescription(str(error))
            return
        self.text.setAccessibleDescription("")
        if line_filter == self._filter:
            return
        if self._searcher is not None:
            self._searcher.cancel()
            self._searcher = None
        self._filter = line_filter
        self._forget_result()
        self.model.show(self._index, self._rows if line_filter is not None else None)
        self._search_on()
        self._describe()

    def _read_filter(self) -> LineFilter | None:
        filters: list[LineFilter] = []
        level = self.level.currentData()
        if level is not None:
            filters.append(Levels.at_least(level))
        text, case = self.text.text(), self.match_case.isChecked()
        if text and self.regex.isChecked():
            filters.append(Regex(text, case_sensitive=case))
        elif text:
            filters.append(Substring(text, case_sensitive=case))
        if not filters:
            return None
        return filters[0] if len(filters) == 1 else AllOf(tuple(filters))

    def _forget_result(self) -> None:
        self._rows = np.empty(0, dtype=np.int64)
        self._result_stop = self._result_resume = 0

    def _search_on(self) -> None:
        """Search the lines the filter's result does not cover yet, unless a search runs."""
        if self._filter is None or self._index is None:
            return
        if self._searcher is None or self._searcher.done():
            self._searcher = spawn(self._search(self._filter))

    async def _search(self, line_filter: LineFilter) -> None:
        assert self._index is not None and self._runner is not None
        while self._result_stop < self._index.line_count:
            found = await self._runner.run(
                line_filter, start=self._result_resume, progress=self._searched
            )
            kept = self._rows[self._rows < found.start]
            self._rows = np.concatenate([kept, found.lines])
            self._result_stop, self._result_resume = found.stop, found.resume
            self.model.extend(self._rows)
        self._searcher = None  # only the current search gets here: a replaced one is cancelled
        self.progress.setVisible(False)
        self._describe()

    def _searched(self, progress: FilterProgress) -> None:
        self.progress.setVisible(True)
        self.progress.setValue(100 * progress.searched // max(progress.total, 1))

    # --- jump, copy, export --------------------------------------------------------------------

    def jump_to_time(self) -> None:
        spawn(self.go_to_time(self.when.dateTime().toPython()))

    async def go_to_time(self, moment: datetime) -> None:
        """Select the first line written at or after `moment` (the last line if none was)."""
        index = self._index
        if index is None:
            return
        loop = asyncio.get_running_loop()
        line = await loop.run_in_executor(None, first_line_at, index, moment)
        if index is not self._index or not self.model.rowCount():
            return
        if line is None:
            self._say(f"Every line was written before {moment:%Y-%m-%d %H:%M:%S}.")
            line = index.line_count - 1
        self.select_row(self.model.row_of(line))

    def select_row(self, row: int) -> None:
        at = self.model.index(row)
        self.view.setCurrentIndex(at)
        self.view.scrollTo(at, QAbstractItemView.ScrollHint.PositionAtCenter)

    def selected_rows(self) -> list[int]:
        rows: list[int] = []
        for selected in self.view.selectionModel().selection():
            rows.extend(range(selected.top(), selected.bottom() + 1))
        return sorted(set(rows))

    def copy_selection(self) -> None:
        rows = self.selected_rows()
        if len(rows) > COPY_LINES_LIMIT:
            self._say(
                f"{len(rows):,} lines are too many for the clipboard (at most "
                f"{COPY_LINES_LIMIT:,}); use Export selection to save them to a file.",
                error=True,
            )
            return
        QGuiApplication.clipboard().setText("\n".join(self.model.texts(rows)))
        self._say(f"Copied {len(rows):,} lines.")

    def ask_export(self) -> None:
        if not self.selected_rows():
            self._say("Select the lines to export first (Ctrl+A selects every line).", True)
            return
        dialog = QFileDialog(self, "Export the selected lines")
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        dialog.setNameFilters(["Text files (*.txt *.log)", "All files (*)"])
        dialog.fileSelected.connect(lambda chosen: spawn(self.export_selection(Path(chosen))))
        self._dialog = dialog
        dialog.open()

    async def export_selection(self, target: Path) -> int:
        """Write the selected lines to `target` in batches, off the GUI thread; their count."""
        rows = self.selected_rows()
        loop = asyncio.get_running_loop()
        try:
            with open(target, "w", encoding="utf-8", newline="\n") as file:
                for start in range(0, len(rows), EXPORT_BATCH_ROWS):
                    batch = rows[start : start + EXPORT_BATCH_ROWS]
                    texts = await loop.run_in_executor(None, self.model.texts, batch)
                    await loop.run_in_executor(None, file.write, "".join(t + "\n" for t in texts))
        except OSError as error:
            self._say(f"Could not export to {target}: {error.strerror or error}", error=True)
            return 0
        self._say(f"Exported {len(rows):,} lines to {target}.")
        return len(rows)

    def ask_open(self) -> None:
        dialog = QFileDialog(self, "Open a log file")
        dialog.setFileMode(QFileDialog.FileMode.ExistingFile)
        dialog.fileSelected.connect(lambda chosen: self.open(Path(chosen)))
        self._dialog = dialog
        dialog.open()

    # --- layout --------------------------------------------------------------------------------

    def _build(self) -> None:
        self.sources = named(QComboBox(), "Log to show")
        self.sources.activated.connect(self._source_picked)
        open_file = named(QPushButton("&Open file..."), "Open another log file")
        open_file.clicked.connect(self.ask_open)
        label = named(QLabel("&Log:"), "Log label")
        label.setBuddy(self.sources)
        top = QHBoxLayout()
        top.addWidget(label)
        top.addWidget(self.sources, 1)
        top.addWidget(open_file)

        self.level = named(QComboBox(), "Level filter")
        for label, level in LEVEL_CHOICES:
            self.level.addItem(label, level)
        self.text = named(QLineEdit(), "Text filter")
        self.text.setPlaceholderText("Filter: text, or a regular expression")
        self.text.setClearButtonEnabled(True)
        self.regex = named(QCheckBox("Re&gex"), "Text filter is a regular expression")
        self.match_case = named(QCheckBox("Match &case"), "Text filter matches case")
        self._typing = QTimer(self)
        self._typing.setSingleShot(True)
        self._typing.setInterval(FILTER_DELAY_MS)
        self._typing.timeout.connect(self._filter_changed)
        self.text.textChanged.connect(self._typing.start)
        self.text.returnPressed.connect(self._filter_changed)
        for box in (self.regex, self.match_case):
            box.toggled.connect(self._filter_changed)
        self.level.currentIndexChanged.connect(self._filter_changed)
        filters = QHBoxLayout()
        filters.addWidget(self.level)
        filters.addWidget(self.text, 1)
        filters.addWidget(self.regex)
        filters.addWidget(self.match_case)

        self.follow = named(QCheckBox("&Follow"), "Follow the end of the file")
        self.follow.toggled.connect(self._follow_changed)
        self.when = named(QDateTimeEdit(QDateTime.currentDateTime()), "Time to jump to")
        self.when.setDisplayFormat("yyyy-MM-dd HH:mm:ss")
        self.when.setCalendarPopup(True)
        go = named(QPushButton("&Jump to time"), "Jump to the first line at that time")
        go.clicked.connect(self.jump_to_time)
        self.progress = named(QProgressBar(), "Indexing or search progress")
        self.progress.setRange(0, 100)
        self.progress.setVisible(False)
        self.progress.setMaximumWidth(160)
        self.status = named(QLabel(""), "Log viewer status")
        self.status.setWordWrap(True)
        moves = QHBoxLayout()
        moves.addWidget(self.follow)
        moves.addWidget(self.when)
        moves.addWidget(go)
        moves.addWidget(self.progress)
        moves.addWidget(self.status, 1)

        self.view = named(QTableView(), "Log lines")
        self.view.setModel(self.model)
        self.view.setTabKeyNavigation(False)  # Tab leaves the view; arrows move in it
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setShowGrid(False)
        self.view.setWordWrap(False)
        self.view.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.view.horizontalHeader().setVisible(False)
        self.view.horizontalHeader().setStretchLastSection(True)
        rows = self.view.verticalHeader()  # fixed heights: no row is measured, 7M rows scroll
        rows.setVisible(False)
        rows.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        rows.setDefaultSectionSize(self.view.fontMetrics().height() + 2)
        self.view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.view.customContextMenuRequested.connect(self._context_menu)

        layout = QVBoxLayout(self)
        for row in (top, filters, moves):
            layout.addLayout(row)
        layout.addWidget(self.view, 1)
        self._actions = self._make_actions()

    def _make_actions(self) -> list[QAction]:
        actions = []
        for text, keys, slot in (
            ("Copy selected lines", QKeySequence.StandardKey.Copy, self.copy_selection),
            ("Export selected lines...", QKeySequence.StandardKey.Save, self.ask_export),
            ("Select all lines", QKeySequence.StandardKey.SelectAll, self.view.selectAll),
            ("Filter...", QKeySequence.StandardKey.Find, self._focus_filter),
            ("Jump to time...", QKeySequence("Ctrl+G"), self.when.setFocus),
            ("Open file...", QKeySequence.StandardKey.Open, self.ask_open),
        ):
            action = QAction(text, self)
            action.setShortcut(QKeySequence(keys))
            action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            action.triggered.connect(slot)
            actions.append(action)
        self.addActions(actions)
        return actions

    def _context_menu(self, point: QPoint) -> None:
        menu = QMenu(self)
        menu.addActions(self._actions)
        menu.popup(self.view.viewport().mapToGlobal(point))

    def _focus_filter(self) -> None:
        self.text.setFocus()
        self.text.selectAll()

    def _source_picked(self, position: int) -> None:
        source = self.sources.itemData(position)
        if isinstance(source, LogSource):
            self.open(source.path)

    def _describe(self) -> None:
        """The status line: how many lines, how far indexing is, how many match."""
        index = self._index
        if index is None:
            return
        extent = index.extent
        text = f"{index.path.name}: {extent.lines:,} lines"
        if not extent.done:
            text += f", indexing {extent.fraction:.0%}"
        if self._filter is not None:
            text += f"; {self.model.rowCount():,} match"
            text += " so far" if self._searcher is not None else ""
        self._say(text)

    def _say(self, text: str, error: bool = False) -> None:
        self.status.setText(text)
        self.status.setStyleSheet(ERROR_STYLE if error else "")
