"""Garbage is collected on the GUI thread only: a cycle that becomes garbage while an executor
thread allocates is freed by the collector's timer, on the GUI thread."""

from __future__ import annotations

import gc
import threading
import weakref

from pytestqt.qtbot import QtBot

from tentacle_manager.gui.collector import MainThreadCollector
from tests import gui_support  # noqa: F401 (the offscreen platform, before the QApplication)


class Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the cyclic collector frees it


def test_cycles_are_freed_on_the_gui_thread_while_other_threads_allocate(qtbot: QtBot) -> None:
    collector = MainThreadCollector()
    was_enabled = gc.isenabled()
    collector.start()
    freed_in: list[str] = []
    try:
        assert not gc.isenabled()
        node = Node()
        weakref.finalize(node, lambda: freed_in.append(threading.current_thread().name))
        del node

        kept: list[list[object]] = []

        def allocate() -> None:  # live containers, past the first threshold several times
            kept.extend([] for _ in range(5 * gc.get_threshold()[0]))

        worker = threading.Thread(target=allocate, name="worker")
        worker.start()
        worker.join()
        assert freed_in == []  # the worker's allocations did not collect
        qtbot.waitUntil(lambda: freed_in != [], timeout=5000)
        assert freed_in == [threading.main_thread().name]
    finally:
        collector.stop()
    assert gc.isenabled() == was_enabled
