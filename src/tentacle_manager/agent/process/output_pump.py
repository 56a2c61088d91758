"""Tailing a script's raw stdout/stderr files into Output.log records.

Lines are split at \\n, \\r\\n or \\r (as Tentacle does), a final line without a newline is still
delivered at the end, and a line longer than MAX_LINE is cut into pieces rather than held in
memory without bound. Each read is committed with the raw offset it reached, so an agent that
restarts resumes exactly where the last committed record ended.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from tentacle_manager.agent.workspace.output_log import OutputLogWriter
from tentacle_manager.contracts import ProcessOutputSource

READ_SIZE = 1 << 20
MAX_LINE = 16 << 20
IDLE_POLL_MAX = 0.05


class RawStream:
    def __init__(self, path: Path, source: ProcessOutputSource, offset: int, fd: int | None = None):
        self.path = path
        self.source = source
        self.offset = offset  # bytes read from the file so far
        self.carry = b""  # the start of a line whose end has not arrived yet
        self._fd = fd

    def pump(self, writer: OutputLogWriter, final: bool) -> int:
        """Convert what has arrived; returns bytes read. `final` flushes an unfinished line."""
        if self._fd is None:
            try:
                self._fd = os.open(self.path, os.O_RDONLY)
            except FileNotFoundError:
                return 0
        chunk = os.pread(self._fd, READ_SIZE, self.offset)
        self.offset += len(chunk)
        data = self.carry + chunk
        if b"\r" in data:
            held_cr = data.endswith(b"\r") and not final
            if held_cr:
                data = data[:-1]
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            if held_cr:
                data += b"\r"
        cut = data.rfind(b"\n") + 1
        complete, self.carry = data[:cut], data[cut:]
        if len(self.carry) > MAX_LINE or (final and self.carry):
            complete += self.carry.rstrip(b"\r") + b"\n"
            self.carry = b""
        writer.write_lines(self.source, complete, self.offset - len(self.carry))
        return len(chunk)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class OutputPump:
    """Keeps Output.log up to date with both raw streams while a script runs."""

    def __init__(
        self,
        writer: OutputLogWriter,
        stdout_path: Path,
        stderr_path: Path,
        fds: tuple[int, int] | tuple[None, None] = (None, None),
    ):
        """`fds` are already open descriptors of the two files (read with pread), if any."""
        position = writer.position
        self.writer = writer
        self.streams = [
            RawStream(stdout_path, ProcessOutputSource.STDOUT, position.stdout_offset, fds[0]),
            RawStream(stderr_path, ProcessOutputSource.STDERR, position.stderr_offset, fds[1]),
        ]
        self._stopped = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._follow())

    def step(self, final: bool = False) -> int:
        if self.writer.closed:
            return 0
        return sum(stream.pump(self.writer, final) for stream in self.streams)

    async def finish(self, limit: int | None = None) -> None:
        """Stop following and convert what is left (at most `limit` bytes when given)."""
        await self._stop_following()
        drained = 0
        while limit is None or drained < limit:
            read = self.step()
            drained += read
            if not read:
                break
            await asyncio.sleep(0)
        self.step(final=True)
        for stream in self.streams:
            stream.close()

    async def _stop_following(self) -> None:
        self._stopped.set()
        if self._task is not None:
            await self._task
            self._task = None

    async def _follow(self) -> None:
        interval = 0.002
        while not self._stopped.is_set():
            if self.step():
                interval = 0.002
                await asyncio.sleep(0)
                continue
            try:
                await asyncio.wait_for(self._stopped.wait(), interval)
            except TimeoutError:
                interval = min(interval * 2, IDLE_POLL_MAX)
