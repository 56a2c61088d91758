"""Where every line of a log file starts, found chunk by chunk without holding the file.

The log viewer's item model asks how many lines there are and for lines i..j, and its filters
ask for blocks of whole lines. A 1 GB log has some seven million lines: reading it whole would
stall the GUI for seconds and cost a gigabyte. So `update` scans the file in chunks of 16 MB,
two at a time in executor threads, finds each chunk's newlines with numpy and keeps only their
offsets: eight bytes a line, in fixed-size blocks that never move, so growing never copies the
array. The first chunk is small, so the first screen can be shown at once while the rest is
still being indexed, and the view can follow the progress reported after every chunk.

A scan reads its chunk a megabyte at a time rather than memory-mapping it: touching a mapped
page of a file that another process has truncated (copytruncate rotation) raises SIGBUS, which
kills the whole GUI, while a read merely returns fewer bytes. The scan costs about the same.

Follow mode is calling `update` again: the index extends from where it stopped. A file that
shrank, was replaced by another (rotation: a new inode), or whose last indexed bytes changed is
indexed again from the start. The file is opened only for each read, never held open, so the
agent can rename it to roll it over, even on Windows.

A line ends at "\n"; a "\r" just before it is part of the line ending (CRLF), and a lone "\r"
ends no line, as for `wc -l` and grep. The last line needs no newline. Bytes that are not
UTF-8 are shown as U+FFFD, never raised.
"""

from __future__ import annotations

import asyncio
import bisect
import os
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from enum import Enum
from itertools import islice, pairwise
from pathlib import Path
from typing import BinaryIO

import numpy as np

FIRST_CHUNK_BYTES = 1 << 20  # small, so that the first screen is there at once
CHUNK_BYTES = 16 << 20  # indexed per executor call, between two progress reports
READ_BYTES = 1 << 20  # read at a time by a scan
SCANNERS = 2  # chunks scanned at once: numpy lets go of the GIL, so two cores take half the time
_BLOCK_ENTRIES = 1 << 20  # line ends per storage block (8 MB)
_TAIL_BYTES = 64  # the last indexed bytes, kept to notice a file rewritten in place
_NEWLINE = ord("\n")


class FileChange(Enum):
    """What `update` found since it last looked."""

    UNCHANGED = "unchanged"
    GREW = "grew"  # new bytes at the end were indexed
    REPLACED = "replaced"  # shrank, rotated or rewritten: indexed again from the start


@dataclass(frozen=True)
class Extent:
    """How far the index reaches: one consistent snapshot, also given as progress."""

    lines: int  # including a last line that has no newline yet
    complete_lines: int  # lines that end with a newline
    indexed_bytes: int
    file_bytes: int  # the file's size when `update` last looked

    @property
    def done(self) -> bool:
        return self.indexed_bytes >= self.file_bytes

    @property
    def fraction(self) -> float:
        return 1.0 if self.done else self.indexed_bytes / self.file_bytes


@dataclass(frozen=True)
class LineBlock:
    """Consecutive whole lines read into a caller's buffer, for a filter to search at once."""

    first_line: int
    data: bytearray  # bytes [0, size) hold the lines; the rest of the buffer is stale
    bounds: np.ndarray  # line first_line + k is data[bounds[k]:bounds[k + 1]], newline included

    @property
    def line_count(self) -> int:
        return len(self.bounds) - 1

    @property
    def size(self) -> int:
        return int(self.bounds[-1])

    def array(self) -> np.ndarray:
        return np.frombuffer(self.data, dtype=np.uint8, count=self.size)

    def text(self) -> str:
        return str(memoryview(self.data)[: self.size], "utf-8", "replace")


class _LineEnds:
    """The offset after every newline, appended in fixed-size blocks that never move.

    One writer appends; readers look only below a count they were given, whose entries were
    written before that count was published, so they need no lock. A new block instead of a
    bigger copy keeps the peak memory at the size of the offsets themselves.
    """

    def __init__(self) -> None:
        self._blocks: list[np.ndarray] = []
        self._count = 0

    def append(self, values: np.ndarray) -> None:
        done = 0
        while done < len(values):
            block, used = divmod(self._count, _BLOCK_ENTRIES)
            if block == len(self._blocks):
                self._blocks.append(np.empty(_BLOCK_ENTRIES, dtype=np.int64))
            take = min(_BLOCK_ENTRIES - used, len(values) - done)
            self._blocks[block][used : used + take] = values[done : done + take]
            self._count += take
            done += take

    def values(self, start: int, stop: int) -> np.ndarray:
        """Entries start..stop-1: a view when they lie in one block."""
        pieces = []
        while start < stop:
            block, used = divmod(start, _BLOCK_ENTRIES)
            take = min(_BLOCK_ENTRIES - used, stop - start)
            pieces.append(self._blocks[block][used : used + take])
            start += take
        if len(pieces) == 1:
            return pieces[0]
        return np.concatenate(pieces) if pieces else np.empty(0, dtype=np.int64)

    def count_at_most(self, offset: int, count: int) -> int:
        """How many of the first `count` entries are <= offset (they are ascending)."""
        blocks = -(-count // _BLOCK_ENTRIES)
        block = bisect.bisect_right(self._blocks, offset, hi=blocks, key=lambda b: int(b[0])) - 1
        if block < 0:
            return 0
        valid = min(_BLOCK_ENTRIES, count - block * _BLOCK_ENTRIES)
        inside = np.searchsorted(self._blocks[block][:valid], offset, side="right")
        return block * _BLOCK_ENTRIES + int(inside)


@dataclass(frozen=True)
class _Scan:
    """The newlines of one chunk, found in a worker thread, published in the file's order."""

    start: int
    stop: int
    size: int  # bytes read: fewer than stop - start when the file was truncated meanwhile
    ends: np.ndarray  # the offset after each newline
    tail: bytes  # the chunk's last bytes

    @property
    def whole(self) -> bool:
        return self.size == self.stop - self.start


@dataclass(frozen=True)
class _State:
    """Everything a reader needs, swapped in whole so that it never sees half an update."""

    ends: _LineEnds
    extent: Extent
    last_end: int  # offset after the last newline (0 when there is none)
    identity: tuple[int, int] | None  # (device, inode) of the file indexed
    tail: bytes

    @classmethod
    def empty(cls, identity: tuple[int, int] | None, file_bytes: int) -> _State:
        return cls(_LineEnds(), Extent(0, 0, 0, file_bytes), 0, identity, b"")

    def advanced(self, scan: _Scan) -> _State:
        """The state once `scan` is indexed (its ends appended to the store)."""
        last_end = int(scan.ends[-1]) if len(scan.ends) else self.last_end
        indexed = self.extent.indexed_bytes + scan.size
        complete = self.extent.complete_lines + len(scan.ends)
        lines = complete + (indexed > last_end)
        extent = Extent(lines, complete, indexed, self.extent.file_bytes)
        tail = (self.tail + scan.tail)[-_TAIL_BYTES:]
        return replace(self, extent=extent, last_end=last_end, tail=tail)

    def boundaries(self, first: int, stop: int) -> np.ndarray:
        lines, complete = self.extent.lines, self.extent.complete_lines
        first = min(max(first, 0), lines)
        stop = min(max(stop, first), lines)
        pieces = [np.zeros(1, dtype=np.int64)] if first == 0 else []
        pieces.append(self.ends.values(max(first, 1) - 1, min(stop, complete)))
        if stop > complete:
            pieces.append(np.array([self.extent.indexed_bytes], dtype=np.int64))
        return np.concatenate(pieces)

    def lines_ending_by(self, offset: int) -> int:
        """How many lines end (newline included) at or before `offset`."""
        extent = self.extent
        ended = self.ends.count_at_most(offset, extent.complete_lines)
        if ended == extent.complete_lines < extent.lines and extent.indexed_bytes <= offset:
            ended += 1  # the last line, which has no newline yet
        return ended


class LogIndex:
    """The line index of one log file; `update` builds and extends it, the rest only reads."""

    def __init__(
        self,
        path: Path | str,
        *,
        chunk_bytes: int = CHUNK_BYTES,
        first_chunk_bytes: int = FIRST_CHUNK_BYTES,
    ) -> None:
        self.path = Path(path)
        self._chunk_bytes = chunk_bytes
        self._first_chunk_bytes = first_chunk_bytes
        self._state = _State.empty(None, 0)
        self._updating = asyncio.Lock()

    @property
    def extent(self) -> Extent:
        return self._state.extent

    @property
    def line_count(self) -> int:
        return self._state.extent.lines

    async def update(self, progress: Callable[[Extent], None] | None = None) -> FileChange:
        """Index what the file holds beyond the index, in chunks scanned in the executor.

        `progress` is called on the event loop after every chunk, so a view can show the lines
        indexed so far. Raises FileNotFoundError while the file does not exist (the index keeps
        what it had). Concurrent calls run one after the other.
        """
        loop = asyncio.get_running_loop()
        async with self._updating:
            change = await loop.run_in_executor(None, self._examine)
            state = self._state
            chunks = self._chunks(state.extent.indexed_bytes, state.extent.file_bytes)

            def scan(chunk: tuple[int, int]) -> asyncio.Future[_Scan | None]:
                return loop.run_in_executor(None, _scan, self.path, state.identity, *chunk)

            scans = deque(scan(chunk) for chunk in islice(chunks, SCANNERS))
            try:
                while scans and self._publish(await scans.popleft()):
                    if progress is not None:
                        progress(self._state.extent)
                    scans.extend(scan(chunk) for chunk in islice(chunks, 1))
            finally:
                for pending in scans:
                    pending.cancel()
        return change

    def boundaries(self, first: int, stop: int) -> np.ndarray:
        """Where lines first..stop-1 start, then where the last of them ends (newline included).

        The range is clamped to the lines indexed; the answer has stop - first + 1 offsets.
        """
        return self._state.boundaries(first, stop)

    def lines(self, first: int, stop: int, *, max_bytes: int | None = None) -> list[str]:
        """The text of lines first..stop-1, without line endings, read by their offsets.

        `max_bytes` cuts each line to that many bytes, which a view wants: a single line can be
        a gigabyte.
        """
        spans = list(pairwise(self.boundaries(first, stop).tolist()))
        try:
            with open(self.path, "rb") as file:
                return [_read_line(file, begin, end, max_bytes) for begin, end in spans]
        except FileNotFoundError:
            return [""] * len(spans)  # rotated away: blank until `update` says REPLACED

    def lines_at(self, numbers: list[int], *, max_bytes: int | None = None) -> list[str]:
        """The text of the lines `numbers` (any order, each indexed), read with one open: the
        rows a filtered view shows are scattered over the file."""
        state = self._state
        spans = [state.boundaries(line, line + 1).tolist() for line in numbers]
        spans = [span if len(span) == 2 else [0, 0] for span in spans]  # not indexed: blank
        try:
            with open(self.path, "rb") as file:
                return [_read_line(file, begin, end, max_bytes) for begin, end in spans]
        except FileNotFoundError:
            return [""] * len(spans)

    def read_block(self, first: int, stop: int, buffer: bytearray) -> LineBlock:
        """Lines from `first` (before `stop`) that fit in `buffer`: at least one, cut to the
        buffer's size if it alone is longer. Blocking: run it in an executor."""
        state = self._state
        first = min(max(first, 0), state.extent.lines)
        start = int(state.boundaries(first, first)[0])
        fitting = max(state.lines_ending_by(start + len(buffer)), first + 1)
        bounds = state.boundaries(first, min(fitting, stop)) - start
        try:
            with open(self.path, "rb", buffering=0) as file:
                file.seek(start)
                got = file.readinto(memoryview(buffer)[: min(int(bounds[-1]), len(buffer))])
        except FileNotFoundError:
            return LineBlock(first, buffer, np.zeros(1, dtype=np.int64))  # rotated away
        return LineBlock(first, buffer, np.minimum(bounds, got or 0))

    def _examine(self) -> FileChange:
        """Look at the file; start again from scratch if it is no longer the file indexed."""
        status = os.stat(self.path)
        state = self._state
        identity = (status.st_dev, status.st_ino)
        indexed = state.extent.indexed_bytes
        if state.identity is not None and (
            identity != state.identity or status.st_size < indexed or not self._tail_intact(state)
        ):
            self._state = _State.empty(identity, status.st_size)
            return FileChange.REPLACED
        extent = replace(state.extent, file_bytes=status.st_size)
        self._state = replace(state, identity=identity, extent=extent)
        return FileChange.GREW if status.st_size > indexed else FileChange.UNCHANGED

    def _tail_intact(self, state: _State) -> bool:
        with open(self.path, "rb") as file:
            file.seek(state.extent.indexed_bytes - len(state.tail))
            return file.read(len(state.tail)) == state.tail

    def _chunks(self, start: int, end: int) -> Iterator[tuple[int, int]]:
        """The chunks from `start` to `end`; the first of a file is small, for the first screen."""
        while start < end:
            stop = min(end, start + (self._first_chunk_bytes if start == 0 else self._chunk_bytes))
            yield start, stop
            start = stop

    def _publish(self, scan: _Scan | None) -> bool:
        """Add a chunk's lines to the index; False when the file changed under the scan (the
        next update notices and starts again)."""
        if scan is None:
            return False
        self._state.ends.append(scan.ends)
        self._state = self._state.advanced(scan)
        return scan.whole


def _scan(path: Path, identity: tuple[int, int] | None, start: int, stop: int) -> _Scan | None:
    """Find the newlines in bytes start..stop of the file; None if it is gone or another file.

    It reads READ_BYTES at a time, so that the bytes read are still in the CPU's cache when
    numpy looks for their newlines: a third faster than one big read.
    """
    buffer = np.empty(min(READ_BYTES, stop - start), dtype=np.uint8)
    found: list[np.ndarray] = []
    position = start
    tail = b""
    try:
        with open(path, "rb", buffering=0) as file:
            status = os.fstat(file.fileno())
            if (status.st_dev, status.st_ino) != identity:
                return None
            file.seek(start)
            while position < stop and (got := file.readinto(buffer[: stop - position])):
                ends = np.flatnonzero(buffer[:got] == _NEWLINE)
                ends += position + 1
                found.append(ends)
                tail = (tail + buffer[max(0, got - _TAIL_BYTES) : got].tobytes())[-_TAIL_BYTES:]
                position += got
    except FileNotFoundError:
        return None  # rotated away
    ends = np.concatenate(found) if found else np.empty(0, dtype=np.int64)
    return _Scan(start, stop, position - start, ends, tail)


def _read_line(file: BinaryIO, begin: int, end: int, max_bytes: int | None) -> str:
    """A line's text: read at its offset, cut to max_bytes, without its "\n" or "\r\n", and
    with bytes that are not UTF-8 replaced."""
    file.seek(begin)
    raw = file.read(end - begin if max_bytes is None else min(end - begin, max_bytes))
    if raw.endswith(b"\n"):
        raw = raw[:-1]
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    return raw.decode("utf-8", "replace")
