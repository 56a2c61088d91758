"""The picture of the last hour of every isolation mutex: one row per lock, a bar per hold and
per wait, now at the right. Drawn with QPainter so it needs nothing beyond Qt itself."""

from __future__ import annotations

from datetime import datetime

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from tentacle_manager.contracts import ScriptIsolationLevel, utc_now
from tentacle_manager.diagnostics.mutex_history import Interval, MutexHistory

ROW_HEIGHT = 26
LABEL_WIDTH = 160
AXIS_HEIGHT = 20
FULL = QColor("#2f5d9b")  # FullIsolation: holds the lock alone
SHARED = QColor("#3f8f7f")  # NoIsolation: shares the lock with other readers
WAITING = QColor("#c9a227")
ABANDONED = QColor("#b3261e")


class MutexTimeline(QWidget):
    def __init__(self, history: MutexHistory, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._history = history
        self.setAccessibleName("Mutex timeline of the last hour")
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.setMinimumHeight(AXIS_HEIGHT + ROW_HEIGHT)

    def paintEvent(self, event: QPaintEvent) -> None:
        now = utc_now()
        rows = self._history.intervals(now)
        self.setMinimumHeight(AXIS_HEIGHT + ROW_HEIGHT * max(len(rows), 1))
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        palette = self.palette()
        painter.fillRect(self.rect(), palette.base())
        self._axis(painter, now)
        if not rows:
            painter.setPen(palette.placeholderText().color())
            painter.drawText(
                QRectF(0, AXIS_HEIGHT, self.width(), ROW_HEIGHT),
                Qt.AlignmentFlag.AlignCenter,
                "No mutex has been held or awaited in the last hour.",
            )
        for number, (lock, intervals) in enumerate(rows.items()):
            top = AXIS_HEIGHT + number * ROW_HEIGHT
            painter.setPen(palette.text().color())
            label = QRectF(4, top, LABEL_WIDTH - 8, ROW_HEIGHT)
            painter.drawText(label, Qt.AlignmentFlag.AlignVCenter, lock)
            for interval in intervals:
                self._bar(painter, interval, top, now)
        painter.end()

    def _x(self, moment: datetime, now: datetime) -> float:
        span = self._history.window.total_seconds()
        before_now = (now - moment).total_seconds()
        width = self.width() - LABEL_WIDTH - 8
        return LABEL_WIDTH + width * max(0.0, 1 - before_now / span)

    def _axis(self, painter: QPainter, now: datetime) -> None:
        painter.setPen(self.palette().placeholderText().color())
        for minutes in (60, 45, 30, 15, 0):
            x = self._x(now - self._history.window * (minutes / 60), now)
            painter.drawLine(int(x), AXIS_HEIGHT - 4, int(x), self.height())
            if minutes == 0:  # at the right edge: end the label there rather than cut it
                box, align = QRectF(x - 80, 0, 80, AXIS_HEIGHT - 4), Qt.AlignmentFlag.AlignRight
            else:
                box, align = QRectF(x - 40, 0, 80, AXIS_HEIGHT - 4), Qt.AlignmentFlag.AlignCenter
            painter.drawText(box, align, "now" if minutes == 0 else f"-{minutes} min")

    def _bar(self, painter: QPainter, interval: Interval, top: float, now: datetime) -> None:
        left = self._x(interval.start, now)
        right = self._x(interval.end or now, now)
        if interval.waiting:
            colour, inset = WAITING, 9
        else:
            full = interval.party.level is ScriptIsolationLevel.FULL_ISOLATION
            colour, inset = (FULL if full else SHARED), 5
        rect = QRectF(left, top + inset, max(right - left, 2.0), ROW_HEIGHT - 2 * inset)
        painter.fillRect(rect, colour)
        if interval.abandoned:
            painter.setPen(QPen(ABANDONED, 2))
            painter.drawRect(rect)
