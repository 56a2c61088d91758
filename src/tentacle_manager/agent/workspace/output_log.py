"""Output.log: a script's output as ordered, timestamped records with sequence numbers.

Each record is a JSON array `["stdout"|"stderr"|"debug", "<text>", "<ISO-8601 time>"]` on its own
line, which Tentacle's multi-content reader also accepts. A record's sequence number is its
1-based position in the file, so sequence numbers survive agent restarts.

One small side file, `Output.idx`, keeps reads cheap and crashes harmless:

- its 32-byte header is the commit point: record count, byte size, and how far each raw output
  file has been converted. Readers never look past it, so nothing a caller has seen can be
  lost; a restarted agent truncates anything written after it and resumes converting there;
- after the header, the byte offset of every 64th record, so reading "after sequence k" seeks
  straight to it: the last 100 records of a million-record log cost what they cost of a short
  log.

Encoding is done a chunk at a time with C-speed byte operations (no per-line Python in the
common case) because scripts can write hundreds of megabytes.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from json.encoder import encode_basestring  # type: ignore[attr-defined]
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
_OFFSET = struct.Struct("<q")
_SINGLE_START = np.zeros(1, dtype=np.int64)


class Masker:
    """Replaces sensitive values (such as a proxy password) with ******** in every record."""

    def __init__(self, secrets: Iterable[str] = ()):
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)
        self._needles = [s.encode() for s in self._secrets]

    def __bool__(self) -> bool:
        return bool(self._secrets)

    def touches(self, data: bytes) -> bool:
        return any(needle in data for needle in self._needles)

    def mask(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "********")
        return text


NO_MASKING = Masker()


@dataclass(frozen=True)
class Position:
    """The committed extent of a log and how much of each raw output stream it covers."""

    count: int = 0
    size: int = 0
    stdout_offset: int = 0
    stderr_offset: int = 0

    def raw_offset(self, source: ProcessOutputSource) -> int:
        return self.stderr_offset if source is ProcessOutputSource.STDERR else self.stdout_offset


def _stamp(when: datetime | None = None) -> str:
    return (when or utc_now()).isoformat()


@dataclass(frozen=True)
class Encoded:
    """Records ready to append: the buffers to write, their total size, each record's start."""

    parts: tuple[bytes, ...]
    size: int
    starts: np.ndarray


def encode_lines(
    source: ProcessOutputSource,
    data: bytes,
    when: datetime | None = None,
    masker: Masker = NO_MASKING,
    end: int | None = None,
) -> Encoded:
    """Turn the complete `\\n`-terminated lines in `data[:end]` into records.

    Bytes after `end` (the start of an unfinished line, which holds no newline) are ignored;
    taking `end` instead of a slice saves a copy of every chunk. Undecodable bytes become
    U+FFFD.
    """
    end = len(data) if end is None else end
    stamp = _stamp(when)
    prefix = f'["{_SOURCE_NAMES[source]}",'
    suffix = f',"{stamp}"]\n'
    scanned = np.frombuffer(data, dtype=np.uint8, count=end)
    ends = np.flatnonzero(scanned == 0x0A)
    if _copyable(data, end, scanned, len(ends), masker):
        # Nothing to escape: the lines go into the records as they are, and the records'
        # positions follow from the lines' positions, so the larger output is never scanned.
        opening, closing = (prefix + '"').encode(), ('"' + suffix).encode()
        replaced = data.replace(b"\n", closing + opening)
        joined = memoryview(replaced)[: len(replaced) - len(opening) - (len(data) - end)]
        starts = _starts(ends)
        starts += np.arange(len(starts), dtype=np.int64) * (len(opening) + len(closing) - 1)
        return Encoded((opening, joined), len(opening) + len(joined), starts)
    text = data[:end].decode("utf-8", "replace")[:-1]
    if masker:
        text = masker.mask(text)
    encoded = map(encode_basestring, text.split("\n"))
    records = (prefix + (suffix + prefix).join(encoded) + suffix).encode("utf-8")
    return Encoded((records,), len(records), line_starts(records))


def _copyable(data: bytes, end: int, scanned: np.ndarray, newlines: int, masker: Masker) -> bool:
    """True when no byte needs JSON escaping, no secret needs masking, and it is valid UTF-8.

    The cheap checks look at all of `data`, the unfinished tail too, which can only send a
    chunk to the (correct, slower) escaping path.
    """
    if b'"' in data or b"\\" in data or b"\x7f" in data:
        return False
    if np.count_nonzero(scanned < 0x20) != newlines:  # a control character other than \n
        return False
    if masker and masker.touches(data):
        return False
    if data.isascii():
        return True
    try:
        str(memoryview(data)[:end], "utf-8")
    except UnicodeDecodeError:
        return False
    return True


def line_starts(data: bytes) -> np.ndarray:
    """Byte offset of each `\\n`-terminated line (or record: records hold no raw newline)."""
    return _starts(np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 0x0A))


def _starts(ends: np.ndarray) -> np.ndarray:
    starts = np.empty(len(ends), dtype=np.int64)
    if len(ends):
        starts[0] = 0
        starts[1:] = ends[:-1] + 1
    return starts


class OutputLogWriter:
    """Appends records and advances the commit point. One writer per workspace at a time."""

    def __init__(self, directory: Path, masker: Masker = NO_MASKING):
        self.directory = directory
        self.masker = masker
        self.position = _recover(directory)
        self._log = os.open(directory / LOG_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._index = os.open(directory / INDEX_FILE, os.O_WRONLY | os.O_CREAT, 0o600)
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def write_text(self, source: ProcessOutputSource, text: str) -> None:
        """One record written by the agent itself (debug lines, mutex messages)."""
        text = self.masker.mask(text) if self.masker else text
        record = f'["{_SOURCE_NAMES[source]}",{encode_basestring(text)},"{_stamp()}"]\n'.encode()
        self._commit(Encoded((record,), len(record), _SINGLE_START), None, 0)

    def write_lines(
        self, source: ProcessOutputSource, data: bytes, raw_offset: int, end: int | None = None
    ) -> None:
        """Complete lines (`data[:end]`) from a raw stream, committed with its new offset."""
        end = len(data) if end is None else end
        if end:
            encoded = encode_lines(source, data, masker=self.masker, end=end)
            self._commit(encoded, source, raw_offset)

    def read(self, after: int) -> tuple[list[ProcessOutput], int]:
        return read_records(self.directory, after, self.position)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            os.close(self._log)
            os.close(self._index)

    def _commit(
        self, records: Encoded, source: ProcessOutputSource | None, raw_offset: int
    ) -> None:
        if self._closed:
            return
        position = self.position
        starts = records.starts
        _write_parts(self._log, records.parts, records.size)
        first = (-position.count) % INDEX_STRIDE
        entries = (starts[first::INDEX_STRIDE] + position.size).astype("<i8")
        if len(entries):
            os.pwrite(self._index, entries.tobytes(), _entry_offset(_entry_count(position.count)))
        stdout_offset, stderr_offset = position.stdout_offset, position.stderr_offset
        if source is ProcessOutputSource.STDOUT:
            stdout_offset = raw_offset
        elif source is ProcessOutputSource.STDERR:
            stderr_offset = raw_offset
        self.position = Position(
            position.count + len(starts), position.size + records.size, stdout_offset, stderr_offset
        )
        os.pwrite(self._index, _POSITION.pack(*_astuple(self.position)), 0)


def read_records(
    directory: Path, after: int, position: Position | None = None
) -> tuple[list[ProcessOutput], int]:
    """Records with sequence > `after`, and the next sequence to ask for (Tentacle semantics)."""
    if position is None:
        position = read_position(directory)
    after = max(after, 0)
    if after >= position.count:
        return [], max(after, position.count)
    block, skip = divmod(after, INDEX_STRIDE)
    with open(directory / INDEX_FILE, "rb") as index:
        index.seek(_entry_offset(block))
        (start,) = _OFFSET.unpack(index.read(_OFFSET.size))
    with open(directory / LOG_FILE, "rb") as log:
        log.seek(start)
        data = log.read(position.size - start)
    lines = data.split(b"\n")[skip : position.count - block * INDEX_STRIDE]
    records: list[ProcessOutput] = []
    last_time = None
    for number, line in enumerate(lines, start=after + 1):
        try:
            name, text, occurred = json.loads(line)
            last_time = datetime.fromisoformat(occurred)
            records.append(
                ProcessOutput.model_construct(
                    source=_SOURCES_BY_NAME[name], text=text, occurred=last_time
                )
            )
        except (ValueError, KeyError, TypeError):
            records.append(
                ProcessOutput.model_construct(
                    source=ProcessOutputSource.STDERR,
                    text=f"Corrupt Tentacle log at line {number}, no more logs will be read",
                    occurred=last_time or utc_now(),
                )
            )
            break
    return records, position.count


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
    return _POSITION.size + entry * _OFFSET.size


def _write_parts(fd: int, parts: tuple[bytes, ...], size: int) -> None:
    written = os.writev(fd, parts)
    if written < size:  # a short write (full disk, signal): finish it piece by piece
        view = memoryview(b"".join(parts))[written:]
        while view:
            view = view[os.write(fd, view) :]


def _astuple(position: Position) -> tuple[int, int, int, int]:
    return (position.count, position.size, position.stdout_offset, position.stderr_offset)
