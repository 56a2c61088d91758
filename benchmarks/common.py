"""What every benchmark shares: arguments, statistics, a throw-away service, reporting.

A benchmark module defines `async def measure(report: Report, args) -> None`, records one
`report.check(...)` per target (a printed line with the figures, the baseline measured in the
same run, the ratio and PASS/FAIL) and calls `main(NAME, measure)` under `__main__`. Results are
also written to benchmarks/results/<name>.json. The exit status is 1 when any target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import json
import logging
import math
import os
import platform
import pstats
import shutil
import signal
import statistics
import tempfile
import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from tentacle_manager.agent.process.tree import Rung, Signaller, processes_of_home
from tentacle_manager.agent.scripts import ScriptService, ScriptServiceSettings
from tentacle_manager.contracts import (
    ProcessState,
    ScriptStatusRequest,
    ScriptStatusResponse,
    ScriptTicket,
)

RESULTS_DIR = Path(__file__).resolve().parent / "results"

# The ladder timings the tests use: short, so a benchmark that goes wrong still ends quickly.
FAST_LADDER = dict(
    interrupt_grace=2.0,
    terminate_grace=1.0,
    kill_grace=1.0,
    output_holder_grace=1.0,
)


# --- arguments ---------------------------------------------------------------------------------


def parse_args(description: str, argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--quick",
        action="store_true",
        default=bool(os.environ.get("TENTACLE_BENCH_QUICK")),
        help="smaller sizes and fewer repetitions (also TENTACLE_BENCH_QUICK=1)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="run the service side under cProfile; prints the top functions and writes "
        "benchmarks/results/<name>.prof",
    )
    return parser.parse_args(argv)


# --- statistics --------------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (fraction 0..1); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1))
    return ordered[rank]


def summary(values: Sequence[float], scale: float = 1e3) -> dict[str, float]:
    """median / p10 / p90 / p99 / min / max, scaled (seconds -> ms by default)."""
    return {
        "n": len(values),
        "median": median(values) * scale,
        "p10": percentile(values, 0.10) * scale,
        "p90": percentile(values, 0.90) * scale,
        "p99": percentile(values, 0.99) * scale,
        "min": (min(values) if values else math.nan) * scale,
        "max": (max(values) if values else math.nan) * scale,
    }


def ms(seconds: float) -> str:
    """Seconds printed as milliseconds with sensible precision."""
    value = seconds * 1e3
    if value < 0.1:
        return f"{value:.4f} ms"
    if value < 10:
        return f"{value:.2f} ms"
    return f"{value:.1f} ms"


def verdict(passed: bool) -> str:
    return "PASS" if passed else "FAIL"


# --- reporting ---------------------------------------------------------------------------------


@dataclass
class Check:
    name: str
    line: str
    passed: bool
    target: str
    figures: dict[str, Any] = field(default_factory=dict)


@dataclass
class Report:
    name: str
    quick: bool
    checks: list[Check] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    error: str | None = None

    def check(self, name: str, text: str, passed: bool, target: str, **figures: Any) -> Check:
        """Record and print one target line: `<name>: <text> (target <target>) PASS|FAIL`."""
        line = f"{name}: {text} (target {target}) {verdict(passed)}"
        result = Check(name, line, passed, target, figures)
        self.checks.append(result)
        print(line, flush=True)
        return result

    def note(self, text: str) -> None:
        """An informational line (not a target), printed indented."""
        self.notes.append(text)
        print(f"    {text}", flush=True)

    @property
    def passed(self) -> bool:
        return self.error is None and bool(self.checks) and all(c.passed for c in self.checks)

    def write_json(self) -> Path:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        path = RESULTS_DIR / f"{self.name}.json"
        document = {
            "benchmark": self.name,
            "quick": self.quick,
            "passed": self.passed,
            "when": datetime.now(UTC).isoformat(),
            "host": host_facts(),
            "checks": [asdict(c) for c in self.checks],
            "notes": self.notes,
            "info": self.info,
            "error": self.error,
        }
        path.write_text(json.dumps(document, indent=2, default=_json_default) + "\n")
        return path


def _json_default(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return str(value)


def host_facts() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "processes": len(psutil.pids()),
    }


Measure = Callable[[Report, argparse.Namespace], Awaitable[None]]


def main(name: str, measure: Measure, description: str, argv: Sequence[str] | None = None) -> int:
    """Run one benchmark module: print its lines, write its JSON, return the exit status."""
    args = parse_args(description, argv)
    # The agent's own warnings (e.g. "Quarantined 2 process(es)" in the abandon benchmark) are
    # expected here and would only interleave with the figures.
    logging.getLogger("tentacle_manager").setLevel(logging.ERROR)
    report = Report(name, args.quick)
    size = "quick" if args.quick else "full"
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"== {name} ({size} sizes; {os.cpu_count()} cpus, load {load}) ==", flush=True)
    started = time.perf_counter()
    try:
        asyncio.run(measure(report, args))
    except Exception:
        report.error = traceback.format_exc()
        print(f"{name}: ERROR\n{report.error}", flush=True)
    elapsed = time.perf_counter() - started
    report.info["elapsed_seconds"] = round(elapsed, 2)
    path = report.write_json()
    failed = [c.name for c in report.checks if not c.passed]
    outcome = "ERROR" if report.error else ("FAIL " + ", ".join(failed) if failed else "PASS")
    rel = path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path
    print(f"== {name}: {outcome} in {elapsed:.1f} s; results in {rel} ==", flush=True)
    return 0 if report.passed else 1


# --- profiling ---------------------------------------------------------------------------------


class Profiler:
    """cProfile around chosen sections when --profile is given; a no-op otherwise."""

    def __init__(self, name: str, enabled: bool):
        self.name = name
        self.enabled = enabled
        self._profile = cProfile.Profile() if enabled else None

    @contextlib.contextmanager
    def section(self) -> Iterator[None]:
        if self._profile is None:
            yield
            return
        self._profile.enable()
        try:
            yield
        finally:
            self._profile.disable()

    def dump(self, top: int = 30) -> None:
        if self._profile is None:
            return
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        path = RESULTS_DIR / f"{self.name}.prof"
        self._profile.dump_stats(path)
        out = io.StringIO()
        stats = pstats.Stats(self._profile, stream=out)
        stats.sort_stats("tottime").print_stats(top)
        print(
            f"--- cProfile of the service sections (event-loop thread only), by tottime; "
            f"full data in {path} ---"
        )
        print(out.getvalue())


# --- a throw-away service ----------------------------------------------------------------------


def settings(**overrides: Any) -> ScriptServiceSettings:
    values: dict[str, Any] = {**FAST_LADDER, "minimum_free_disk_bytes": 0, **overrides}
    return ScriptServiceSettings.create(**values)


@contextlib.asynccontextmanager
async def temp_home(prefix: str) -> AsyncIterator[Path]:
    """A temporary directory that is removed (and whose processes are killed) afterwards."""
    root = Path(tempfile.mkdtemp(prefix=f"tentacle-bench-{prefix}-"))
    try:
        yield root
    finally:
        kill_strays(root)
        shutil.rmtree(root, ignore_errors=True)


@contextlib.asynccontextmanager
async def open_service(home: Path, **overrides: Any) -> AsyncIterator[ScriptService]:
    service = ScriptService(home, settings(**overrides))
    await service.open()
    try:
        yield service
    finally:
        await service.close()
        kill_strays(home)


def kill_strays(root: Path) -> int:
    """Kill every process a service over `root` started; returns how many were reached."""
    return len(Signaller().send(processes_of_home(root), Rung.KILL))


def kill_group(pid: int) -> None:
    """SIGKILL a script's process group (scripts run in a session of their own)."""
    with contextlib.suppress(OSError):
        os.killpg(pid, signal.SIGKILL)


async def wait_complete(
    service: ScriptService,
    script: ScriptTicket,
    *,
    interval: float = 0.002,
    timeout: float = 600.0,
) -> ScriptStatusResponse:
    """Poll get_status until Complete, without reading the log (asks only for the tail)."""
    request = ScriptStatusRequest(ticket=script, last_log_sequence=1 << 60)
    deadline = time.perf_counter() + timeout
    while True:
        status = await service.get_status(request)
        if status.state is ProcessState.COMPLETE:
            return status
        if time.perf_counter() > deadline:
            raise TimeoutError(f"{script} did not complete within {timeout:g} s")
        await asyncio.sleep(interval)


async def wait_for_text(
    service: ScriptService, script: ScriptTicket, text: str, timeout: float = 30.0
) -> int:
    """Poll until a record with exactly `text` appears; returns the next sequence number."""
    after = 0
    deadline = time.perf_counter() + timeout
    while True:
        status = await service.get_status(
            ScriptStatusRequest(ticket=script, last_log_sequence=after)
        )
        if any(record.text == text for record in status.logs):
            return status.next_log_sequence
        if status.state is ProcessState.COMPLETE:
            raise RuntimeError(f"{script} completed before printing {text!r}: {status.exit_code}")
        if time.perf_counter() > deadline:
            raise TimeoutError(f"{script} did not print {text!r} within {timeout:g} s")
        after = status.next_log_sequence
        await asyncio.sleep(0.002)
