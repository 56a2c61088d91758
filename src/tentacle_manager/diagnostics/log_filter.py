"""Which lines of an indexed log match a filter: a substring, a regular expression, levels, or
all of several.

A search runs over blocks of whole lines (2 MB) read through the index, one block per
executor call, and yields the sorted int64 array of matching line numbers that the viewer's
proxy model shows. No filter loops over lines in Python: substrings and expressions are found
by C-level scans over a whole block (`bytearray.find`, `str.find`, `re`), with a little Python
per matching line only; levels are classified with numpy (log_format.header_levels).

Filters match lines, with one exception: a level filter gives the lines that continue a record
(an exception trace) the level of the record, so "WARN and above" shows a warning's trace too.

Searching a block at once could let a pattern match across a newline, so every candidate is
confirmed within its own line: a filter means what it would mean line by line. Scans run in
windows of about 256 KB, since a C-level scan holds the GIL, and the event loop must not wait
for it more than a few milliseconds (invariant 6).

`FilterRunner` keeps one search at a time for a view: starting another, or `cancel()`, makes
the previous one end with FilterCancelled after at most one block.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from tentacle_manager.contracts import ProblemsError
from tentacle_manager.diagnostics.log_format import (
    NO_LEVEL,
    Level,
    header_levels,
    parse_line,
    record_levels,
)
from tentacle_manager.diagnostics.log_index import LineBlock, LogIndex

BLOCK_BYTES = 2 << 20  # decoding or case-folding one block holds the GIL for a few ms
_WINDOW = 256 << 10
_LOOK_BACK_LINES = 4  # lines read first when looking for the record above a line (a trace's
_LOOK_BACK_GROWTH = 8  # header is usually a line or two up), then eight times as many each time
_HEADER_BYTES = 64  # enough of a line to parse its header


class FilterError(ProblemsError):
    """A filter that cannot run, naming the field, the value and the rule it breaks."""


class FilterCancelled(asyncio.CancelledError):
    """A newer search, or FilterRunner.cancel(), took this search's place."""


class LineFilter(Protocol):
    def matching(self, block: LineBlock, index: LogIndex) -> np.ndarray:
        """The block's matching lines, counted from its first line (0), ascending."""
        ...


@dataclass(frozen=True)
class Substring:
    """Lines containing `text`; without case, compared after Unicode case folding."""

    text: str
    case_sensitive: bool = True

    def matching(self, block: LineBlock, index: LogIndex) -> np.ndarray:
        if not self.text:
            return np.arange(block.line_count, dtype=np.int64)
        if self.case_sensitive:
            find = _finder(block.data, self.text.encode())
            return _lines_of_bytes(block, _first_hits(block.data, block.size, b"\n", find))
        raw = bytes(memoryview(block.data)[: block.size])
        needle = self.text.casefold()
        if raw.isascii():  # the usual log: ASCII folds bytewise, at C speed, with no decoding
            lowered = raw.lower()
            if not needle.isascii():
                return np.empty(0, dtype=np.int64)  # folded ASCII text stays ASCII
            find = _finder(lowered, needle.encode())
            return _lines_of_bytes(block, _first_hits(lowered, len(lowered), b"\n", find))
        folded = block.text().casefold()
        find = _finder(folded, needle)
        return _lines_of_text(block, folded, _first_hits(folded, len(folded), "\n", find))


@dataclass(frozen=True)
class Regex:
    """Lines in which the regular expression finds a match (`^` and `$` at line ends)."""

    pattern: str
    case_sensitive: bool = True
    compiled: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        flags = re.MULTILINE | (0 if self.case_sensitive else re.IGNORECASE)
        try:
            compiled = re.compile(self.pattern, flags)
        except re.error as error:
            rule = f"{self.pattern!r} is not a valid regular expression: {error.msg}"
            if error.pos is not None:
                rule += f" at position {error.pos}"
            raise FilterError({"regex": rule}) from None
        object.__setattr__(self, "compiled", compiled)

    def matching(self, block: LineBlock, index: LogIndex) -> np.ndarray:
        text = block.text()
        if "\r" in text:
            text = text.replace("\r\n", "\n")  # so that `$` matches before a CRLF too
        search = self.compiled.search

        def find(begin: int, end: int) -> int:
            match = search(text, begin, end)
            return -1 if match is None else match.start()

        return _lines_of_text(block, text, _first_hits(text, len(text), "\n", find))


@dataclass(frozen=True)
class Levels:
    """Lines of records at one of `levels`, continuation lines included."""

    levels: frozenset[Level]

    @classmethod
    def at_least(cls, level: Level) -> Levels:
        return cls(frozenset(known for known in Level if known >= level))

    def matching(self, block: LineBlock, index: LogIndex) -> np.ndarray:
        headers = header_levels(block.array(), block.bounds)
        opens_a_record = block.line_count == 0 or headers[0] != NO_LEVEL
        above = NO_LEVEL if opens_a_record else record_level_above(index, block.first_line)
        lines = record_levels(headers, above)
        return np.flatnonzero(np.isin(lines, [int(level) for level in self.levels]))


@dataclass(frozen=True)
class AllOf:
    """Lines that every one of `filters` matches: the viewer's level and text filters at once."""

    filters: tuple[LineFilter, ...]

    def matching(self, block: LineBlock, index: LogIndex) -> np.ndarray:
        lines = np.arange(block.line_count, dtype=np.int64)
        for line_filter in self.filters:
            lines = np.intersect1d(lines, line_filter.matching(block, index), assume_unique=True)
            if not len(lines):
                break
        return lines


@dataclass(frozen=True)
class FilterResult:
    """The lines of start..stop-1 that matched, ascending."""

    lines: np.ndarray
    start: int
    stop: int
    resume: int  # where to search again as the file grows: stop, or the last line if unfinished

    def extended(self, later: FilterResult) -> FilterResult:
        """This result followed by `later`, a search of the same filter from `self.resume`."""
        if later.start > self.resume:
            raise ValueError(f"a search from line {later.start} leaves a gap after {self.resume}")
        kept = self.lines[self.lines < later.start]
        return FilterResult(
            np.concatenate([kept, later.lines]), self.start, later.stop, later.resume
        )


@dataclass(frozen=True)
class FilterProgress:
    """Reported after every block, so a view can show how far a long search has come."""

    searched: int  # lines searched so far, from the search's start
    total: int
    matches: int


class FilterRunner:
    """Searches an index for one filter at a time, as a view does: a new search cancels the last."""

    def __init__(self, index: LogIndex, *, block_bytes: int = BLOCK_BYTES) -> None:
        self.index = index
        self._block_bytes = block_bytes
        self._generation = 0

    def cancel(self) -> None:
        """End the running search (it raises FilterCancelled after its current block)."""
        self._generation += 1

    async def run(
        self,
        line_filter: LineFilter,
        *,
        start: int = 0,
        progress: Callable[[FilterProgress], None] | None = None,
    ) -> FilterResult:
        """Search the lines indexed so far from `start`, one block per executor call.

        Raises FilterCancelled when a newer search or `cancel()` replaces this one.
        """
        self._generation += 1
        generation = self._generation
        loop = asyncio.get_running_loop()
        extent = self.index.extent
        stop = extent.lines
        buffer = bytearray(max(1, min(self._block_bytes, extent.indexed_bytes)))
        found: list[np.ndarray] = []
        matches = 0
        line = start
        while line < stop:
            count, hits = await loop.run_in_executor(
                None, self._search_block, line_filter, line, stop, buffer
            )
            if generation != self._generation:
                raise FilterCancelled(f"the search for {line_filter!r} was replaced")
            if count == 0:
                break  # the file was replaced under the search; its update will say so
            found.append(hits)
            matches += len(hits)
            line += count
            if progress is not None:
                progress(FilterProgress(line - start, stop - start, matches))
        lines = np.concatenate(found) if found else np.empty(0, dtype=np.int64)
        resume = stop if extent.complete_lines == stop else stop - 1
        return FilterResult(lines, start, stop, max(start, resume))

    def _search_block(
        self, line_filter: LineFilter, first: int, stop: int, buffer: bytearray
    ) -> tuple[int, np.ndarray]:
        block = self.index.read_block(first, stop, buffer)
        return block.line_count, line_filter.matching(block, self.index) + first


class _Haystack(Protocol):
    """A block as _first_hits searches it: a bytearray with bytes needles, or a str with str."""

    def find(self, sub: Any, start: int, end: int, /) -> int: ...
    def rfind(self, sub: Any, start: int, end: int, /) -> int: ...
    def count(self, sub: Any, start: int, end: int, /) -> int: ...


def _finder(haystack: _Haystack, needle: bytes | str) -> Callable[[int, int], int]:
    def find(begin: int, end: int) -> int:
        return haystack.find(needle, begin, end)

    return find


def _first_hits(
    haystack: _Haystack, end: int, newline: bytes | str, find: Callable[[int, int], int]
) -> list[int]:
    """Where each line of haystack[:end] that `find(begin, end)` finds something in has it.

    Candidates are searched across a window of whole lines; each is confirmed within its own
    line, and the search goes on after that line, so the Python work is per matching line.
    """
    hits: list[int] = []
    at = 0
    while at < end:
        window = haystack.find(newline, min(at + _WINDOW, end), end) + 1 or end
        hit = find(at, window)
        if hit < 0:
            at = window
            continue
        begin = haystack.rfind(newline, 0, hit) + 1
        close = haystack.find(newline, hit, end)
        close = end if close < 0 else close
        if find(begin, close) >= 0:
            hits.append(hit)
        at = close + 1
    return hits


def _lines_of_bytes(block: LineBlock, hits: list[int]) -> np.ndarray:
    """The block's lines (from 0) holding the byte offsets `hits`, found from its bounds."""
    lines = np.searchsorted(block.bounds, np.array(hits, dtype=np.int64), side="right") - 1
    return _within(block, lines)


def _lines_of_text(block: LineBlock, text: str, hits: list[int]) -> np.ndarray:
    """The block's lines (from 0) holding the offsets `hits` into `text`, one of its texts
    (whose characters need not be its bytes), by counting newlines."""
    lines: list[int] = []
    line = at = 0
    for hit in hits:
        line += text.count("\n", at, hit)
        lines.append(line)
        at = hit
    return _within(block, np.array(lines, dtype=np.int64))


def _within(block: LineBlock, lines: np.ndarray) -> np.ndarray:
    """Drop a hit at the very end, after the block's last newline: no line starts there."""
    return lines[lines < block.line_count]


def record_level_above(index: LogIndex, line: int) -> int:
    """The level of the record that `line` continues: the nearest header above it."""
    look_back = _LOOK_BACK_LINES
    while line > 0:
        first = max(0, line - look_back)
        for text in reversed(index.lines(first, line, max_bytes=_HEADER_BYTES)):
            parsed = parse_line(text)
            if parsed is not None:
                return parsed.level
        line = first
        look_back *= _LOOK_BACK_GROWTH
    return NO_LEVEL
