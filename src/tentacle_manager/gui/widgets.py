"""Small helpers every panel uses to build accessible widgets."""

from __future__ import annotations

from typing import TypeVar

from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import QPlainTextEdit, QWidget

_W = TypeVar("_W", bound=QWidget)


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
