"""Output capture rate: a script writing 200 MB of lines through the service vs to a file.

Script: `yes '<79-character line>' | head -c 200000000` (2,500,000 lines of 80 bytes).
Service time: start_script (not waiting) until get_status shows Complete, i.e. every record is
committed to Output.log (polled every 2 ms asking only for the tail, so reading the log costs
nothing). Baseline: `bash -c '<script> > file'`, timed from spawn to exit. Runs alternate.
Afterwards the record count is checked: Output.log must hold exactly one stdout record per line,
get_status's next_log_sequence must be the record total, and the first and last script lines
must sit at the right sequence numbers.

Target: service rate >= 50% of the shell-redirect rate (median of the runs).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from benchmarks.common import (
    Profiler,
    Report,
    main,
    median,
    open_service,
    temp_home,
    wait_complete,
)
from tentacle_manager.agent.scripts import ScriptService
from tentacle_manager.agent.workspace.workspace import Workspace
from tentacle_manager.contracts import (
    CompleteScriptCommand,
    ProcessOutputSource,
    ScriptIsolationLevel,
    ScriptStatusRequest,
    StartScriptCommand,
    ticket,
)

NAME = "output"
LINE = "some representative deployment log line of about eighty characters ............"
LINE_BYTES = len(LINE) + 1
RATIO_TARGET = 0.5
assert LINE_BYTES == 80


def script(size: int) -> str:
    return f"yes '{LINE}' | head -c {size}"


async def baseline(root: Path, size: int) -> float:
    target = root / "redirected.txt"
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        "bash", "-c", f"{script(size)} > '{target}'", stdin=asyncio.subprocess.DEVNULL
    )
    code = await process.wait()
    elapsed = time.perf_counter() - started
    written = target.stat().st_size
    target.unlink()
    if code != 0 or written != size:
        raise RuntimeError(f"baseline exited {code} having written {written} bytes")
    return elapsed


async def through_service(
    service: ScriptService, name: str, size: int, profiler: Profiler
) -> tuple[float, dict[str, int]]:
    command = StartScriptCommand(
        script_ticket=ticket(name),
        task_id=f"ServerTasks-{name}",
        script_body=script(size),
        isolation=ScriptIsolationLevel.FULL_ISOLATION,
        isolation_mutex_name=f"output-{name}",
    )
    with profiler.section():
        started = time.perf_counter()
        await service.start_script(command)
        status = await wait_complete(service, command.script_ticket, interval=0.002)
        elapsed = time.perf_counter() - started
    if status.exit_code != 0:
        raise RuntimeError(f"{name} exited {status.exit_code}")
    counts = await verify(service, command, size // LINE_BYTES)
    await service.complete_script(CompleteScriptCommand(ticket=command.script_ticket))
    return elapsed, counts


def blocks(log: Path) -> Iterator[tuple[str, int, bytes]]:
    """(source, record count, body) of each block of an Output.log, read as a stream."""
    with open(log, "rb") as handle:
        while header := handle.readline():
            source, _occurred, _first, count, size = json.loads(header)
            yield source, count, handle.read(size)


async def verify(service: ScriptService, command: StartScriptCommand, lines: int) -> dict[str, int]:
    """Exactly `lines` script records, in one run, with only a few agent records around them."""
    log = Workspace.for_ticket(service.work_root, command.script_ticket).log_path
    needle = LINE.encode() + b"\n"
    found = records = other_stdout = 0
    head: list[str] = []
    for source, count, body in blocks(log):
        records += count
        if source == "stdout":
            script_lines = body.count(needle)
            found += script_lines
            other_stdout += count - script_lines
        if len(head) < 10:
            head += body.decode("utf-8", "replace").splitlines()[: 10 - len(head)]
    last = await service.get_status(
        ScriptStatusRequest(ticket=command.script_ticket, last_log_sequence=records - 1)
    )
    total = last.next_log_sequence
    agent = total - lines
    problems = []
    if found != lines:
        problems.append(f"{found} script line records, expected {lines}")
    if records != total:
        problems.append(f"{records} records in the file, but get_status counts {total}")
    if not 0 < agent <= 10:
        problems.append(f"{agent} records besides the script's lines")
    if other_stdout != 3:  # the three "Acquiring isolation mutex" records
        problems.append(f"{other_stdout} other stdout records, expected 3")
    # The script's lines are one contiguous run: the records before the first and after the
    # last are the agent's own. The head is read from the file (get_status has no upper bound,
    # so asking it for the head would parse the whole log); the tail through get_status.
    texts = head
    first = texts.index(LINE) if LINE in texts else -1  # 0-based: its sequence is first + 1
    if first < 1:
        problems.append(f"the first script line is not after the agent's records: {texts}")
    tail = await service.get_status(
        ScriptStatusRequest(ticket=command.script_ticket, last_log_sequence=first + lines - 1)
    )
    if tail.next_log_sequence != total or not tail.logs or tail.logs[0].text != LINE:
        problems.append("the last script line is not at the expected sequence number")
    elif tail.logs[0].source is not ProcessOutputSource.STDOUT or any(
        record.text == LINE for record in tail.logs[1:]
    ):
        problems.append("the script's lines run past where they should end")
    if problems:
        raise RuntimeError(f"{command.script_ticket}: " + "; ".join(problems))
    return {"records": records, "script_lines": found, "agent_records": agent}


async def measure(report: Report, args: argparse.Namespace) -> None:
    size = 20_000_000 if args.quick else 200_000_000
    runs = 2 if args.quick else 3
    profiler = Profiler(NAME, args.profile)
    shell: list[float] = []
    service_times: list[float] = []
    counts: dict[str, int] = {}
    async with temp_home(NAME) as root, open_service(root / "home") as service:
        await baseline(root, 1_000_000)  # warm-up
        await through_service(service, "warm", 1_000_000, Profiler("unused", False))
        for i in range(runs):
            if i % 2:
                shell.append(await baseline(root, size))
            elapsed, counts = await through_service(service, f"run-{i}", size, profiler)
            service_times.append(elapsed)
            if not i % 2:
                shell.append(await baseline(root, size))
    mb = size / 1e6
    shell_rate, service_rate = mb / median(shell), mb / median(service_times)
    ratio = service_rate / shell_rate
    report.check(
        "output capture",
        f"service {service_rate:.0f} MB/s ({median(service_times):.2f} s for {mb:.0f} MB, "
        f"{counts['script_lines']:,} lines, {counts['records']:,} records checked), "
        f"shell redirect {shell_rate:.0f} MB/s ({median(shell):.2f} s) = {ratio:.2f}x "
        f"(median of {runs})",
        ratio >= RATIO_TARGET,
        f">= {RATIO_TARGET:.2f}x the redirect rate",
        service_seconds=service_times,
        shell_seconds=shell,
        service_mb_per_s=service_rate,
        shell_mb_per_s=shell_rate,
        ratio=ratio,
        bytes=size,
        **counts,
    )
    profiler.dump()


if __name__ == "__main__":
    sys.exit(main(NAME, measure, __doc__.splitlines()[0]))
