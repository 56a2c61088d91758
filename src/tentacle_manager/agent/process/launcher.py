"""Starting a script process with its output going to files in its workspace.

Output goes to files rather than pipes (as pueue does). A script therefore never blocks or dies
of SIGPIPE when the agent restarts or abandons it, and no grandchild can wedge the agent by
holding a pipe open; the agent tails the files into Output.log instead.

The exit is awaited through a pidfd registered with the event loop, not asyncio's default
child watcher, which (on Python 3.11) parks one thread in waitpid per child: every abandoned
process that cannot be killed would hold a thread for ever.
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
    popen: subprocess.Popen[bytes]
    create_time: float
    output_fds: tuple[int, int]  # stdout and stderr files, kept open for the pump to read

    @property
    def pid(self) -> int:
        return self.popen.pid

    async def wait(self) -> int:
        """The exit status, once the process has exited (it is reaped here)."""
        if self.popen.poll() is None:
            await _exited(self.popen)
        return exit_status(self.popen.wait())


async def _exited(popen: subprocess.Popen[bytes]) -> None:
    pidfd = None
    if hasattr(os, "pidfd_open"):
        try:
            pidfd = os.pidfd_open(popen.pid)
        except OSError:
            pidfd = None  # a kernel without pidfds
    if pidfd is None:
        interval = 0.005
        while popen.poll() is None:
            await asyncio.sleep(interval)
            interval = min(interval * 2, 0.1)
        return
    loop = asyncio.get_running_loop()
    readable = loop.create_future()
    loop.add_reader(pidfd, lambda: readable.done() or readable.set_result(None))
    try:
        if popen.poll() is None:
            await readable
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)


def exit_status(returncode: int) -> int:
    """A signal death (-N from subprocess) is reported as the shell would: 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


def launch(
    command: list[str],
    cwd: Path,
    environment: dict[str, str],
    stdout_path: Path,
    stderr_path: Path,
) -> Launched:
    not_before = time.time() - 0.05  # a lower bound on the start time, if psutil is too late
    flags = os.O_RDWR | os.O_CREAT | os.O_APPEND
    opened: list[int] = []
    try:
        stdout_fd = os.open(stdout_path, flags, 0o600)
        opened.append(stdout_fd)
        stderr_fd = os.open(stderr_path, flags, 0o600)
        opened.append(stderr_fd)
        platform_options: dict[str, object] = (
            {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}  # type: ignore[attr-defined]
            if sys.platform == "win32"
            else {"start_new_session": True}
        )
        popen = subprocess.Popen(
            command,
            cwd=cwd,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=stdout_fd,
            stderr=stderr_fd,
            **platform_options,  # type: ignore[arg-type]
        )
    except Exception as error:  # a bad argument or environment entry is a launch failure too
        for fd in opened:
            os.close(fd)
        raise LaunchError(
            getattr(error, "errno", None),
            f"Error when attempting to execute {command[0]}: "
            f"{getattr(error, 'strerror', None) or error}",
        ) from error
    try:
        create_time = psutil.Process(popen.pid).create_time()
    except psutil.Error:
        create_time = not_before  # already gone: its descendants started after this anyway
    return Launched(popen, create_time, (stdout_fd, stderr_fd))
