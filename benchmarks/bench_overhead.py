"""Per-script overhead of the service against a bare asyncio spawn of the same script.

Service run: start_script (FullIsolation, a mutex name of its own, waiting up to a minute) until
Complete -- the headline latency -- then complete_script (timed separately). Bare run:
asyncio.create_subprocess_exec('bash', <file containing `echo x`>) with pipes + communicate().
Both are done sequentially (interleaved, alternating which goes first) and 16 at a time.

Targets: median per-script overhead (service median - bare median) <= 1.5x the bare median,
sequentially and 16-way; 16-way service throughput >= 100 scripts/s (each script's full cycle:
start, Complete, complete_script).
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import time
from datetime import timedelta
from pathlib import Path

from benchmarks.common import (
    Profiler,
    Report,
    main,
    median,
    ms,
    open_service,
    summary,
    temp_home,
)
from tentacle_manager.agent.scripts import ScriptService
from tentacle_manager.contracts import (
    CompleteScriptCommand,
    ProcessState,
    ScriptIsolationLevel,
    StartScriptCommand,
    ticket,
)

NAME = "overhead"
BODY = "echo x\n"
OVERHEAD_TARGET = 1.5  # overhead <= 1.5x the bare spawn
THROUGHPUT_TARGET = 100.0  # scripts/s, 16 at a time
CONCURRENCY = 16
WAIT = timedelta(minutes=1)


async def bare_once(script: Path) -> float:
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        "bash",
        str(script),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    elapsed = time.perf_counter() - started
    if process.returncode != 0 or out != b"x\n":
        raise RuntimeError(f"bare run failed: {process.returncode} {out!r} {err!r}")
    return elapsed


async def service_once(service: ScriptService, name: str) -> tuple[float, float]:
    """(start -> Complete, complete_script) for one `echo x` run through the service."""
    command = StartScriptCommand(
        script_ticket=ticket(name),
        task_id=f"ServerTasks-{name}",
        script_body=BODY,
        isolation=ScriptIsolationLevel.FULL_ISOLATION,
        isolation_mutex_name=f"mutex-{name}",
        duration_to_wait_for_script_to_finish=WAIT,
    )
    started = time.perf_counter()
    status = await service.start_script(command)
    completed = time.perf_counter()
    if status.state is not ProcessState.COMPLETE or status.exit_code != 0:
        raise RuntimeError(f"{name}: {status.state!r} exit {status.exit_code}")
    if not any(record.text == "x" for record in status.logs):
        raise RuntimeError(f"{name}: output 'x' missing from {[r.text for r in status.logs]}")
    await service.complete_script(CompleteScriptCommand(ticket=command.script_ticket))
    return completed - started, time.perf_counter() - completed


def agent_cpu() -> float:
    """CPU seconds used by this process (every thread), not by the scripts it started."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def concurrent(count: int, job) -> tuple[list, float, float]:
    """Run job(i) for i < count, CONCURRENCY at a time: (results, wall seconds, CPU seconds)."""
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(i: int):
        async with gate:
            return await job(i)

    cpu = agent_cpu()
    started = time.perf_counter()
    results = await asyncio.gather(*(one(i) for i in range(count)))
    return list(results), time.perf_counter() - started, agent_cpu() - cpu


def overhead_line(report: Report, name: str, service: list[float], bare: list[float]) -> None:
    service_median, bare_median = median(service), median(bare)
    overhead = service_median - bare_median
    factor = overhead / bare_median
    report.check(
        name,
        f"service median {ms(service_median)}, bare median {ms(bare_median)}, "
        f"overhead {ms(overhead)} = {factor:.2f}x bare (plain ratio service/bare "
        f"{service_median / bare_median:.2f}x; n={len(service)})",
        factor <= OVERHEAD_TARGET,
        f"overhead <= {OVERHEAD_TARGET}x bare",
        service_ms=summary(service),
        bare_ms=summary(bare),
        overhead_ms=overhead * 1e3,
        overhead_factor=factor,
        plain_ratio=service_median / bare_median,
    )


async def measure(report: Report, args: argparse.Namespace) -> None:
    count = 40 if args.quick else 200
    rounds = 1 if args.quick else 2
    profiler = Profiler(NAME, args.profile)
    async with temp_home(NAME) as root, open_service(root / "home") as service:
        script = root / "bare.sh"
        script.write_text(BODY)
        serial = 0

        def next_name(kind: str) -> str:
            nonlocal serial
            serial += 1
            return f"{kind}-{serial}"

        for _ in range(5):  # warm up both paths (imports, page cache, child watcher)
            await bare_once(script)
            await service_once(service, next_name("warm"))

        # --- sequential, interleaved -------------------------------------------------------
        bare_seq: list[float] = []
        service_seq: list[float] = []
        complete_seq: list[float] = []
        for i in range(count):
            if i % 2:
                bare_seq.append(await bare_once(script))
            with profiler.section():
                latency, complete = await service_once(service, next_name("seq"))
            service_seq.append(latency)
            complete_seq.append(complete)
            if not i % 2:
                bare_seq.append(await bare_once(script))
        overhead_line(report, "overhead sequential", service_seq, bare_seq)
        report.note(
            f"sequential complete_script median {ms(median(complete_seq))} (not in the latency); "
            f"service p90 {ms(summary(service_seq)['p90'] / 1e3)}, "
            f"bare p90 {ms(summary(bare_seq)['p90'] / 1e3)}"
        )

        # --- 16 at a time, in alternating rounds ---------------------------------------------
        bare_par: list[float] = []
        service_par: list[float] = []
        complete_par: list[float] = []
        bare_wall = service_wall = bare_cpu = service_cpu = 0.0
        for round_number in range(rounds):
            order = ("bare", "service") if round_number % 2 == 0 else ("service", "bare")
            for kind in order:
                if kind == "bare":
                    results, wall, cpu = await concurrent(count, lambda i: bare_once(script))
                    bare_par += results
                    bare_wall += wall
                    bare_cpu += cpu
                else:
                    with profiler.section():
                        results, wall, cpu = await concurrent(
                            count, lambda i: service_once(service, next_name("par"))
                        )
                    service_par += [latency for latency, _ in results]
                    complete_par += [complete for _, complete in results]
                    service_wall += wall
                    service_cpu += cpu
        total = count * rounds
        overhead_line(report, f"overhead {CONCURRENCY}-way", service_par, bare_par)
        service_rate, bare_rate = total / service_wall, total / bare_wall
        report.check(
            f"throughput {CONCURRENCY}-way",
            f"service {service_rate:.0f} scripts/s (start, Complete, complete_script), "
            f"bare {bare_rate:.0f} scripts/s = {service_rate / bare_rate:.2f}x bare "
            f"({total} scripts each)",
            service_rate >= THROUGHPUT_TARGET,
            f">= {THROUGHPUT_TARGET:.0f} scripts/s",
            service_scripts_per_second=service_rate,
            bare_scripts_per_second=bare_rate,
            scripts=total,
        )
        report.note(
            f"{CONCURRENCY}-way complete_script median {ms(median(complete_par))}; service p90 "
            f"{ms(summary(service_par)['p90'] / 1e3)}, bare p90 "
            f"{ms(summary(bare_par)['p90'] / 1e3)}"
        )
        report.note(
            f"{CONCURRENCY}-way CPU used by the agent process itself (all its threads): service "
            f"{ms(service_cpu / total)} per script, bare {ms(bare_cpu / total)} per script"
        )
        report.info["agent_cpu_ms_per_script"] = {
            "service": service_cpu / total * 1e3,
            "bare": bare_cpu / total * 1e3,
        }
        report.info["complete_script_ms"] = {
            "sequential": summary(complete_seq),
            "concurrent": summary(complete_par),
        }
    profiler.dump()


if __name__ == "__main__":
    sys.exit(main(NAME, measure, __doc__.splitlines()[0]))
