"""Asking before an action that stops someone's deployment.

The box is shown with `open()` and answered through its signal: `exec()` inside a coroutine
would re-enter the qasync loop. No is the default, so a stray Enter does nothing.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtWidgets import QMessageBox, QWidget


def ask(
    parent: QWidget, icon: QMessageBox.Icon, title: str, text: str, on_yes: Callable[[], None]
) -> QMessageBox:
    """Open the question; the caller keeps the returned box referenced while it is open."""
    yes, no = QMessageBox.StandardButton.Yes, QMessageBox.StandardButton.No
    box = QMessageBox(icon, title, text, yes | no, parent)
    box.setDefaultButton(no)
    box.setAccessibleName(title)
    box.finished.connect(lambda answer: on_yes() if answer == yes else None)
    box.open()
    return box
