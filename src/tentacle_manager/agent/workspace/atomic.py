"""Crash-safe file replacement: a reader sees the old content or the new, never a mix."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to a sibling temp file, fsync it, and rename it over `path`.

    Unlike Tentacle's File.Replace this leaves no backup file behind; the only temp name is
    fixed, so a crash can leave at most one `.tmp` file, which the next write replaces.
    """
    temp = path.with_name(f".{path.name}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, path)


def fsync_directory(path: Path) -> None:
    """Make a new directory entry durable (no-op where directories cannot be opened)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
