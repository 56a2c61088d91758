"""Log filters and the log line format, against a line-by-line Python reference on a real file.

The file mixes what real logs hold: records at every level, exception traces, wide pids, CRLF
lines, non-ASCII text, undecodable bytes and lines that almost look like headers. Blocks and
search windows are made tiny so that searches cross many of both, and blocks start in the
middle of traces.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tentacle_manager.agent.host.log_files import TentacleFormatter
from tentacle_manager.diagnostics import log_filter
from tentacle_manager.diagnostics.log_filter import (
    AllOf,
    FilterCancelled,
    FilterError,
    FilterProgress,
    FilterRunner,
    Levels,
    Regex,
    Substring,
)
from tentacle_manager.diagnostics.log_format import (
    NO_LEVEL,
    Level,
    LogLine,
    header_levels,
    parse_line,
)
from tentacle_manager.diagnostics.log_index import LogIndex

MESSAGES = [
    "Listening on https://0.0.0.0:10933",
    "Script ticket ScriptTicket-17 timed out: Timeout after 00:05:00",
    "TIMEOUT waiting for the isolation mutex",
    "Straße und ünïcödé ✓",
    "STRASSE in capitals",
    "a line ending in x",
    "z starts this one",
    "broken bytes \xff\xfe here",
    "",
]
TRACE_LINES = [
    "System.TimeoutException: The operation has timed out.",
    "   at Octopus.Tentacle.Scripts.RunningScript.Execute()",
    "",
    "2024-05-01 10:00:00.1234  12345      1  NOTE  an unknown level is no header",
    "2024-05-01 10:00:00.12  12345      1  INFO  a short fraction is no header",
]


def header(rng: random.Random, level: Level, message: str) -> str:
    pid = rng.choice([7, 4242, 12345, 1234567])
    thread = rng.choice([1, 23, 123456])
    stamp = (
        f"2024-05-{rng.randint(1, 28):02d} 1{rng.randint(0, 9)}:00:00.{rng.randint(0, 9999):04d}"
    )
    return f"{stamp}  {pid:>5}  {thread:>5} {level.name:>5}  {message}"


def generated_log(lines: int = 3000, seed: int = 7) -> bytes:
    rng = random.Random(seed)
    text = ["   at a trace above the first record", "z continues nothing"]
    while len(text) < lines:
        text.append(header(rng, rng.choice(list(Level)), rng.choice(MESSAGES)))
        if rng.random() < 0.3:
            text.extend(rng.sample(TRACE_LINES, rng.randint(1, 3)))
    ends = [rng.choice(["\n"] * 4 + ["\r\n"]) for _ in text]
    body = "".join(line + end for line, end in zip(text, ends, strict=True))
    return body.encode().replace("\xff\xfe".encode(), b"\xff\xfe")  # not UTF-8 on disk


@pytest.fixture(autouse=True)
def small_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(log_filter, "_WINDOW", 300)


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    data = generated_log()
    path = tmp_path_factory.mktemp("logs") / "OctopusTentacle.txt"
    path.write_bytes(data)
    return path, [line.decode("utf-8", "replace") for line in data.splitlines()]


def search(path: Path, line_filter, block_bytes: int = 2048) -> np.ndarray:
    async def run() -> np.ndarray:
        index = LogIndex(path, chunk_bytes=4096, first_chunk_bytes=1024)
        await index.update()
        result = await FilterRunner(index, block_bytes=block_bytes).run(line_filter)
        assert (result.start, result.stop) == (0, index.line_count)
        return result.lines

    return asyncio.run(run())


def reference(lines: list[str], matches: Callable[[str], bool]) -> list[int]:
    return [number for number, line in enumerate(lines) if matches(line)]


def reference_levels(lines: list[str]) -> list[int]:
    levels, current = [], NO_LEVEL
    for line in lines:
        parsed = parse_line(line)
        current = parsed.level if parsed else current
        levels.append(current)
    return levels


@pytest.mark.parametrize("needle", ["Timeout", "timed out", "ünïcödé ✓", "Straße", "0.0.0.0", "x"])
@pytest.mark.parametrize("case_sensitive", [True, False])
def test_substring_filters_equal_a_line_by_line_search(log, needle, case_sensitive) -> None:
    path, lines = log
    found = search(path, Substring(needle, case_sensitive))
    if case_sensitive:
        expected = reference(lines, lambda line: needle in line)
    else:
        expected = reference(lines, lambda line: needle.casefold() in line.casefold())
    assert expected and found.tolist() == expected


def test_an_empty_substring_matches_every_line(log) -> None:
    path, lines = log
    assert search(path, Substring("")).tolist() == list(range(len(lines)))


@pytest.mark.parametrize(
    "pattern",
    [
        r"Time\w+",
        r"^\s+at ",
        r"\d{6,}",
        r"here$",
        r"x$",
        r"x\s*z",  # would match from "...in x" across the newline into "z starts"
        r"x[^q]*z",
        r"^$",
        r"\ufffd",
        r"(?i)straße",
    ],
)
def test_regex_filters_equal_a_line_by_line_search(log, pattern) -> None:
    path, lines = log
    compiled = re.compile(pattern, re.MULTILINE)
    assert search(path, Regex(pattern)).tolist() == reference(lines, compiled.search)


def test_a_regex_can_ignore_case(log) -> None:
    path, lines = log
    compiled = re.compile("timeout", re.IGNORECASE)
    found = search(path, Regex("timeout", case_sensitive=False))
    assert found.tolist() == reference(lines, compiled.search)


@pytest.mark.parametrize(
    "line_filter",
    [
        Levels.at_least(Level.WARN),
        Levels(frozenset({Level.DEBUG})),
        Levels.at_least(Level.TRACE),
        Levels(frozenset()),
    ],
)
def test_level_filters_give_traces_the_level_of_their_record(log, line_filter) -> None:
    path, lines = log
    wanted = {int(level) for level in line_filter.levels}
    expected = [n for n, level in enumerate(reference_levels(lines)) if level in wanted]
    assert search(path, line_filter, block_bytes=700).tolist() == expected


def test_all_of_keeps_the_lines_every_filter_matches(log) -> None:
    path, lines = log
    levels = reference_levels(lines)
    expected = [
        n
        for n, line in enumerate(lines)
        if levels[n] >= Level.WARN and "timeout" in line.casefold()
    ]
    both = AllOf((Levels.at_least(Level.WARN), Substring("timeout", case_sensitive=False)))
    assert expected  # the log has such lines, so the test can fail
    assert search(path, both, block_bytes=700).tolist() == expected


def test_lines_at_reads_scattered_lines_as_lines_reads_them(log) -> None:
    path, lines = log

    async def read() -> tuple[list[str], list[str]]:
        index = LogIndex(path, chunk_bytes=4096, first_chunk_bytes=1024)
        await index.update()
        wanted = [len(lines) - 1, 0, 17, 18, 2500, 17]
        return index.lines_at(wanted), [index.lines(n, n + 1)[0] for n in wanted]

    scattered, one_by_one = asyncio.run(read())
    assert scattered == one_by_one
    assert scattered[1] == lines[0] and scattered[2] == lines[17]


def test_header_levels_agree_with_parse_line_on_every_line(log) -> None:
    path, lines = log
    data = path.read_bytes()
    array = np.frombuffer(data, dtype=np.uint8)
    bounds = np.concatenate([[0], np.flatnonzero(array == ord("\n")) + 1])
    expected = [parsed.level if (parsed := parse_line(line)) else NO_LEVEL for line in lines]
    assert header_levels(array, bounds).tolist() == expected
    assert NO_LEVEL in expected and set(Level) <= set(expected)


def test_a_bad_regex_is_a_clear_error_naming_the_pattern_and_the_rule() -> None:
    with pytest.raises(FilterError) as caught:
        Regex("ScriptTicket-(\\d+")
    rule = caught.value.problems["regex"]
    assert rule.startswith("'ScriptTicket-(\\\\d+' is not a valid regular expression: missing )")
    assert rule.endswith("at position 13")
    assert str(caught.value) == f"regex: {rule}"


def test_a_new_search_cancels_the_running_one(log) -> None:
    path, lines = log

    async def run() -> None:
        index = LogIndex(path)
        await index.update()
        runner = FilterRunner(index, block_bytes=512)
        started = asyncio.Event()
        seen: list[FilterProgress] = []

        def progress(step: FilterProgress) -> None:
            seen.append(step)
            started.set()

        first = asyncio.create_task(runner.run(Substring("Timeout"), progress=progress))
        await started.wait()
        second = await runner.run(Substring("ünïcödé"))
        with pytest.raises(FilterCancelled):
            await first
        assert seen[-1].searched < seen[-1].total
        assert second.lines.tolist() == reference(lines, lambda line: "ünïcödé" in line)

        third = asyncio.create_task(runner.run(Levels.at_least(Level.INFO)))
        await asyncio.sleep(0)
        runner.cancel()
        with pytest.raises(FilterCancelled):
            await third

    asyncio.run(run())


def test_a_search_resumes_as_the_file_grows(tmp_path: Path) -> None:
    path = tmp_path / "log.txt"
    path.write_bytes(b"error one\nfine\nerr")

    async def run() -> None:
        index = LogIndex(path)
        await index.update()
        runner = FilterRunner(index)
        early = await runner.run(Substring("error"))
        assert (early.lines.tolist(), early.stop, early.resume) == ([0], 3, 2)
        with open(path, "ab") as file:
            file.write(b"or two\nerror three\n")
        await index.update()
        later = await runner.run(Substring("error"), start=early.resume)
        whole = early.extended(later)
        assert (whole.lines.tolist(), whole.start, whole.stop, whole.resume) == ([0, 2, 3], 0, 4, 4)
        with pytest.raises(ValueError, match="gap"):
            early.extended(await runner.run(Substring("error"), start=3))

    asyncio.run(run())


def test_parse_line_takes_a_record_header_apart() -> None:
    parsed = parse_line(
        "2024-05-01 10:00:00.1234  12345      1  INFO  Agent listening on: [::]:10933"
    )
    assert parsed == LogLine(
        time=parsed.time,
        pid=12345,
        thread=1,
        level=Level.INFO,
        message="Agent listening on: [::]:10933",
    )
    assert parsed.time is not None and parsed.time.isoformat() == "2024-05-01T10:00:00.123400"
    wide = parse_line("2024-05-01 10:00:00.0001  4194303  123456 ERROR    indented message")
    assert (wide.pid, wide.thread, wide.level, wide.message) == (
        4194303,
        123456,
        Level.ERROR,
        "  indented message",
    )
    impossible = parse_line("2024-13-45 25:00:00.0000      1      1 FATAL  when?")
    assert impossible is not None and impossible.time is None and impossible.level is Level.FATAL


@pytest.mark.parametrize(
    "line",
    [
        "   at Octopus.Tentacle.Program.Main()",
        "System.InvalidOperationException: boom",
        "",
        "2024-05-01 10:00:00.1234  12345      1  NOTE  unknown level",
        "2024-05-01 10:00:00.1234  12345      1 INFO message with one space after the level",
        "2024-05-01 10:00:00.123  12345      1  INFO  three-digit fraction",
        "2024-05-01 10:00:00.1234  1 2 3      1  INFO  spaces inside the pid",
        "2024-05-01T10:00:00.1234  12345      1  INFO  ISO separator",
        "2024-05-01 10:00:00.1234  12345      1  info  lower case",
    ],
)
def test_lines_without_a_header_continue_the_record_above(line: str) -> None:
    assert parse_line(line) is None


def test_the_agents_own_log_lines_parse_back_and_their_traces_continue_them() -> None:
    logger = logging.getLogger("test_log_filter")
    try:
        raise TimeoutError("no answer from the server")
    except TimeoutError:
        record = logger.makeRecord(
            logger.name, logging.WARNING, __file__, 1, "Polling %s", ("failed",), sys.exc_info()
        )
    first, *trace = TentacleFormatter().format(record).splitlines()
    parsed = parse_line(first)
    assert parsed is not None
    assert (parsed.level, parsed.message, parsed.pid) == (
        Level.WARN,
        "Polling failed",
        record.process,
    )
    assert trace and all(parse_line(line) is None for line in trace)
    assert trace[-1] == "TimeoutError: no answer from the server"
