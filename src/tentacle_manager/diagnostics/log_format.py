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


def _layout(pid_width: int, thread_width: int) -> str:
    """The header as columns: d a digit, n a digit or a space of the padding before the digits,
    L the level right-aligned to five; pid and thread are padded to five but can be wider."""
    return (
        "dddd-dd-dd dd:dd:dd.dddd  "
        + "n" * (pid_width - 1)
        + "d  "
        + "n" * (thread_width - 1)
        + "d LLLLL  "
    )


# Tried in this order, the common first: Linux pids reach seven digits (pid_max 4194304).
_LAYOUTS = [_layout(pid, thread) for thread in (5, 6) for pid in (5, 7, 6)]
_STAMP = _LAYOUTS[0][: _LAYOUTS[0].index("n")]  # the timestamp and the two spaces after it
_LEVEL_NAMES = np.array([list(f"{level.name:>5}".encode()) for level in Level], dtype=np.uint8)


@cache
def _columns(layout: str, kinds: str) -> np.ndarray:
    """Where the layout has one of the `kinds` of column."""
    return np.array([i for i, c in enumerate(layout) if c in kinds], dtype=np.intp)


@cache
def _template(layout: str) -> np.ndarray:
    return np.frombuffer(layout.encode(), dtype=np.uint8)


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
    of all lines are gathered into one matrix and checked against the usual layout at once;
    lines that start with a timestamp but do not fit it are tried with wider pids and threads
    the same way, and only those that fit none of the layouts are parsed one by one.
    """
    levels = np.full(len(bounds) - 1, NO_LEVEL, dtype=np.int8)
    undecided = _read_levels(levels, data, bounds, np.arange(len(levels)), _LAYOUTS[0])
    long = undecided[np.diff(bounds)[undecided] >= len(_STAMP)]
    undecided = long[_fit(_heads(data, bounds[long], len(_STAMP)), _STAMP)]
    for layout in _LAYOUTS[1:]:
        undecided = _read_levels(levels, data, bounds, undecided, layout)
    for line in undecided.tolist():
        text = bytes(data[bounds[line] : bounds[line + 1]]).decode("utf-8", "replace")
        parsed = parse_line(text)
        if parsed is not None:
            levels[line] = parsed.level
    return levels


def _read_levels(
    levels: np.ndarray, data: np.ndarray, bounds: np.ndarray, lines: np.ndarray, layout: str
) -> np.ndarray:
    """Set the level of those `lines` that fit `layout`; return the others."""
    tried = lines[np.diff(bounds)[lines] >= len(layout)]
    heads = _heads(data, bounds[tried], len(layout))
    fits = _fit(heads, layout)
    named = heads[:, _columns(layout, "L")]
    for level, name in zip(Level, _LEVEL_NAMES, strict=True):
        levels[tried[fits & (named == name).all(axis=1)]] = level
    return lines[levels[lines] == NO_LEVEL]


def _heads(data: np.ndarray, starts: np.ndarray, width: int) -> np.ndarray:
    """The first `width` bytes of each line as the rows of a matrix (lines are that long)."""
    if len(data) < width:
        return np.zeros((0, width), dtype=np.uint8)
    return np.lib.stride_tricks.sliding_window_view(data, width)[starts]


def _fit(heads: np.ndarray, layout: str) -> np.ndarray:
    """Rows that fit the layout, whose level columns are left to the caller."""
    literal = _columns(layout, "-: .")
    fits = (heads[:, literal] == _template(layout)[literal]).all(axis=1)
    fits &= _digit(heads[:, _columns(layout, "d")]).all(axis=1)
    padding = _columns(layout, "n")
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
