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
MAX_LINE = 16 << 20  # a power-of-two multiple of READ_SIZE
IDLE_POLL_MAX = 0.05


class RawStream:
    def __init__(self, path: Path, source: ProcessOutputSource, offset: int, fd: int | None = None):
        self.path = path
        self.source = source
        self.offset = offset  # raw bytes converted so far; always at a line boundary
        self._fd = fd

    def pump(self, writer: OutputLogWriter, final: bool) -> int:
        """Convert the complete lines that have arrived; returns the raw bytes consumed.

        Reading always starts at the last line boundary, so an unfinished line is simply read
        again next time instead of being carried in memory. `final` also takes an unfinished
        last line; a line longer than MAX_LINE is cut.
        """
        if self._fd is None:
            try:
                self._fd = os.open(self.path, os.O_RDONLY)
            except FileNotFoundError:
                return 0
        size = READ_SIZE
        while True:
            chunk = os.pread(self._fd, size, self.offset)
            end = _after_last_line(chunk, final)
            if end or len(chunk) < size or size >= MAX_LINE:
                break
            size *= 2  # a single line longer than the read so far
        if not end:
            if not chunk or not (final or len(chunk) >= MAX_LINE):
                return 0
            end = len(chunk)
            chunk = chunk.rstrip(b"\r") + b"\n"
            body_end = len(chunk)
        elif b"\r" in chunk:
            chunk = chunk[:end].replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            body_end = len(chunk)
        else:
            body_end = end
        self.offset += end
        writer.write_lines(self.source, chunk, self.offset, body_end)
        return end

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _after_last_line(chunk: bytes, final: bool) -> int:
    """Where the last complete line ends (after its \\n, \\r\\n or \\r); 0 if none does.

    A \\r at the very end may be the first half of \\r\\n, so it only counts when `final`.
    """
    newline = chunk.rfind(b"\n")
    search_end = len(chunk) if final or not chunk.endswith(b"\r") else len(chunk) - 1
    carriage = chunk.rfind(b"\r", 0, search_end)
    return max(newline, carriage) + 1


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
