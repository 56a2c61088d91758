"""Crash-safe file replacement for configs, the index, secrets, TLS pairs and service files.

Each file is written to a sibling temp file, fsynced, then renamed over the original, and the
folder is fsynced: a crash or a full disk leaves the old file or the new one, whole, and no
temp file behind. The agent's workspace has its own writer (agent/workspace/atomic.py),
tuned for its hot path; this one favours safety over speed.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path
from typing import NamedTuple


class PendingFile(NamedTuple):
    """New content for `path`, and the permissions it gets.

    `mode` is used for a new file. With `keep_identity`, a file that already exists keeps its
    mode, and its owner when running as root, so that a root `configure` does not lock a
    service account out of its own file; without it, `mode` always applies.
    """

    path: Path
    data: bytes
    mode: int
    keep_identity: bool = False


def write_atomically(*files: PendingFile) -> None:
    """Replace each file so a reader sees its old content or its new, never a mix.

    Every file is staged before any is renamed into place, so a failure while writing (a full
    disk, a bad folder) changes none of them: a key and its certificate change together. Temp
    files are created 0600 and sit beside their target, because a rename is only atomic within
    one file system. Call it under the file's lock when other writers may race.
    """
    staged: list[tuple[Path, Path]] = []
    try:
        for pending in files:
            staged.append((_stage(pending), pending.path))
        for temp, path in staged:
            os.replace(temp, path)
    except BaseException:
        for temp, _ in staged:
            temp.unlink(missing_ok=True)
        raise
    for directory in {path.parent for _, path in staged}:
        _fsync_directory(directory)


def _stage(pending: PendingFile) -> Path:
    """An fsynced temp file beside `pending.path`, holding its data with its final permissions."""
    fd, name = tempfile.mkstemp(
        dir=pending.path.parent, prefix=f".{pending.path.name}.", suffix=".tmp"
    )
    temp = Path(name)
    try:
        with os.fdopen(fd, "wb") as handle:
            _set_identity(handle.fileno(), pending)
            handle.write(pending.data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return temp


def _set_identity(fd: int, pending: PendingFile) -> None:
    """Give the temp file the mode (and owner) the replaced file should end up with."""
    current = _existing_status(pending.path) if pending.keep_identity else None
    if current is None:
        os.fchmod(fd, pending.mode)
        return
    os.fchmod(fd, stat.S_IMODE(current.st_mode))
    if os.geteuid() == 0:
        os.fchown(fd, current.st_uid, current.st_gid)


def _existing_status(path: Path) -> os.stat_result | None:
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None


def make_private_directory(directory: Path) -> None:
    """Create `directory` for its owner only; an existing one is left as it is, to be checked."""
    try:
        directory.mkdir(parents=True, mode=0o700)
    except FileExistsError:
        return
    directory.chmod(0o700)  # mkdir's mode is filtered by the umask


def _fsync_directory(directory: Path) -> None:
    """Make the renames durable: without this a power cut can bring the old file back."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
