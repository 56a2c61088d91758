"""Jump to time: the first record at or after a moment, found by a binary search over lines.

Checked against a plain scan on logs with traces between records, a trace above the first
record, repeated timestamps and headers whose stamp names no real moment.
"""

from __future__ import annotations

import asyncio
import random
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tentacle_manager.diagnostics.log_format import parse_line
from tentacle_manager.diagnostics.log_index import LogIndex
from tentacle_manager.diagnostics.log_time import first_line_at

START = datetime(2024, 5, 1, 10, 0, 0)


def write_log(path: Path, records: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    lines = ["   at a trace above the first record"]
    moment = START
    for n in range(records):
        moment += timedelta(milliseconds=rng.choice([0, 0, 1, 250, 4000]))
        stamp = moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 100:04d}"
        if rng.random() < 0.02:
            stamp = "2024-13-01 10:00:00.0000"  # the shape of a header, no real moment
        lines.append(f"{stamp}  {rng.randint(1, 99999):>5}  {1:>5}  INFO  record {n}")
        lines.extend("   at frame" for _ in range(rng.choice([0, 0, 0, 1, 70])))
    path.write_text("\n".join(lines) + "\n")
    return lines


def scanned(lines: list[str], moment: datetime) -> int | None:
    for number, line in enumerate(lines):
        parsed = parse_line(line)
        if parsed is not None and parsed.time is not None and parsed.time >= moment:
            return number
    return None


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_binary_search_finds_what_a_scan_finds(tmp_path: Path, seed: int) -> None:
    path = tmp_path / "OctopusTentacle.txt"
    lines = write_log(path, 3000, seed)
    index = LogIndex(path)
    asyncio.run(index.update())
    times = [p.time for p in map(parse_line, lines) if p is not None and p.time is not None]
    rng = random.Random(seed)
    moments = [START - timedelta(days=1), times[0], times[-1], times[-1] + timedelta(seconds=1)]
    nudges = [timedelta(microseconds=n) for n in (-100, 0, 100)]
    moments += [rng.choice(times) + rng.choice(nudges) for _ in range(200)]
    for moment in moments:
        assert first_line_at(index, moment) == scanned(lines, moment), moment


def test_an_empty_log_and_a_log_without_records_have_no_such_line(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    traces = tmp_path / "traces.txt"
    traces.write_text("   at one\n   at two\n")
    for path in (empty, traces):
        index = LogIndex(path)
        asyncio.run(index.update())
        assert first_line_at(index, START) is None
