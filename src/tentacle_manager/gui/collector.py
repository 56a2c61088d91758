"""Python's garbage collection, run on the GUI thread only.

The cyclic collector runs in whichever thread happens to allocate when a threshold is crossed:
in this window often an executor thread (log indexing, psutil walks, installs). If the cycle it
frees holds a Qt object (a widget captured by a lambda connected to its own signal, say), the
object's C++ destructor then runs on that thread while the GUI thread uses Qt: a data race
that crashes rarely and far from its cause. So automatic collection is switched off while the
window lives, and a timer on the GUI thread collects whenever the counts pass the thresholds,
the same rule the interpreter would apply, a few times a second.
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QTimer

INTERVAL_MS = 200


class MainThreadCollector(QObject):
    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._timer = QTimer(self)
        self._timer.timeout.connect(self._collect)
        self._was_enabled = gc.isenabled()

    def start(self) -> None:
        gc.disable()
        self._timer.start(INTERVAL_MS)

    def stop(self) -> None:
        """Collect once more here, then give collection back to the interpreter."""
        self._timer.stop()
        gc.collect()
        if self._was_enabled:
            gc.enable()

    def _collect(self) -> None:
        counts, thresholds = gc.get_count(), gc.get_threshold()
        for generation in (2, 1, 0):
            if counts[generation] > thresholds[generation]:
                gc.collect(generation)
                return
