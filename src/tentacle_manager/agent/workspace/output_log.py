"""Output.log: a script's output as ordered, timestamped records with sequence numbers.

The file is a series of blocks, one per chunk of output the agent converted:

    ["stdout", "2026-11-23T08:00:00.123456+00:00", 120, 3, 57]\\n    <- header: source, time,
    line one\\n                                                      index of the first record,
    line two\\n                                                      record count, body bytes
    line three\\n

Every line of a body is one record (Tentacle's ProcessOutput: source, text, time); all records
of a block share its time, which is when the agent read them, as in Tentacle. A record's
sequence number is its 1-based position, so sequence numbers survive agent restarts. Lines are
stored as the script wrote them (undecodable bytes become U+FFFD when read): capturing output
costs a copy, not a per-line encoding, because scripts can write hundreds of megabytes.

One small side file, `Output.idx`, keeps reads cheap and crashes harmless:

- its 32-byte header is the commit point: record count, byte size, and how far each raw output
  file has been converted. Readers never look past it, so nothing a caller has seen can be
  lost; a restarted agent truncates anything written after it and resumes converting there;
- after the header, for every 64th record, its byte offset and its block header's offset, so
  reading "after sequence k" seeks straight to it: the last 100 records of a million-record log
  cost what they cost of a short log.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from tentacle_manager.contracts import ProcessOutput, ProcessOutputSource, utc_now

LOG_FILE = "Output.log"
INDEX_FILE = "Output.idx"
INDEX_STRIDE = 64

_SOURCE_NAMES = {
    ProcessOutputSource.STDOUT: "stdout",
    ProcessOutputSource.STDERR: "stderr",
    ProcessOutputSource.DEBUG: "debug",
}
_SOURCES_BY_NAME = {name: source for source, name in _SOURCE_NAMES.items()}
_POSITION = struct.Struct("<4q")
_ENTRY = struct.Struct("<2q")  # a record's offset, and its block header's offset


class Masker:
    """Replaces sensitive values (such as a proxy password) with ******** in every record."""

    def __init__(self, secrets: Iterable[str] = ()):
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)
        self._needles = [s.encode() for s in self._secrets]

    def __bool__(self) -> bool:
        return bool(self._secrets)

    def mask_bytes(self, data: bytes | memoryview) -> bytes:
        masked = bytes(data)
        for needle in self._needles:
            masked = masked.replace(needle, b"********")
        return masked


NO_MASKING = Masker()


@dataclass(frozen=True)
class Position:
    """The committed extent of a log and how much of each raw output stream it covers."""

    count: int = 0
    size: int = 0
    stdout_offset: int = 0
    stderr_offset: int = 0


SMALL_BLOCK = 4096
LAST_LINE_LIMIT = 1024


def line_ends(body: bytes | bytearray | memoryview) -> np.ndarray:
    """Byte offset of each `\\n` in `body`: line i starts after ends[i - 1] (line 0 at 0)."""
    return np.flatnonzero(np.frombuffer(body, dtype=np.uint8) == 0x0A)


class OutputLogWriter:
    """Appends blocks and advances the commit point. One writer per workspace at a time."""

    def __init__(self, directory: Path, masker: Masker = NO_MASKING):
        self.directory = directory
        self.masker = masker
        self.position = _recover(directory)
        self._log = os.open(directory / LOG_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._index = os.open(directory / INDEX_FILE, os.O_WRONLY | os.O_CREAT, 0o600)
        self._closed = False
        self.last_line = ""  # the script's latest line, for the manager's scripts table

    @property
    def closed(self) -> bool:
        return self._closed

    def write_text(self, source: ProcessOutputSource, text: str) -> None:
        """A record written by the agent itself (debug lines, mutex messages)."""
        self._commit(source, text.encode("utf-8") + b"\n", None, 0)

    def write_lines(
        self,
        source: ProcessOutputSource,
        data: bytes | bytearray,
        raw_offset: int,
        end: int | None = None,
    ) -> None:
        """Complete `\\n`-terminated lines (`data[:end]`) from a raw stream, committed with the
        stream's new offset. No copy is made unless a secret has to be masked."""
        end = len(data) if end is None else end
        if end:
            self._commit(source, memoryview(data)[:end], source, raw_offset)

    def read(self, after: int) -> tuple[list[ProcessOutput], int]:
        return read_records(self.directory, after, self.position)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            os.close(self._log)
            os.close(self._index)

    def _commit(
        self,
        source: ProcessOutputSource,
        body: bytes | memoryview,
        raw_source: ProcessOutputSource | None,
        raw_offset: int,
    ) -> None:
        if self._closed:
            return
        body = self.masker.mask_bytes(body) if self.masker else body
        position = self.position
        # Big blocks need their line ends for the index anyway; small ones (the agent's own
        # lines, a quiet script's output) are counted without numpy, which costs more there.
        ends = line_ends(body) if len(body) > SMALL_BLOCK else None
        count = len(ends) if ends is not None else bytes(body).count(b"\n")
        header = _header(source, position.count, count, len(body))
        try:
            _write_all(self._log, (header, body))
        except OSError:
            os.ftruncate(self._log, position.size)  # no torn block behind the commit point
            raise
        body_offset = position.size + len(header)
        first_indexed = (-position.count) % INDEX_STRIDE
        if first_indexed < count:  # only then does the block hold an index entry
            ends = line_ends(body) if ends is None else ends
            indexed = np.arange(first_indexed, count, INDEX_STRIDE)
            entries = np.empty((len(indexed), 2), dtype="<i8")
            entries[:, 0] = np.where(indexed > 0, ends[indexed - 1] + 1, 0) + body_offset
            entries[:, 1] = position.size
            os.pwrite(self._index, entries.tobytes(), _entry_offset(_entry_count(position.count)))
        self.position = Position(
            position.count + count,
            body_offset + len(body),
            raw_offset if raw_source is ProcessOutputSource.STDOUT else position.stdout_offset,
            raw_offset if raw_source is ProcessOutputSource.STDERR else position.stderr_offset,
        )
        packed = _POSITION.pack(
            self.position.count,
            self.position.size,
            self.position.stdout_offset,
            self.position.stderr_offset,
        )
        os.pwrite(self._index, packed, 0)
        if source is not ProcessOutputSource.DEBUG and count:
            self.last_line = _last_line(body)


def _last_line(body: bytes | memoryview) -> str:
    """The last line of a block, read from its end only (a block can be megabytes)."""
    tail = bytes(body[-LAST_LINE_LIMIT:]).rstrip(b"\n")
    return tail[tail.rfind(b"\n") + 1 :].decode("utf-8", "replace")


def _header(source: ProcessOutputSource, first: int, count: int, size: int) -> bytes:
    """The JSON array `[source, time, first, count, bytes]`, formatted directly: the source
    names and an ISO time need no escaping, and this runs for every block."""
    return (
        f'["{_SOURCE_NAMES[source]}","{utc_now().isoformat()}",{first},{count},{size}]\n'.encode()
    )


@dataclass
class _Block:
    source: ProcessOutputSource
    occurred: datetime
    end: int  # where the block's body ends, in the buffer being read


def read_records(
    directory: Path, after: int, position: Position | None = None
) -> tuple[list[ProcessOutput], int]:
    """Records with sequence > `after`, and the next sequence to ask for (Tentacle semantics)."""
    if position is None:
        position = read_position(directory)
    after = max(after, 0)
    if after >= position.count:
        return [], max(after, position.count)
    entry = after // INDEX_STRIDE
    with open(directory / INDEX_FILE, "rb") as index:
        index.seek(_entry_offset(entry))
        record_offset, header_offset = _ENTRY.unpack(index.read(_ENTRY.size))
    with open(directory / LOG_FILE, "rb") as log:
        log.seek(header_offset)
        data = log.read(position.size - header_offset)
    return _parse(data, record_offset - header_offset, entry * INDEX_STRIDE, after, position.count)


def _parse(
    data: bytes, start: int, first: int, after: int, count: int
) -> tuple[list[ProcessOutput], int]:
    """Walk the records from `start` (record index `first`) to the commit point."""
    records: list[ProcessOutput] = []
    block: _Block | None = None
    pos, sequence = start, first
    try:
        block = _read_header(data, 0)
        while sequence < count:
            if pos >= block.end:
                block = _read_header(data, pos)
                pos = data.index(b"\n", pos) + 1
            line_end = data.index(b"\n", pos, block.end)
            if sequence >= after:
                text = data[pos:line_end].decode("utf-8", "replace")
                records.append(
                    ProcessOutput.model_construct(
                        source=block.source, text=text, occurred=block.occurred
                    )
                )
            pos = line_end + 1
            sequence += 1
    except (ValueError, KeyError, TypeError, IndexError):
        records.append(
            ProcessOutput.model_construct(
                source=ProcessOutputSource.STDERR,
                text=f"Corrupt Tentacle log at line {sequence + 1}, no more logs will be read",
                occurred=block.occurred if block else utc_now(),
            )
        )
    return records, count


def _read_header(data: bytes, at: int) -> _Block:
    newline = data.index(b"\n", at)
    name, occurred, _first, _count, size = json.loads(data[at:newline])
    return _Block(_SOURCES_BY_NAME[name], datetime.fromisoformat(occurred), newline + 1 + size)


def read_position(directory: Path) -> Position:
    try:
        with open(directory / INDEX_FILE, "rb") as handle:
            data = handle.read(_POSITION.size)
    except FileNotFoundError:
        return Position()
    if len(data) < _POSITION.size:
        return Position()
    return Position(*_POSITION.unpack(data))


def _recover(directory: Path) -> Position:
    """Cut the log and index back to the commit point (anything after it was never served)."""
    position = read_position(directory)
    log_path, index_path = directory / LOG_FILE, directory / INDEX_FILE
    if log_path.exists() and log_path.stat().st_size > position.size:
        os.truncate(log_path, position.size)
    end = _entry_offset(_entry_count(position.count))
    if index_path.exists() and index_path.stat().st_size > end:
        os.truncate(index_path, end)
    return position


def _entry_count(records: int) -> int:
    return -(-records // INDEX_STRIDE)


def _entry_offset(entry: int) -> int:
    return _POSITION.size + entry * _ENTRY.size


def _write_all(fd: int, parts: tuple[bytes | memoryview, ...]) -> None:
    size = sum(len(part) for part in parts)
    written = os.writev(fd, parts)
    if written < size:  # a short write (full disk, signal): finish it piece by piece
        view = memoryview(b"".join(parts))[written:]
        while view:
            view = view[os.write(fd, view) :]
