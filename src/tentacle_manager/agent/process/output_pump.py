"""Tailing a script's raw stdout/stderr files into Output.log records.

Lines are split at \\n, \\r\\n or \\r (as Tentacle does), a final line without a newline is still
delivered at the end, and a line longer than MAX_LINE is cut into pieces rather than held in
memory without bound. Each read is committed with the raw offset it reached, so an agent that
restarts resumes exactly where the last committed record ended.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

from tentacle_manager.agent.workspace.output_log import OutputLogWriter
from tentacle_manager.contracts import ProcessOutputSource

log = logging.getLogger(__name__)

FIRST_READ_SIZE = 16 << 10
READ_SIZE = 1 << 20  # what a busy stream grows to
MAX_LINE = 16 << 20  # a power-of-two multiple of the read sizes
IDLE_POLL_MAX = 0.05


def _punch_hole() -> Callable[[int, int, int], None]:
    """Linux's fallocate(PUNCH_HOLE), or a no-op where there is none."""
    if not sys.platform.startswith("linux"):
        return lambda fd, offset, length: None
    libc = ctypes.CDLL(None, use_errno=True)
    libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong]
    keep_size_and_punch = 0x01 | 0x02  # FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE

    def punch(fd: int, offset: int, length: int) -> None:
        libc.fallocate(fd, keep_size_and_punch, offset, length)  # failure only costs disk

    return punch


release_converted = _punch_hole()
"""Drop raw bytes that are already in Output.log: the kernel discards their dirty pages instead
of writing them to disk, so capturing output writes it once, not twice. Nothing reads a raw file
below its converted offset again (recovery resumes from the offset in the commit point)."""


class RawStream:
    def __init__(self, path: Path, source: ProcessOutputSource, offset: int, fd: int | None = None):
        self.path = path
        self.source = source
        self.offset = offset  # raw bytes converted so far; always at a line boundary
        self._fd = fd
        self._buffer = bytearray()  # reused between reads: no allocation per megabyte
        # Quiet streams keep a small buffer: 200 scripts with a megabyte each would cost the
        # agent 400 MB, since the allocator hands out memory it has already touched.
        self._read_size = FIRST_READ_SIZE
        self._cut = False  # the last line was cut at MAX_LINE: its terminator is still to come

    def pump(self, writer: OutputLogWriter, final: bool) -> int:
        """Convert the complete lines that have arrived; returns the raw bytes consumed.

        Reading always starts at the last line boundary, so an unfinished line is simply read
        again next time instead of being carried in memory. `final` also takes an unfinished
        last line; a line longer than MAX_LINE is cut.
        """
        if self._fd is None:
            try:  # writable, so converted ranges can be punched out (see release_converted)
                self._fd = os.open(self.path, os.O_RDWR)
            except FileNotFoundError:
                return 0
        size = self._read_size
        while True:
            if len(self._buffer) < size:
                self._buffer = bytearray(size)
            data = self._buffer
            read = os.preadv(self._fd, [memoryview(data)[:size]], self.offset)
            if read == size and self._read_size < READ_SIZE:
                self._read_size *= 2  # a busy stream: read more at once
            if self._cut and read:
                # the terminator of a line cut at MAX_LINE ends that line, not an empty one
                self._cut = False
                skip = 2 if data.startswith(b"\r\n", 0, read) else int(data[0] in b"\r\n")
                if skip:
                    self.offset += skip
                    return skip
            end = _after_last_line(data, read, final)
            if end or read < size or size >= MAX_LINE:
                break
            size *= 2  # a single line longer than the read so far
        body: bytes | bytearray = data
        if not end:
            if not read or not (final or read >= MAX_LINE):
                return 0
            end = read
            body = bytes(data[:read]).rstrip(b"\r") + b"\n"
            self._cut = not final
        elif data.find(b"\r", 0, end) != -1:
            body = bytes(data[:end]).replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        converted_from = self.offset
        self.offset += end
        writer.write_lines(self.source, body, self.offset, end if body is data else len(body))
        release_converted(self._fd, converted_from, end)
        return end

    def size(self) -> int:
        """How much the script has written so far."""
        try:
            return os.fstat(self._fd).st_size if self._fd is not None else self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _after_last_line(data: bytearray, size: int, final: bool) -> int:
    """Where the last complete line in `data[:size]` ends (after its \\n, \\r\\n or \\r); 0 if
    none does. A \\r at the very end may be the first half of \\r\\n: it counts only if `final`.
    """
    newline = data.rfind(b"\n", 0, size)
    search_end = size if final or not data.endswith(b"\r", 0, size) else size - 1
    carriage = data.rfind(b"\r", 0, search_end)
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
        """Stop following and convert what is there now (at most `limit` bytes when given).

        Bounded by the sizes when it starts: a process that keeps writing after the script
        ended (one that could not be killed) cannot keep the script from completing.
        """
        await self._stop_following()
        sizes = [stream.size() for stream in self.streams]
        drained = 0
        while limit is None or drained < limit:
            if all(s.offset >= size for s, size in zip(self.streams, sizes, strict=True)):
                break
            read = self.step()
            drained += read
            if not read:
                break
            await asyncio.sleep(0)
        self.step(final=True)
        self.close()

    def close(self) -> None:
        """Stop following at once and let go of the files (agent shutdown, errors)."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
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
            try:
                moved = self.step()
            except OSError as error:  # a full disk: keep the raw output, try again later
                log.warning(
                    "Could not convert script output in %s: %s", self.writer.directory, error
                )
                moved, interval = 0, IDLE_POLL_MAX
            if moved:
                interval = 0.002
                await asyncio.sleep(0)
                continue
            try:
                await asyncio.wait_for(self._stopped.wait(), interval)
            except TimeoutError:
                interval = min(interval * 2, IDLE_POLL_MAX)
