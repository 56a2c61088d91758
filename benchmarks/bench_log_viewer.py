"""The log viewer's core on a 1 GB agent log (quick: 100 MB): index, read, filter, memory, lag.

The log is generated once per run in the agent's line format (records at every level, ~1.5%
of lines in exception traces), about seven million lines per GB, and every measurement uses
it with the page cache warm (the file was just written), for ours and the baselines alike.

1. First screen: LogIndex(path) and update() started, until the first 100 lines have been
   read through the index. Target <= 0.5 s.
2. Full index: a fresh LogIndex's update() to the end, vs `wc -l` on the same file (median of
   alternating runs; the line counts must agree). The index scans two chunks at once, on two
   cores; wc uses one. Target <= 5x.
3. Substring filter: the lines containing a word (FilterRunner over the finished index) vs
   `LC_ALL=C grep -c` (median of alternating runs; the counts must agree). Target <= 3x.
4. Memory: in a fresh interpreter, the peak RSS (ru_maxrss) during open + index + filter,
   minus the RSS just before. Target <= 150 MB (the offsets alone are 8 bytes a line).
5. Event-loop lag: a 10 ms ticker on the loop while a fresh index is built and then a
   substring, a regex and a level filter run; how late any tick fires. Target max <= 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from benchmarks.common import Report, main, median, ms, percentile, temp_home
from tentacle_manager.diagnostics.log_filter import FilterRunner, Levels, Regex, Substring
from tentacle_manager.diagnostics.log_format import Level
from tentacle_manager.diagnostics.log_index import Extent, LogIndex

NAME = "log_viewer"
WORD = "Exception"
FIRST_SCREEN_LINES = 100
FIRST_SCREEN_TARGET = 0.5
INDEX_RATIO_TARGET = 5.0
FILTER_RATIO_TARGET = 3.0
RSS_TARGET_MB = 150.0
LAG_TARGET = 0.050
TICK = 0.010

_MESSAGES = [
    "Listening for polling requests on https://0.0.0.0:10933 with {n} connections open",
    "Halibut request ScriptService.GetStatus for ScriptTicket-{n} answered in {n} ms",
    "Acquiring isolation mutex RunningScript with NoIsolation in ServerTasks-{n}",
    "Releasing lock for ServerTasks-{n}; {n} tasks are still waiting on RunningScript",
    "Script ServerTasks-{n} wrote {n} lines of output to Work/{n}/Output.log",
    "Health check of the workspace cleaner: {n} workspaces, none older than the limit",
    "Polling https://octopus.example.com:10943/ for work from the server thumbprint {n}",
]
_TRACE = [
    "System.TimeoutException: The operation timed out after {n} ms.",
    "   at Octopus.Tentacle.Communications.PollingClient.ExecuteRequest(RequestMessage request)",
    "   at Octopus.Tentacle.Scripts.RunningScript.Execute(CancellationToken token)",
]
_LEVELS = [Level.INFO] * 80 + [Level.DEBUG] * 12 + [Level.WARN] * 5 + [Level.ERROR] * 3


def hour_of_log(seed: int = 1, lines: int = 40_000) -> bytes:
    """One hour of records of 2024-05-01 00:xx; other hours are this with the hour replaced."""
    rng = random.Random(seed)
    text = []
    for i in range(lines):
        level = rng.choice(_LEVELS)
        message = rng.choice(_MESSAGES).format(n=rng.randint(1, 99_999))
        stamp = f"2024-05-01 00:{i * 60 // lines:02d}:{i % 60:02d}.{rng.randint(0, 9999):04d}"
        text.append(
            f"{stamp}  {rng.randint(100, 40_000):>5}  {rng.randint(1, 60):>5} "
            f"{level.name:>5}  {message}\n"
        )
        if level is Level.ERROR and rng.random() < 0.5:
            text.extend(line.format(n=rng.randint(1, 99_999)) + "\n" for line in _TRACE)
    return "".join(text).encode()


def generate(path: Path, size: int) -> None:
    """Write about `size` bytes of log, an hour at a time."""
    hour = hour_of_log()
    with open(path, "wb") as file:
        for n in range(-(-size // len(hour))):
            day, clock = divmod(n, 24)
            stamp = f"2024-05-{day + 1:02d} {clock:02d}:".encode()
            file.write(hour.replace(b"2024-05-01 00:", stamp))


async def timed_process(*command: str) -> tuple[float, str]:
    """Wall time of a command from spawn to exit, and its stdout."""
    environment = {**os.environ, "LC_ALL": "C"}
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        *command, stdout=subprocess.PIPE, env=environment
    )
    out, _ = await process.communicate()
    elapsed = time.perf_counter() - started
    if process.returncode not in (0, 1):
        raise RuntimeError(f"{command} exited {process.returncode}")
    return elapsed, out.decode()


async def first_screen(path: Path) -> tuple[float, list[str]]:
    """Seconds from opening until the first lines were read, and those lines."""
    started = time.perf_counter()
    index = LogIndex(path)
    ready = asyncio.Event()

    def progress(extent: Extent) -> None:
        if extent.lines >= FIRST_SCREEN_LINES:
            ready.set()

    update = asyncio.ensure_future(index.update(progress))
    await ready.wait()
    lines = index.lines(0, FIRST_SCREEN_LINES, max_bytes=4096)
    elapsed = time.perf_counter() - started
    await update
    return elapsed, lines


async def alternate(
    ours: Callable[[], Awaitable[tuple[float, int]]],
    theirs: Callable[[], Awaitable[tuple[float, int]]],
    runs: int,
) -> tuple[list[float], list[float], int]:
    """Alternating runs of two measurements that must count the same; (ours, theirs, count)."""
    mine: list[float] = []
    baseline: list[float] = []
    counts: set[int] = set()
    for i in range(runs):
        pair = (theirs, ours) if i % 2 else (ours, theirs)
        for measure_one in pair:
            elapsed, count = await measure_one()
            (mine if measure_one is ours else baseline).append(elapsed)
            counts.add(count)
    if len(counts) != 1:
        raise RuntimeError(f"the counts disagree: {sorted(counts)}")
    return mine, baseline, counts.pop()


async def measure_index(report: Report, path: Path, runs: int) -> LogIndex:
    index = LogIndex(path)

    async def ours() -> tuple[float, int]:
        nonlocal index
        index = LogIndex(path)
        started = time.perf_counter()
        await index.update()
        return time.perf_counter() - started, index.line_count

    async def wc() -> tuple[float, int]:
        elapsed, out = await timed_process("wc", "-l", str(path))
        return elapsed, int(out.split()[0])

    mine, baseline, lines = await alternate(ours, wc, runs)
    ratio = median(mine) / median(baseline)
    size_mb = path.stat().st_size / 1e6
    report.check(
        "full index",
        f"{median(mine):.2f} s for {lines:,} lines ({size_mb / median(mine):.0f} MB/s), "
        f"wc -l {median(baseline):.2f} s = {ratio:.1f}x (median of {runs})",
        ratio <= INDEX_RATIO_TARGET,
        f"<= {INDEX_RATIO_TARGET:.0f}x wc -l",
        seconds=mine,
        wc_seconds=baseline,
        ratio=ratio,
        lines=lines,
    )
    return index


async def measure_filter(report: Report, index: LogIndex, runs: int) -> None:
    runner = FilterRunner(index)

    async def ours() -> tuple[float, int]:
        started = time.perf_counter()
        result = await runner.run(Substring(WORD))
        return time.perf_counter() - started, len(result.lines)

    async def grep() -> tuple[float, int]:
        elapsed, out = await timed_process("grep", "-c", WORD, str(index.path))
        return elapsed, int(out)

    mine, baseline, matches = await alternate(ours, grep, runs)
    ratio = median(mine) / median(baseline)
    report.check(
        "substring filter",
        f"{median(mine):.2f} s for {matches:,} lines containing {WORD!r}, grep -c "
        f"{median(baseline):.2f} s = {ratio:.1f}x (median of {runs})",
        ratio <= FILTER_RATIO_TARGET,
        f"<= {FILTER_RATIO_TARGET:.0f}x grep -c",
        seconds=mine,
        grep_seconds=baseline,
        ratio=ratio,
        matches=matches,
    )


def rss_probe(path: str, word: str) -> None:
    """Run in a fresh interpreter: print the RSS before, the peak RSS and the RSS with the
    index and the filter's result still held, in bytes."""
    import resource

    import psutil

    process = psutil.Process()
    before = process.memory_info().rss

    async def work() -> int:
        index = LogIndex(path)
        await index.update()
        result = await FilterRunner(index).run(Substring(word))
        assert len(result.lines) > 0
        return process.memory_info().rss

    held = asyncio.run(work())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(before, peak, held)


async def measure_memory(report: Report, path: Path, lines: int) -> None:
    probe = f"from benchmarks.bench_log_viewer import rss_probe; rss_probe({str(path)!r}, {WORD!r})"
    root = Path(__file__).resolve().parent.parent
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", probe, stdout=subprocess.PIPE, cwd=root
    )
    out, _ = await process.communicate()
    before, peak, held = (int(value) for value in out.split())
    growth = (peak - before) / 1e6
    report.check(
        "memory",
        f"peak RSS growth {growth:.0f} MB during open + index + filter of {lines:,} lines "
        f"(offsets {lines * 8 / 1e6:.0f} MB; {(held - before) / 1e6:.0f} MB held with them)",
        growth <= RSS_TARGET_MB,
        f"<= {RSS_TARGET_MB:.0f} MB",
        peak_growth_mb=growth,
        held_mb=(held - before) / 1e6,
    )


async def measure_lag(report: Report, path: Path) -> None:
    loop = asyncio.get_running_loop()
    lags: list[float] = []
    phase_max: dict[str, float] = {}
    phases = ["index"]  # the one running now is the last
    running = True

    async def ticker() -> None:
        while running:
            before = loop.time()
            await asyncio.sleep(TICK)
            lag = loop.time() - before - TICK
            lags.append(lag)
            phase_max[phases[-1]] = max(phase_max.get(phases[-1], 0.0), lag)

    ticking = asyncio.ensure_future(ticker())
    index = LogIndex(path)
    await index.update()
    runner = FilterRunner(index)
    for phase, line_filter in [
        ("substring", Substring(WORD)),
        ("regex", Regex(r"ServerTasks-\d+;")),
        ("level", Levels.at_least(Level.WARN)),
    ]:
        phases.append(phase)
        await runner.run(line_filter)
    running = False
    await ticking
    worst = max(lags)
    report.check(
        "event-loop lag",
        f"max {ms(worst)}, p99 {ms(percentile(lags, 0.99))}, median {ms(median(lags))} over "
        f"{len(lags):,} ticks of {ms(TICK)} while indexing and filtering",
        worst <= LAG_TARGET,
        f"max <= {ms(LAG_TARGET)}",
        max_ms=worst * 1e3,
        ticks=len(lags),
    )
    report.note("worst lag by phase: " + ", ".join(f"{k} {ms(v)}" for k, v in phase_max.items()))


async def measure_other_filters(report: Report, index: LogIndex) -> None:
    """Not targets: how long the slower kinds of filter take, for the record."""
    runner = FilterRunner(index)
    for name, line_filter in [
        ("case-insensitive substring", Substring(WORD.lower(), case_sensitive=False)),
        ("regex", Regex(r"ServerTasks-\d+;")),
        ("level WARN and above", Levels.at_least(Level.WARN)),
    ]:
        started = time.perf_counter()
        result = await runner.run(line_filter)
        elapsed = time.perf_counter() - started
        report.note(f"{name}: {elapsed:.2f} s, {len(result.lines):,} lines")
        report.info[f"{name} seconds"] = elapsed


async def measure(report: Report, args: argparse.Namespace) -> None:
    size = 100_000_000 if args.quick else 1_000_000_000
    runs = 3
    async with temp_home(NAME) as root:
        path = root / "OctopusTentacle.txt"
        started = time.perf_counter()
        await asyncio.to_thread(generate, path, size)
        report.note(
            f"generated {path.stat().st_size / 1e6:.0f} MB of log in "
            f"{time.perf_counter() - started:.1f} s (page cache warm for every run)"
        )
        elapsed, lines = await first_screen(path)
        if len(lines) != FIRST_SCREEN_LINES or not lines[0].startswith("2024-05-01 00:00:00."):
            raise RuntimeError(f"the first screen is wrong: {lines[:2]}")
        report.check(
            "first screen",
            f"{ms(elapsed)} until the first {FIRST_SCREEN_LINES} lines were read",
            elapsed <= FIRST_SCREEN_TARGET,
            f"<= {ms(FIRST_SCREEN_TARGET)}",
            seconds=elapsed,
        )
        index = await measure_index(report, path, runs)
        await measure_filter(report, index, runs)
        await measure_memory(report, path, index.line_count)
        await measure_lag(report, path)
        await measure_other_filters(report, index)


if __name__ == "__main__":
    sys.exit(main(NAME, measure, __doc__.splitlines()[0]))
