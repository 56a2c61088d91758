"""Small helpers the panels share: accessible widgets, and tools run behind a button."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import QLabel, QPlainTextEdit, QPushButton, QWidget

from tentacle_manager.gui import spawn

_W = TypeVar("_W", bound=QWidget)
ERROR_STYLE = "color: #c62828;"  # a problem the user must act on, in every panel and dialog


def named(widget: _W, name: str) -> _W:
    """Give a widget the name a screen reader announces; every control gets one."""
    widget.setAccessibleName(name)
    return widget


def monospace(name: str) -> QPlainTextEdit:
    """A read-only box for commands and their output, which line up only in a fixed font."""
    box = named(QPlainTextEdit(), name)
    box.setReadOnly(True)
    box.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
    box.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
    return box


def wrapped_label(name: str) -> QLabel:
    """A label for sentences of any length (results, verdicts, status)."""
    label = named(QLabel(""), name)
    label.setWordWrap(True)
    return label


def spawn_with_button(
    button: QPushButton, work: Coroutine[Any, Any, Any], running: set[asyncio.Task[Any]]
) -> asyncio.Task[Any]:
    """Run a tool's task with its button disabled until it ends; `running` holds it meanwhile,
    so that the panel can cancel whatever still runs when the window closes."""
    button.setEnabled(False)
    task = spawn(work)
    running.add(task)

    def finished(_: asyncio.Task[Any]) -> None:
        running.discard(task)
        button.setEnabled(True)

    task.add_done_callback(finished)
    return task
