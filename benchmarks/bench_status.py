"""get_status for the last 100 lines of a 1,000,000-line log vs the same call on a 1,000-line log.

Both logs are made by the real service: a script prints N numbered lines (awk). Then
get_status(last_log_sequence = total - 100) -- exactly the last 100 records -- is timed many
times, alternating between the two tickets, and the medians are compared. The same is done
after restarting the service over the same home, when the status is served from disk.

Target: the large log's median <= 1.5x the small log's median.
"""

from __future__ import annotations

import argparse
import sys
import time

from benchmarks.common import (
    Profiler,
    Report,
    main,
    median,
    ms,
    open_service,
    summary,
    temp_home,
    wait_complete,
)
from tentacle_manager.agent.scripts import ScriptService
from tentacle_manager.contracts import (
    ScriptIsolationLevel,
    ScriptStatusRequest,
    StartScriptCommand,
    ticket,
)

NAME = "status"
TAIL = 100
RATIO_TARGET = 1.5


def printer(lines: int) -> str:
    return (
        f"awk 'BEGIN {{ for (i = 1; i <= {lines}; i++) "
        'printf "deployment step %d: copying package files to the target directory\\n", i }\''
    )


async def build(service: ScriptService, name: str, lines: int) -> int:
    command = StartScriptCommand(
        script_ticket=ticket(name),
        task_id=f"ServerTasks-{name}",
        script_body=printer(lines),
        isolation=ScriptIsolationLevel.NO_ISOLATION,
        isolation_mutex_name=f"status-{name}",
    )
    await service.start_script(command)
    status = await wait_complete(service, command.script_ticket, interval=0.01)
    if status.exit_code != 0:
        raise RuntimeError(f"{name} exited {status.exit_code}")
    return await total_records(service, name, lines)


async def total_records(service: ScriptService, name: str, lines: int) -> int:
    """The record count, found through get_status (the log holds `lines` + a few records)."""
    status = await service.get_status(
        ScriptStatusRequest(ticket=ticket(name), last_log_sequence=lines)
    )
    total = status.next_log_sequence
    if not lines < total <= lines + 10:
        raise RuntimeError(f"{name}: {total} records for {lines} lines")
    return total


async def timed_tails(
    service: ScriptService, totals: dict[str, int], calls: int, profiler: Profiler
) -> dict[str, list[float]]:
    requests = {
        name: ScriptStatusRequest(ticket=ticket(name), last_log_sequence=total - TAIL)
        for name, total in totals.items()
    }
    timings: dict[str, list[float]] = {name: [] for name in totals}
    for name, request in requests.items():  # check once, then warm up
        status = await service.get_status(request)
        last = f"deployment step {name.split('-')[1]}: copying package files"
        if len(status.logs) != TAIL or status.next_log_sequence != totals[name]:
            raise RuntimeError(
                f"{name}: {len(status.logs)} records, next {status.next_log_sequence}"
            )
        if not any(record.text.startswith(last) for record in status.logs):
            raise RuntimeError(f"{name}: the last script line is missing from the tail")
        for _ in range(20):
            await service.get_status(request)
    with profiler.section():
        for i in range(calls):
            order = list(requests.items())
            if i % 2:
                order.reverse()
            for name, request in order:
                started = time.perf_counter()
                await service.get_status(request)
                timings[name].append(time.perf_counter() - started)
    return timings


def ratio_line(
    report: Report, label: str, small: str, large: str, timings: dict[str, list[float]]
) -> None:
    small_median, large_median = median(timings[small]), median(timings[large])
    ratio = large_median / small_median
    small_lines, large_lines = (int(name.split("-")[1]) for name in (small, large))
    report.check(
        label,
        f"last {TAIL} of {large_lines:,} lines median {ms(large_median)}, "
        f"last {TAIL} of {small_lines:,} lines (baseline) median {ms(small_median)} "
        f"= {ratio:.2f}x (n={len(timings[large])} each)",
        ratio <= RATIO_TARGET,
        f"<= {RATIO_TARGET}x the small log",
        large_ms=summary(timings[large]),
        small_ms=summary(timings[small]),
        ratio=ratio,
    )


async def measure(report: Report, args: argparse.Namespace) -> None:
    small_lines = 1_000
    large_lines = 100_000 if args.quick else 1_000_000
    calls = 300 if args.quick else 1000
    small, large = f"lines-{small_lines}", f"lines-{large_lines}"
    profiler = Profiler(NAME, args.profile)
    async with temp_home(NAME) as root:
        home = root / "home"
        async with open_service(home) as service:
            started = time.perf_counter()
            totals = {
                small: await build(service, small, small_lines),
                large: await build(service, large, large_lines),
            }
            report.note(f"logs built through the service in {time.perf_counter() - started:.1f} s")
            timings = await timed_tails(service, totals, calls, profiler)
            bulk = min(100_000, totals[large] - 1)
            request = ScriptStatusRequest(
                ticket=ticket(large), last_log_sequence=totals[large] - bulk
            )
            started = time.perf_counter()
            status = await service.get_status(request)
            elapsed = time.perf_counter() - started
            if len(status.logs) != bulk:
                raise RuntimeError(f"bulk read returned {len(status.logs)} of {bulk} records")
        ratio_line(report, "get_status tail", small, large, timings)
        report.note(
            f"for scale: one get_status returning {bulk:,} records took {elapsed:.2f} s "
            f"({elapsed / bulk * 1e6:.1f} us per record)"
        )
        report.info["bulk_read"] = {"records": bulk, "seconds": elapsed}
        async with open_service(home) as restarted:
            timings = await timed_tails(restarted, totals, calls, profiler)
        ratio_line(report, "get_status tail after restart", small, large, timings)
    profiler.dump()


if __name__ == "__main__":
    sys.exit(main(NAME, measure, __doc__.splitlines()[0]))
