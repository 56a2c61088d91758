"""Starting a script process with its output going to files in its workspace.

Output goes to files rather than pipes (as pueue does). A script therefore never blocks or dies
of SIGPIPE when the agent restarts or abandons it, and no grandchild can wedge the agent by
holding a pipe open; the agent tails the files into Output.log instead.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil


class LaunchError(OSError):
    """The shell could not be started at all (missing, not executable, ...)."""


@dataclass
class Launched:
    process: asyncio.subprocess.Process
    create_time: float
    output_fds: tuple[int, int]  # stdout and stderr files, kept open for the pump to read

    @property
    def pid(self) -> int:
        return self.process.pid


def exit_status(returncode: int) -> int:
    """A signal death (-N from asyncio) is reported as the shell would: 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


async def launch(
    command: list[str],
    cwd: Path,
    environment: dict[str, str],
    stdout_path: Path,
    stderr_path: Path,
) -> Launched:
    not_before = time.time() - 0.05  # a lower bound on the start time, if psutil is too late
    flags = os.O_RDWR | os.O_CREAT | os.O_APPEND
    stdout_fd = os.open(stdout_path, flags, 0o600)
    stderr_fd = os.open(stderr_path, flags, 0o600)
    try:
        platform_options: dict[str, object] = (
            {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}  # type: ignore[attr-defined]
            if sys.platform == "win32"
            else {"start_new_session": True}
        )
        process = await asyncio.create_subprocess_exec(
            *command,
            cwd=cwd,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=stdout_fd,
            stderr=stderr_fd,
            **platform_options,  # type: ignore[arg-type]
        )
    except OSError as error:
        os.close(stdout_fd)
        os.close(stderr_fd)
        raise LaunchError(
            error.errno, f"Error when attempting to execute {command[0]}: {error.strerror or error}"
        ) from error
    try:
        create_time = psutil.Process(process.pid).create_time()
    except psutil.Error:
        create_time = not_before  # already gone: its descendants started after this anyway
    return Launched(process, create_time, (stdout_fd, stderr_fd))
