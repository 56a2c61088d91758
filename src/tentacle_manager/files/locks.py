"""An exclusive lock between processes, on Linux and on Windows.

The lock lives on a separate lock file that is never deleted: locking a file that saves
replace by renaming would lock an inode nobody else checks, and deleting a lock file lets a
waiter and a newcomer each hold "the" lock.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def exclusive_lock(lock_file: Path, mode: int = 0o600) -> Iterator[None]:
    """Hold the lock while the block runs; closing the file releases it, also on a crash."""
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, mode)
    try:
        _lock(fd)
        yield
    finally:
        os.close(fd)


if sys.platform == "win32":
    import msvcrt

    def _lock(fd: int) -> None:
        msvcrt.locking(fd, msvcrt.LK_LOCK, 1)  # retries for 10 s, then raises OSError

else:
    import fcntl

    def _lock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX)
