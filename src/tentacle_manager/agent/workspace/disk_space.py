"""The free-space guard Tentacle applies before every new script (about 551 MB)."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

DEFAULT_MINIMUM_FREE_BYTES = (500 + 50 + 1) * 1024 * 1024


class NotEnoughDiskSpaceError(OSError):
    pass


def ensure_free_space(directory: Path, minimum: int) -> None:
    if minimum <= 0:
        return
    free = shutil.disk_usage(directory).free
    if free < minimum:
        raise NotEnoughDiskSpaceError(
            f"The drive containing the directory '{directory}' on machine '{socket.gethostname()}' "
            f"does not have enough free disk space available for this operation to proceed. "
            f"The disk only has {free / 1048576:.0f} MB available; please free up at least "
            f"{minimum / 1048576:.0f} MB."
        )
