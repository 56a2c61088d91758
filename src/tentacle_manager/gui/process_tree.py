"""A script's processes as a tree (parent above child), shared by the scripts panel and the
mutex inspector."""

from __future__ import annotations

from PySide6.QtWidgets import QTreeWidget, QTreeWidgetItem

from tentacle_manager.contracts import ScriptProcessTree


def process_tree_widget(accessible_name: str) -> QTreeWidget:
    widget = QTreeWidget()
    widget.setAccessibleName(accessible_name)
    widget.setHeaderLabels(["Process", "PID", "State", "CPU s", "Started"])
    return widget


def show_processes(widget: QTreeWidget, tree: ScriptProcessTree) -> None:
    widget.clear()
    items: dict[int, QTreeWidgetItem] = {}
    for process in tree.processes:
        item = QTreeWidgetItem(
            [
                process.name,
                str(process.pid),
                process.status.value,
                f"{process.cpu_seconds:.1f}",
                process.started.astimezone().strftime("%H:%M:%S"),
            ]
        )
        parent = items.get(process.parent_pid) if process.parent_pid else None
        if parent is None:
            widget.addTopLevelItem(item)
        else:
            parent.addChild(item)
        items[process.pid] = item
    widget.expandAll()
