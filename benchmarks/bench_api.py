"""The agent API over loopback mutual TLS, against the in-process service.

1. Round trip of a trivial script (`echo x`: start with a wait, then complete), sequentially,
   through the HTTPS client to an agent in its own process, against the same calls on a
   service in this process. Target: median <= 2x the in-process median.
2. 200 scripts at once through the API, each printing numbered lines; every line must arrive,
   once, in order. Target: no line lost.
3. The agent process's memory (RSS): idle, and while 200 scripts run.
   Targets: idle <= 80 MB, with 200 running <= 200 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import psutil

from benchmarks.common import Report, main, median, ms, open_service, summary, temp_home
from tentacle_manager.client.agent_client import HttpsAgent
from tentacle_manager.client.executor import ScriptExecutor
from tentacle_manager.client.in_process import InProcessAgent
from tentacle_manager.client.protocol import ScriptServiceClient
from tentacle_manager.client.tls import ClientIdentity
from tentacle_manager.contracts import (
    CompleteScriptCommand,
    ProcessState,
    ScriptIsolationLevel,
    StartScriptCommand,
    ticket,
)
from tentacle_manager.instances.certificates import generate_certificate, write_tls_files

NAME = "api"
PASSPHRASE = "benchmark passphrase"
ROUND_TRIP_TARGET = 2.0
IDLE_RSS_TARGET_MB = 80
BUSY_RSS_TARGET_MB = 200
CONCURRENT = 200


def trivial(name: str) -> StartScriptCommand:
    return StartScriptCommand(
        script_ticket=ticket(name),
        task_id=f"ServerTasks-{name}",
        script_body="echo x",
        isolation=ScriptIsolationLevel.NO_ISOLATION,
        isolation_mutex_name=name,
        duration_to_wait_for_script_to_finish=timedelta(seconds=30),
    )


async def round_trips(client: ScriptServiceClient, prefix: str, count: int) -> list[float]:
    timings = []
    for index in range(count):
        command = trivial(f"{prefix}-{index}")
        started = time.perf_counter()
        status = await client.start_script(command)
        await client.complete_script(CompleteScriptCommand(ticket=command.script_ticket))
        timings.append(time.perf_counter() - started)
        if status.state is not ProcessState.COMPLETE or status.exit_code != 0:
            raise RuntimeError(f"{command.script_ticket} did not finish in its wait: {status}")
    return timings


def start_agent(home: Path, certificates: Path) -> tuple[subprocess.Popen[str], int]:
    agent = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.api_agent", str(home), str(certificates)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "TENTACLE_BENCH_PASSPHRASE": PASSPHRASE},
    )
    assert agent.stdout is not None
    line = agent.stdout.readline()
    if not line.startswith("PORT "):
        agent.kill()
        raise RuntimeError(f"the agent did not start: {line!r}")
    return agent, int(line.split()[1])


def rss_mb(pid: int) -> float:
    return psutil.Process(pid).memory_info().rss / 2**20


async def concurrent_output(agent: HttpsAgent, lines: int) -> tuple[int, float, float]:
    """Returns (scripts that lost or reordered output, seconds, peak agent RSS in MB)."""
    executor = ScriptExecutor(agent)
    body = f"for i in $(seq 1 {lines}); do echo line-$i; done; sleep 2"

    async def one(index: int) -> bool:
        command = StartScriptCommand(
            script_ticket=ticket(f"many-{index}"),
            task_id=f"ServerTasks-many-{index}",
            script_body=body,
            isolation=ScriptIsolationLevel.NO_ISOLATION,
            isolation_mutex_name=f"many-{index}",
        )
        result = await executor.run(command, asyncio.Event())
        printed = [r.text for r in result.logs if r.text.startswith("line-")]
        return result.exit_code == 0 and printed == [f"line-{i}" for i in range(1, lines + 1)]

    started = time.perf_counter()
    return_values = await asyncio.gather(*(one(i) for i in range(CONCURRENT)))
    return return_values.count(False), time.perf_counter() - started, 0.0


async def measure(report: Report, args: argparse.Namespace) -> None:
    count = 30 if args.quick else 150
    lines = 200 if args.quick else 1000
    async with temp_home(NAME) as root:
        certificates = root / "certificates"
        agent_identity, client_identity = generate_certificate(), generate_certificate()
        write_tls_files(agent_identity, certificates, "agent", PASSPHRASE.encode())
        cert, key = write_tls_files(client_identity, certificates, "client", PASSPHRASE.encode())

        async with open_service(root / "in-process") as service:
            in_process = await round_trips(InProcessAgent(service), "local", count)

        process, port = start_agent(root / "agent-home", certificates)
        try:
            identity = ClientIdentity(cert, key, PASSPHRASE.encode())
            address = f"https://127.0.0.1:{port}"
            async with HttpsAgent(address, identity, agent_identity.thumbprint) as agent:
                await round_trips(agent, "warm", 5)
                over_api = await round_trips(agent, "api", count)
                await asyncio.sleep(1.0)
                idle = rss_mb(process.pid)
                peak = [idle]

                async def sample() -> None:
                    while True:
                        peak.append(rss_mb(process.pid))
                        await asyncio.sleep(0.1)

                sampler = asyncio.get_running_loop().create_task(sample())
                lost, seconds, _ = await concurrent_output(agent, lines)
                sampler.cancel()
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(30)

    ratio = median(over_api) / median(in_process)
    report.info["round_trip_api_ms"] = summary(over_api)
    report.info["round_trip_in_process_ms"] = summary(in_process)
    report.check(
        "api round trip",
        f"median {ms(median(over_api))} over TLS vs {ms(median(in_process))} in process "
        f"= {ratio:.2f}x",
        ratio <= ROUND_TRIP_TARGET,
        f"<= {ROUND_TRIP_TARGET}x",
        ratio=ratio,
    )
    report.check(
        "200 concurrent scripts",
        f"{CONCURRENT} scripts x {lines} lines in {seconds:.1f} s, {lost} with lost or "
        "reordered output",
        lost == 0,
        "no lost output",
        lost=lost,
    )
    report.check(
        "agent rss idle",
        f"{idle:.1f} MB",
        idle <= IDLE_RSS_TARGET_MB,
        f"<= {IDLE_RSS_TARGET_MB} MB",
        mb=idle,
    )
    busy = max(peak)
    report.check(
        "agent rss with 200 running",
        f"peak {busy:.1f} MB",
        busy <= BUSY_RSS_TARGET_MB,
        f"<= {BUSY_RSS_TARGET_MB} MB",
        mb=busy,
    )


if __name__ == "__main__":
    sys.exit(main(NAME, measure, __doc__.splitlines()[0]))
