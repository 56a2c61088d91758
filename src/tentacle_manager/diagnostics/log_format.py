"""One line of the agent's log: `2024-05-01 10:00:00.1234  12345      1  INFO  message`.

This is Tentacle's NLog layout (`${longdate}  ${processid:padding=5}  ${threadid:padding=5}
${uppercase:${level}:padding=5}  ${message}`), which agent/host/log_files.py writes too: local
time with a four-digit fraction, pid and thread right-aligned to five, the level right-aligned
to five. A line without that header, such as a line of an exception trace, continues the
record above it.

Two readers share one rule. `parse_line` takes apart the few lines on screen; `header_levels`
classifies whole blocks of lines with numpy, so a level filter over millions of lines never
loops over them in Python. Both accept exactly the lines `_HEADER` matches.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum
from functools import cache

import numpy as np


class Level(IntEnum):
    """Tentacle's levels (Verbose is written as DEBUG), ordered by severity."""

    TRACE = 0
    DEBUG = 1
    INFO = 2
    WARN = 3
    ERROR = 4
    FATAL = 5


NO_LEVEL = -1  # in level arrays: a continuation line, or one above the first record

_HEADER = re.compile(
    r"(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)\.(\d{4})  +(\d+)  +(\d+) +"
    r"(TRACE|DEBUG|INFO|WARN|ERROR|FATAL)  ",
    re.ASCII,
)

# The header when pid and thread fit in five columns, as nearly always: d is a digit, n a digit
# or a space of the padding before the digits, L the level right-aligned to five.
_LAYOUT = "dddd-dd-dd dd:dd:dd.dddd  nnnnd  nnnnd LLLLL  "
_TEMPLATE = np.frombuffer(_LAYOUT.encode(), dtype=np.uint8)
_STAMP_WIDTH = _LAYOUT.index("n")  # the timestamp and the two spaces after it
_LEVEL_NAMES = np.array([list(f"{level.name:>5}".encode()) for level in Level], dtype=np.uint8)


@cache
def _columns(kind: str, width: int) -> np.ndarray:
    """Where the layout's first `width` columns hold one of the `kind` characters."""
    return np.array([i for i, c in enumerate(_LAYOUT[:width]) if c in kind], dtype=np.intp)


@dataclass(frozen=True, slots=True)
class LogLine:
    """The header of one record.

    `time` is None when the stamp has the right shape but names no real moment (month 13): the
    line still opens a record, because the rule is the shape, which `header_levels` checks too.
    """

    time: datetime | None
    pid: int
    thread: int
    level: Level
    message: str


def parse_line(text: str) -> LogLine | None:
    """The parts of a record's first line, or None for a line that continues a record."""
    match = _HEADER.match(text)
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, pid, thread, level = match.groups()
    try:
        time = datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            int(second),
            int(fraction) * 100,
        )
    except ValueError:
        time = None
    return LogLine(time, int(pid), int(thread), Level[level], text[match.end() :])


def header_levels(data: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """The level of every line that opens a record and NO_LEVEL for the others, as int8.

    `data` holds the lines as uint8; line k is data[bounds[k]:bounds[k + 1]]. The first columns
    of all lines are gathered into one matrix and checked against the fixed layout at once; only
    the rare lines whose timestamp fits but whose wide pid or thread does not are parsed one by
    one.
    """
    starts = bounds[:-1]
    lengths = np.diff(bounds)
    levels = np.full(len(starts), NO_LEVEL, dtype=np.int8)
    long = np.flatnonzero(lengths >= len(_LAYOUT))
    heads = _heads(data, starts[long], len(_LAYOUT))
    fits = _fit(heads)
    named = heads[:, _columns("L", len(_LAYOUT))]
    for level, name in zip(Level, _LEVEL_NAMES, strict=True):
        levels[long[fits & (named == name).all(axis=1)]] = level
    unfit = np.flatnonzero((lengths >= _STAMP_WIDTH) & (levels == NO_LEVEL))
    stamped = unfit[_fit(_heads(data, starts[unfit], _STAMP_WIDTH))]
    for line in stamped.tolist():
        text = bytes(data[bounds[line] : bounds[line + 1]]).decode("utf-8", "replace")
        parsed = parse_line(text)
        if parsed is not None:
            levels[line] = parsed.level
    return levels


def _heads(data: np.ndarray, starts: np.ndarray, width: int) -> np.ndarray:
    """The first `width` bytes of each line as the rows of a matrix (lines are that long)."""
    if len(data) < width:
        return np.zeros((0, width), dtype=np.uint8)
    return np.lib.stride_tricks.sliding_window_view(data, width)[starts]


def _fit(heads: np.ndarray) -> np.ndarray:
    """Rows that fit the first heads.shape[1] columns of _LAYOUT, the level's excepted."""
    width = heads.shape[1]
    literal = _columns("-: .", width)
    fits = (heads[:, literal] == _TEMPLATE[literal]).all(axis=1)
    fits &= _digit(heads[:, _columns("d", width)]).all(axis=1)
    padding = _columns("n", width)
    padded = heads[:, padding]
    space = ord(" ")
    # A space only where the column before is a space too: the digits come last.
    padded_ok = _digit(padded) | ((padded == space) & (heads[:, padding - 1] == space))
    return fits & padded_ok.all(axis=1)


def _digit(values: np.ndarray) -> np.ndarray:
    return (values - np.uint8(ord("0"))) < 10


def record_levels(levels: np.ndarray, above: int) -> np.ndarray:
    """Each line's record level: continuation lines take the level of the header above them.

    `levels` comes from `header_levels`; `above` is the level in force before its first line
    (NO_LEVEL at the top of a file).
    """
    positions = np.where(levels != NO_LEVEL, np.arange(len(levels)), -1)
    np.maximum.accumulate(positions, out=positions)
    inherited = levels[np.maximum(positions, 0)] if len(levels) else levels
    return np.where(positions >= 0, inherited, np.int8(above)).astype(np.int8)
