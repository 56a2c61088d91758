"""Removes workspaces of finished scripts that nobody completed (Tentacle's WorkspaceCleaner).

Runs at agent start and then every `interval`. A workspace is removed only when its script is
complete, is not running in this agent, is not quarantined, and its output (or state) has not
been written for `older_than`. Folders that hold neither a state file nor a log are not ours
to judge and are left alone.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from tentacle_manager.agent.workspace.state import StateFileError, StateStore
from tentacle_manager.agent.workspace.workspace import Workspace, WorkspaceDeleteError

log = logging.getLogger(__name__)


def clean_workspaces(
    work_root: Path, older_than: float, in_use: Callable[[str], bool], now: float | None = None
) -> int:
    """Delete stale finished workspaces; returns how many were deleted."""
    if not work_root.is_dir():
        return 0
    cutoff = (time.time() if now is None else now) - older_than
    deleted = 0
    for directory in work_root.iterdir():
        if not directory.is_dir() or in_use(directory.name):
            continue
        workspace = Workspace(directory)
        store = StateStore(directory)
        if not store.exists():
            continue
        try:
            state = store.load()
        except StateFileError as error:
            log.warning("Skipping workspace with an unreadable state file: %s", error)
            continue
        if not state.is_complete or state.quarantined:
            continue
        marker = workspace.log_path if workspace.log_path.exists() else store.path
        if marker.stat().st_mtime >= cutoff:
            continue
        try:
            workspace.delete()
            deleted += 1
        except WorkspaceDeleteError as error:
            log.warning("Could not delete workspace %s: %s", directory, error)
    if deleted:
        log.info("Deleted %d workspace(s).", deleted)
    return deleted
